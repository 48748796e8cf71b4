"""Hub repo ids: the one test of whether a spec names a Hub repository, and specs as a card shows them (every
layer may use them)."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

__all__ = ["is_repo_id", "hub_repo_id", "portable_spec"]

# ``name`` or ``namespace/name``: letters, digits, ``-``, ``_`` and ``.``, not starting with a separator.
_REPO_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*")
_LOCAL_PREFIXES = ("imagefolder:", "parquet:")


def is_repo_id(text: str, namespaced: bool = True) -> bool:
    """Whether ``text`` is shaped like a Hub repo id: ``namespace/name``, or also a bare ``name`` when not
    ``namespaced`` (datasets such as ``imagenet-1k`` have none)."""
    if not _REPO_ID.fullmatch(text) or text.startswith(".") or text.endswith("."):
        return False
    return "/" in text or not namespaced


def hub_repo_id(spec: str | os.PathLike | None) -> str | None:
    """The Hub repo id that ``spec`` names (``user/name``, ``hf-hub:user/name``), or None for local specs.

    Local folders, ``imagefolder:PATH``/``parquet:GLOB`` specs and bare architecture names are not repo ids.

    >>> hub_repo_id("timm/resnet18.a1_in1k"), hub_repo_id("imagefolder:photos"), hub_repo_id("resnet18")
    ('timm/resnet18.a1_in1k', None, None)
    """
    if spec is None:
        return None
    text = str(spec).removeprefix("hf-hub:")
    if ":" in text or not is_repo_id(text) or Path(text).exists():
        return None
    return text


def portable_spec(spec: str | os.PathLike | None) -> str | None:
    """``spec`` as a card shows it: Hub ids and relative paths as given; an absolute local path (``/...``, ``~...``)
    cut to its last folder, or to the folder above its first wildcard, so no card holds a machine's folders.

    >>> portable_spec("imagefolder:/home/me/.cache/photos"), portable_spec("parquet:/data/x/train-*.parquet")
    ('imagefolder:photos', 'parquet:x/train-*.parquet')
    """
    if spec is None:
        return None
    text = str(spec)
    prefix = next((p for p in _LOCAL_PREFIXES if text.startswith(p)), "")
    path = text[len(prefix) :]
    if not path.startswith(("/", "~")):
        return text
    parts = PurePosixPath(path).parts
    wildcard = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), None)
    first = len(parts) - 1 if wildcard is None else max(wildcard - 1, 1)
    return prefix + "/".join(parts[max(first, 1) if len(parts) > 1 else 0 :])
