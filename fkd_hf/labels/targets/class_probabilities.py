"""``class_probabilities``: FKD's soft labels, the target type of every label set that names no other.

Each crop stores the teacher's class probabilities after the set's temperature, as the top-k its kind keeps
(:mod:`fkd_hf.labels.kinds`): ``topk_indices`` (R x k int16, or int32 when the class count exceeds int16) and
``topk_values`` (R x k float16). Training reconstructs them as a distribution over the ``num_classes`` classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..kinds import check_kind, quantize, reconstruct
from .base import Refuse, TargetType, stored_fractions

if TYPE_CHECKING:
    import torch

__all__ = ["INDICES", "TARGET_TYPE", "VALUES", "ClassProbabilities", "column_features", "index_dtype"]

INDICES, VALUES = "topk_indices", "topk_values"


def index_dtype(num_classes: int) -> str:
    """int16 when every class index fits, int32 otherwise."""
    return "int16" if num_classes <= np.iinfo(np.int16).max + 1 else "int32"


def column_features(stored_crops: int, k: int, num_classes: int) -> dict[str, Any]:
    """The features of the two columns for R = ``stored_crops`` crops of top-``k`` labels over ``num_classes``."""
    from datasets import List, Value  # here: the command line's help (which reads INDICES) loads no datasets

    return {
        INDICES: List(List(Value(index_dtype(num_classes)), length=k), length=stored_crops),
        VALUES: List(List(Value("float16"), length=k), length=stored_crops),
    }


class ClassProbabilities(TargetType):
    """A teacher's class probabilities at a temperature, stored as top-k per kind."""

    name = "class_probabilities"
    columns: ClassVar[dict[str, str]] = {INDICES: "R x k class indices", VALUES: "R x k float16 teacher probabilities"}
    sizes: ClassVar[dict[str, str]] = {INDICES: "k", VALUES: "k"}

    def check(self, metadata) -> None:
        check_kind(metadata.kind)

    def describe(self, metadata) -> str:
        return f"the teacher's top-{metadata.k} soft labels"

    def features(self, metadata) -> dict[str, Any]:
        return column_features(metadata.stored_crops, metadata.k, metadata.num_classes)

    def encode(self, outputs: torch.Tensor, metadata) -> dict[str, torch.Tensor]:
        """The top-k of the softmax of the class logits ``outputs`` at the set's temperature."""
        import torch

        return self.from_targets(torch.softmax(outputs / metadata.temperature, dim=-1), metadata)

    def from_targets(self, targets: torch.Tensor, metadata) -> dict[str, torch.Tensor]:
        indices, values = quantize(targets, metadata.kind, metadata.k)
        return {INDICES: indices, VALUES: values}

    def store(self, columns: Mapping[str, Any], metadata, refuse: Refuse) -> dict[str, np.ndarray]:
        num_classes = metadata.num_classes
        indices = np.asarray(columns[INDICES])  # checked before the cast, which could wrap them into range
        refuse(INDICES, indices, (indices < 0) | (indices >= num_classes), f"class indices in [0, {num_classes})")
        values = stored_fractions(VALUES, columns[VALUES], refuse)
        return {INDICES: indices.astype(index_dtype(num_classes)), VALUES: values}

    def decode(self, columns: Mapping[str, torch.Tensor], metadata) -> torch.Tensor:
        return reconstruct(columns[INDICES], columns[VALUES], metadata.kind, metadata.num_classes)


TARGET_TYPE = ClassProbabilities()
