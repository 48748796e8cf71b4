"""The demo's evaluation sets, decoded once and kept in memory (the students are scored several times while they
train): labelled images through the library's eval transform (:class:`~fkd_hf.training.EvalDataset`), or, for
the sample photos, the crops of a held-out label set replayed as training replays them
(:class:`~fkd_hf.training.FKDCropDataset`) and labelled with the teacher's top-1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..generation.prefetch import prefetch_map
from ..labels.attach import join_labels
from ..labels.format import load_label_set
from ..labels.images import ImageSource
from ..training.data import EvalDataset, FKDCropDataset

__all__ = ["CachedEval", "eval_images", "heldout_crops"]


class CachedEval(torch.utils.data.Dataset):
    """Evaluation images already decoded at the model's size: ``pixel_values`` uint8 ``[H, W, 3]``, ``labels``."""

    def __init__(self, pixels: np.ndarray, labels: np.ndarray):
        self.pixels, self.labels = pixels, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"pixel_values": torch.from_numpy(self.pixels[index]), "labels": int(self.labels[index])}

    def batches(self, size: int):
        """The pixels in batches of ``size`` images (``[n, H, W, 3]`` arrays), in order."""
        return (self.pixels[start : start + size] for start in range(0, len(self.pixels), size))


def _decoded(dataset, threads: int, desc: str) -> list[dict]:
    """Every sample of a map-style ``dataset``, read in ``threads`` threads, with a progress bar."""
    samples = prefetch_map(dataset.__getitem__, range(len(dataset)), threads, 4 * max(threads, 1))
    return list(tqdm(samples, total=len(dataset), desc=desc, unit="img", dynamic_ncols=True))


def eval_images(
    source: ImageSource, classes: np.ndarray, size, crop_pct: float, interpolation: str, threads: int, desc: str
) -> CachedEval:
    """``source``'s images after timm's eval transform (resize, centre crop) at ``size``, labelled with
    ``classes[label]`` (the label-set class of each of ``source``'s labels)."""
    dataset = EvalDataset(
        source.dataset, size, crop_pct, interpolation, source.image_column, source.label_column, classes.tolist()
    )
    samples = _decoded(dataset, threads, desc)
    pixels = np.stack([sample["pixel_values"].numpy() for sample in samples])
    return CachedEval(pixels, np.asarray([sample["labels"] for sample in samples], dtype=np.int64))


def heldout_crops(
    labels_dir: Path, images: ImageSource, size, seed: int, threads: int
) -> tuple[CachedEval, np.ndarray]:
    """Every crop of the label set in ``labels_dir`` replayed at ``size``, labelled with the teacher's top-1 for it;
    and the image rows the crops come from (one per crop; skipped rows have none)."""
    labels = load_label_set(labels_dir)
    stored = labels.metadata.stored_crops
    dataset = FKDCropDataset(
        join_labels(images, labels), labels.metadata, stored, size, seed=seed, image_column=images.image_column
    )
    samples = _decoded(dataset, threads, "held-out crops")
    pixels = np.concatenate([sample["pixel_values"].numpy() for sample in samples])
    teacher_top1 = np.concatenate([sample["topk_indices"][:, 0].numpy() for sample in samples]).astype(np.int64)
    return CachedEval(pixels, teacher_top1), np.repeat(dataset.row_ids, stored)
