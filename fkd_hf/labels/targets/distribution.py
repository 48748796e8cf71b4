"""``distribution``: the self-supervised form of FKD's soft labels, from an encoder teacher without classes.

Each crop stores the softmax of the teacher's embedding over its D dimensions at the set's temperature, as the top-k
its kind keeps, exactly like class probabilities with C = D (``topk_indices``, ``topk_values``); ``num_classes`` is D
and the set has no class names. A student learns it through a projection head to D with the soft cross-entropy.
"""

from __future__ import annotations

from typing import ClassVar

from .class_probabilities import INDICES, VALUES, ClassProbabilities

__all__ = ["TARGET_TYPE", "EmbeddingDistribution"]


class EmbeddingDistribution(ClassProbabilities):
    """An encoder's embedding as a distribution over its dimensions, stored as top-k per kind."""

    name = "distribution"
    label_free = True
    columns: ClassVar[dict[str, str]] = {
        INDICES: "R x k embedding dimensions",
        VALUES: "R x k float16 probabilities of the teacher's embedding softmax",
    }

    def check(self, metadata) -> None:
        super().check(metadata)
        if metadata.class_names:
            raise ValueError("A distribution label set has no class names: num_classes is the embedding width.")

    def describe(self, metadata) -> str:
        return (
            f"the top-{metadata.k} of the softmax of the teacher's {metadata.num_classes}-dimensional embedding at "
            f"temperature {metadata.temperature:g}"
        )


TARGET_TYPE = EmbeddingDistribution()
