"""Target types: what a label set stores for each crop, as registered plug-ins.

``class_probabilities`` (FKD's soft labels: the teacher's class probabilities at a temperature, stored as the top-k
its kind keeps) is the type of every label set whose ``fkd_labels.json`` names no other in ``target_type``. Two
label-free types hold an encoder teacher's targets for self-supervised distillation: ``distribution`` (the softmax
of its embedding over the D dimensions, stored like class probabilities) and ``embedding`` (the vector itself). A new
type is one module here whose ``TARGET_TYPE`` is a :class:`~.base.TargetType`, one line in :data:`TARGET_TYPES`, and
its loss in :data:`fkd_hf.training.targets.TARGET_LOSSES`; a type defined elsewhere registers an instance
(``TARGET_TYPES["name"] = MyTarget()``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import TargetType

__all__ = ["DEFAULT_TARGET_TYPE", "TARGET_TYPES", "target_type"]

DEFAULT_TARGET_TYPE = "class_probabilities"
# target_type name -> module of this package (its TARGET_TYPE), or a TargetType instance registered from elsewhere
TARGET_TYPES: dict[str, str | TargetType] = {
    "class_probabilities": "class_probabilities",
    "distribution": "distribution",
    "embedding": "embedding",
}


def target_type(name: str) -> TargetType:
    """The target type registered as ``name``; a ValueError naming the known ones for any other."""
    entry = TARGET_TYPES.get(name)
    if entry is None:
        raise ValueError(
            f"Unknown target type {name!r}: this fkd_hf knows {', '.join(TARGET_TYPES)}. A label set of another type "
            "needs the fkd_hf (or the plug-in) that made it: upgrade fkd_hf (pip install -U fkd-hf)."
        )
    return importlib.import_module(f"{__name__}.{entry}").TARGET_TYPE if isinstance(entry, str) else entry
