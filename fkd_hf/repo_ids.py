"""Hub repo ids: the one test of whether a spec names a Hub repository (every layer may use it)."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["is_repo_id", "hub_repo_id"]

# ``name`` or ``namespace/name``: letters, digits, ``-``, ``_`` and ``.``, not starting with a separator.
_REPO_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*")


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
