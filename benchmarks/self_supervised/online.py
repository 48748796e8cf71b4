"""The online row: the encoder teacher runs on every training crop inside the training step, as
:class:`~benchmarks.methods.VanillaKDTrainer` runs a classifier (the same box and flip cut at the teacher's input size
and interpolation by :class:`~benchmarks.methods.CropDataset`, one fresh crop per decoded photo)."""

from __future__ import annotations

import torch

from ..methods import VanillaKDTrainer

__all__ = ["OnlineTargetsTrainer"]


class OnlineTargetsTrainer(VanillaKDTrainer):
    """Online distillation on a label-free label set's target type: each crop's target is what ``fkd-hf generate``
    would store for it (the teacher's embedding through the set's ``encode``, read back by its ``decode``, without
    float16 storage), so the loss is the set's own (cosine on an embedding set)."""

    def teacher_targets(self, pixels: torch.Tensor) -> torch.Tensor:
        metadata = self.label_metadata
        target = metadata.target
        return target.decode(target.encode(self.runner.outputs(pixels), metadata), metadata)
