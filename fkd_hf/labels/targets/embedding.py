"""``embedding``: an encoder teacher's image embedding itself, for cosine or regression matching.

Each crop stores the D-dimensional embedding as float16 (``embedding``, R x D), L2-normalised when the set's
``kind`` is ``normalized`` (``raw`` keeps it as the teacher gives it); ``num_classes`` is D and ``k`` equals it; the
set has no class names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .base import Refuse, TargetType

if TYPE_CHECKING:
    import torch

__all__ = ["EMBEDDING", "EMBEDDING_KINDS", "TARGET_TYPE", "Embedding"]

EMBEDDING = "embedding"
EMBEDDING_KINDS = ("raw", "normalized")


class Embedding(TargetType):
    """An encoder's embedding per crop, float16."""

    name = "embedding"
    label_free = True
    columns: ClassVar[dict[str, str]] = {EMBEDDING: "R x D float16 teacher embeddings"}
    sizes: ClassVar[dict[str, str]] = {EMBEDDING: "num_classes"}

    def check(self, metadata) -> None:
        if metadata.kind not in EMBEDDING_KINDS:
            raise ValueError(
                f"An embedding label set's kind is one of {', '.join(EMBEDDING_KINDS)}, not {metadata.kind!r}."
            )
        if metadata.k != metadata.num_classes or metadata.class_names:
            raise ValueError("An embedding label set stores all D dimensions (k = num_classes = D) and no class names.")

    def describe(self, metadata) -> str:
        normalized = "L2-normalised " if metadata.kind == "normalized" else ""
        return f"the teacher's {normalized}{metadata.num_classes}-dimensional embedding"

    def features(self, metadata) -> dict[str, Any]:
        from datasets import List, Value

        return {EMBEDDING: List(List(Value("float16"), length=metadata.num_classes), length=metadata.stored_crops)}

    def encode(self, outputs: torch.Tensor, metadata) -> dict[str, torch.Tensor]:
        """The embeddings ``outputs``, L2-normalised for a ``normalized`` set."""
        return self.from_targets(outputs, metadata)

    def from_targets(self, targets: torch.Tensor, metadata) -> dict[str, torch.Tensor]:
        if metadata.kind == "normalized":
            import torch.nn.functional as F

            targets = F.normalize(targets.float(), dim=-1)
        return {EMBEDDING: targets}

    def store(self, columns: Mapping[str, Any], metadata, refuse: Refuse) -> dict[str, np.ndarray]:
        with np.errstate(over="ignore"):
            values = np.asarray(columns[EMBEDDING]).astype(np.float16)
        refuse(EMBEDDING, values, ~np.isfinite(values), "finite numbers within float16's range (|x| < 65504)")
        return {EMBEDDING: values}

    def decode(self, columns: Mapping[str, torch.Tensor], metadata) -> torch.Tensor:
        return columns[EMBEDDING].float()


TARGET_TYPE = Embedding()
