"""The training side of target types: the loss of each, by the name of the target type of a label set
(:data:`fkd_hf.labels.targets.TARGET_TYPES`), which decodes its stored values into the dense targets that the loss
compares with the student's outputs.

A loss is called as ``loss(outputs, targets, args, reduction)``: the student's outputs ``[N, D]``, the dense targets
``[N, D]`` (Mixup/CutMix mix them as they mix the crops), the ``FKDConfig`` (for the loss's options) and ``mean``,
``sum`` or ``none``. A new type's loss is one module here whose ``LOSS`` is that function and one line in
:data:`TARGET_LOSSES`; a loss defined elsewhere is registered as the function itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

__all__ = ["TARGET_LOSSES", "target_loss"]

# target_type name -> module of this package (its LOSS), or a loss function registered from elsewhere
TARGET_LOSSES: dict[str, str | Callable] = {
    "class_probabilities": "class_probabilities",
    "distribution": "class_probabilities",  # the same soft cross-entropy, over the embedding's D dimensions
    "embedding": "embedding",
}


def target_loss(name: str) -> Callable:
    """The loss of the target type ``name``; a ValueError naming the types fkd_hf can train on for any other."""
    entry = TARGET_LOSSES.get(name)
    if entry is None:
        raise ValueError(f"No training loss for target type {name!r}: fkd_hf trains on {', '.join(TARGET_LOSSES)}.")
    return importlib.import_module(f"{__name__}.{entry}").LOSS if isinstance(entry, str) else entry
