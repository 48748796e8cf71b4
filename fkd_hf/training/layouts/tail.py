"""The single-crop tail (``FKDConfig.single_crop_tail``, FKD's ``train_FKD.py``): a schedule on top of any crop layout.

The last pass is replayed as m passes of one crop per photo, with the same crops per step, so it still counts m FKD
epochs. Round t of every photo is used in the t-th of them, in the order ``tail_order(seed, p, n, m, rank)[t]`` of
the layout's photos in that pass (all of them, or this process's); a sample is m consecutive crops of that sequence,
and each crop decodes its photo, as in single-crop training. A layout whose steps must hold distinct photos asks for
a ``window``: any ``window + 1`` consecutive crops are then of different photos.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .base import CropLayout, CropSource

__all__ = ["TAIL_STREAM", "SingleCropTail", "tail_order"]

TAIL_STREAM = 0x7A11  # keeps the tail's random streams apart from select_crops' ([seed, row, cycle])


def tail_order(
    seed: int, pass_index: int, num_photos: int, num_crops: int, rank: int = 0, window: int = 0
) -> np.ndarray:
    """``[num_crops, num_photos]`` int32: row t is the photo order of the t-th single-crop pass of a tail pass.

    The first ``window`` photos of each row avoid the last ``window`` of the row before (at most half the photos),
    so any ``window + 1`` consecutive crops of the whole sequence are of different photos."""
    window = min(window, num_photos // 2)
    rows = []
    for t in range(num_crops):
        row = np.random.default_rng([seed, TAIL_STREAM, pass_index, rank, t]).permutation(num_photos)
        if t and window:
            seen = np.isin(row, rows[-1][num_photos - window :])
            early, free = np.flatnonzero(seen[:window]), np.flatnonzero(~seen[window:]) + window
            row[early], row[free[: len(early)]] = row[free[: len(early)]], row[early]
        rows.append(row)
    return np.stack(rows).astype(np.int32)


class SingleCropTail:
    """The crops of a tail pass over a layout's photos; keeps the last pass's :func:`tail_order`."""

    def __init__(self):
        self._order: tuple[tuple, np.ndarray] | None = None  # ((pass, photos, rank, window), tail_order)

    def crop_plan(self, dataset: CropSource, layout: CropLayout, indices) -> tuple[np.ndarray, np.ndarray]:
        """Photos (dataset positions) and rounds, each ``[len(indices), m]``, of the samples at ``indices``."""
        samples, photos = layout.local_samples(dataset, indices), layout.pass_photos(dataset)
        m, n = dataset.num_crops, len(dataset) if photos is None else len(photos)
        key = (dataset.pass_index, n, layout.rank, layout.tail_window(dataset))
        if self._order is None or self._order[0] != key:
            self._order = key, tail_order(dataset.seed, key[0], n, m, key[2], key[3])
        rounds, column = np.divmod(samples[:, None] * m + np.arange(m), n)
        chosen = self._order[1][rounds, column]
        return (chosen.astype(np.int64) if photos is None else photos[chosen]), rounds
