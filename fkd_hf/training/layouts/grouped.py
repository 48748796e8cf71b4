"""The grouped crop layout, FKD's loader: a sample is one photo with its ``num_crops`` crops, all in one batch; the
Trainer shuffles the samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import CropLayout

__all__ = ["GroupedLayout"]


class GroupedLayout(CropLayout):
    """Sample i is photo i with its rounds 0..m-1; a batch decodes each of its photos once."""

    name = "grouped"

    def crop_plan(self, dataset, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        samples = np.asarray(indices, dtype=np.int64)
        rounds = np.tile(np.arange(dataset.num_crops), (len(samples), 1))
        return np.repeat(samples[:, None], dataset.num_crops, axis=1), rounds

    def read(self, dataset, indices: Sequence[int]) -> list[dict]:
        """Reads the batch's photos with one Arrow take, each decoded once, its crops replayed into the batch."""
        photos, rounds = self.crop_plan(dataset, indices)
        pixels = dataset.new_pixels(len(photos))
        _, targets = dataset.read_crops(photos[:, 0], rounds, pixels.numpy())
        return dataset.pack(indices, pixels, {name: np.stack([t[name] for t in targets]) for name in targets[0]})


LAYOUT = GroupedLayout
