"""Checkpoints that are complete or absent.

:class:`~fkd_hf.training.FKDTrainer` writes each checkpoint under ``output_dir/_checkpoint-in-progress/`` and moves it
to ``output_dir/checkpoint-N`` once every file is written (:func:`publish`), so a run stopped while saving (Ctrl-C,
SIGTERM, SIGKILL, a full disk) leaves no half-written ``checkpoint-N``. A ``checkpoint-N`` without a readable
``trainer_state.json`` (the file the Trainer writes last), say from an older run, is incomplete:
:func:`last_complete_checkpoint` names it and skips it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

# Under output_dir; a leading "_" keeps it out of the Trainer's and fkd-hf's Hub uploads and out of checkpoint-* globs.
STAGING_DIR = "_checkpoint-in-progress"
STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)")

logger = logging.getLogger(__name__)

__all__ = ["STAGING_DIR", "is_complete", "last_complete_checkpoint", "publish"]


def is_complete(folder: str | os.PathLike) -> bool:
    """Whether a checkpoint folder holds a readable ``trainer_state.json``."""
    try:
        json.loads(Path(folder, STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete ``checkpoint-N`` in ``output_dir`` (``None`` if there is none); a newer incomplete one is
    named in a warning and skipped."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = [
        (int(m[1]), path) for path in folder.iterdir() if (m := _CHECKPOINT.fullmatch(path.name)) and path.is_dir()
    ]
    for _, path in sorted(found, reverse=True):
        if is_complete(path):
            return str(path)
        logger.warning("%s is incomplete (no readable %s: its save was cut short): skipped.", path, STATE_FILE)
    return None


def publish(staged: str | os.PathLike, final: str | os.PathLike) -> None:
    """Moves the fully written checkpoint ``staged`` to ``final``, replacing a folder of that name (an incomplete
    one, or the same step of an earlier run), and removes the then empty staging folder."""
    if Path(final).exists():
        shutil.rmtree(final)
    os.replace(staged, final)
    Path(staged).parent.rmdir()
