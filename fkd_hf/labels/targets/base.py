"""What a target type is: the value a label set stores for each crop, how a teacher's outputs become it, which values
the writer refuses, and how training reads it back as a dense target."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["Refuse", "TargetType", "stored_fractions"]

# Called by a type's `store` as refuse(column, values, bad, allowed): raises, naming the first value where `bad` holds
# and what `allowed` says the column must hold, if there is one.
Refuse = Callable[[str, np.ndarray, np.ndarray, str], None]


class TargetType:
    """The stored target of a label set, registered by :attr:`name` in
    :data:`~fkd_hf.labels.targets.TARGET_TYPES` and named by ``target_type`` in ``fkd_labels.json``.

    Each method takes the set's metadata (a :class:`~fkd_hf.labels.format.LabelSetMetadata`: R is its
    ``stored_crops``; the type reads the other fields it needs, such as ``k``, ``num_classes`` or ``temperature``).
    A column of a shard is ``[N, R, size]``, ``size`` being the metadata field :attr:`sizes` names.

    A :attr:`label_free` type stores targets of a teacher without classes (an encoder's embeddings): its set has no
    ``class_names``, ``num_classes`` is the embedding width D, and a student learns it through a projection head.
    """

    name: ClassVar[str]
    label_free: ClassVar[bool] = False
    columns: ClassVar[dict[str, str]]  # stored column -> what it holds, as the dataset card lists it
    sizes: ClassVar[dict[str, str]]  # stored column -> the metadata field that gives its length per crop

    def check(self, metadata) -> None:
        """Raises a ValueError on metadata this type cannot hold (run when the metadata is made or read)."""

    def describe(self, metadata) -> str:
        """What each crop's stored target is, for the card's sentence "... crops of that image with {this} for each"."""
        raise NotImplementedError

    def features(self, metadata) -> dict[str, Any]:
        """The ``datasets`` feature of each of :attr:`columns` (``R x size``)."""
        raise NotImplementedError

    def encode(self, outputs: torch.Tensor, metadata) -> dict[str, torch.Tensor]:
        """The stored values ``[N, size]`` of each column from the teacher's outputs ``[N, D]`` on N crops (the
        logits of the set's classes for a classifier; an encoder's embedding for a teacher without one)."""
        raise NotImplementedError

    def from_targets(self, targets: torch.Tensor, metadata) -> dict[str, torch.Tensor]:
        """The stored values of dense targets ``[..., D]`` (as :meth:`decode` returns them): how ``merge-labels``
        stores the mean of several sets' targets."""
        raise NotImplementedError

    def store(self, columns: Mapping[str, Any], metadata, refuse: Refuse) -> dict[str, np.ndarray]:
        """This type's columns of a shard in their stored dtypes; ``refuse`` is called on values no label set can
        hold (run by the label-set writer on every shard)."""
        raise NotImplementedError

    def decode(self, columns: Mapping[str, torch.Tensor], metadata) -> torch.Tensor:
        """The dense training targets ``[..., D]`` of stored values ``[..., size]`` (a batch's, on its device)."""
        raise NotImplementedError

    def placeholder(self, metadata) -> dict[str, np.ndarray]:
        """The values stored for a skipped row (zeros): they keep the rows aligned and are never read."""
        return {
            column: np.zeros((metadata.stored_crops, getattr(metadata, field))) for column, field in self.sizes.items()
        }


def stored_fractions(name: str, values, refuse: Refuse) -> np.ndarray:
    """``values`` as float16, refused unless each is a finite number in [0, 1] as stored (a float32 value too large
    for float16 is inf once stored)."""
    with np.errstate(over="ignore"):
        stored = np.asarray(values).astype(np.float16)
    refuse(name, stored, ~((stored >= 0) & (stored <= 1)), "finite numbers in [0, 1]")
    return stored
