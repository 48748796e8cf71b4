"""The multi-crop loader: decode each image once and replay ``num_crops`` of its stored crops with their soft labels.

Batch semantics: a batch of B images (``per_device_train_batch_size`` counts images) holds ``B x num_crops`` crops,
image-major (the crops of image 0, then of image 1, ...). FKD's ``-b 1024 --num_crops 4`` is 256 images x 4 crops
per optimizer step over all devices.

Crop selection, without replacement as in FKD: with R stored crops and ``num_crops = m`` per pass, image ``i`` in
pass ``p`` draws the permutation ``perm = default_rng([seed, i, p // (R // m)]).permutation(R)`` and uses the slice
``perm[(p % (R // m)) * m : ... + m]``. Every R // m passes see each stored crop once; the crops depend only on
``(seed, i, p)``, never on worker count or on resuming.

Pixels stay uint8 (``[N, 3, H, W]`` in channels-last memory) until the device: :func:`normalize` runs there, four
times less data to move than float32 and no float work on the loader's CPUs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import datasets
import numpy as np
import torch
from PIL import Image
from torch.utils.data import default_collate

from ..labels.crops import crops_to_pixels, replay_crop, resample_filter
from ..labels.images import decode_image, image_bytes, image_key
from ..labels.attach import LabelMismatchError
from ..labels.format import LABEL_COLUMNS, LabelSetMetadata, fixed_size_to_numpy

__all__ = [
    "select_crops",
    "PassDataset",
    "FKDCropDataset",
    "EvalDataset",
    "eval_transform",
    "collate_crops",
]


def select_crops(seed: int, row: int, pass_index: int, num_stored: int, num_crops: int) -> np.ndarray:
    """Indices of the ``num_crops`` stored crops that image ``row`` replays in pass ``pass_index`` (see module doc)."""
    passes_per_cycle = num_stored // num_crops
    cycle, slot = divmod(pass_index, passes_per_cycle)
    order = np.random.default_rng([seed, row, cycle]).permutation(num_stored)
    return order[slot * num_crops : (slot + 1) * num_crops]


class PassDataset(torch.utils.data.Dataset):
    """A map-style dataset whose samples depend on the pass over the data: :class:`~fkd_hf.FKDTrainer` calls
    :meth:`set_pass` when a pass begins, and the pass index is shared with (persistent) loader workers.
    Subclasses implement ``__getitems__`` (a batch of indices -> a list of samples) and ``__len__``."""

    def __init__(self):
        self._pass = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def pass_index(self) -> int:
        return int(self._pass[0])

    def set_pass(self, pass_index: int) -> None:
        """Selects the crops of pass ``pass_index`` for every sample read from now on, in every worker."""
        self._pass[0] = pass_index

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]


class FKDCropDataset(PassDataset):
    """Joined image + label rows (see :func:`~fkd_hf.join.join_labels`) as FKD training samples.

    Each sample is one image: ``pixel_values`` uint8 ``[num_crops, H, W, 3]``, ``topk_indices`` and ``topk_values``
    ``[num_crops, k]`` as stored, and ``sample_id`` (``pass * len(rows) + row``, a stable id for batch-level
    randomness). Rows the label set records as skipped are left out. The image key of every row is checked against
    the label set as the row is read. Call :meth:`set_pass` when a pass over the data begins (FKDTrainer does).
    """

    def __init__(
        self,
        rows: datasets.Dataset,
        metadata: LabelSetMetadata,
        num_crops: int,
        size: Sequence[int],
        interpolation: str = "bilinear",
        seed: int = 0,
        image_column: str = "image",
    ):
        if not 1 <= num_crops <= metadata.stored_crops:
            raise ValueError(
                f"num_crops must be between 1 and the {metadata.stored_crops} crops the label set stores per image, got "
                f"{num_crops}: lower num_crops, or generate labels with `fkd-hf generate --stored_crops {num_crops}`."
            )
        resample_filter(interpolation)  # fail early on an unknown name
        super().__init__()
        self.rows = rows.select_columns([image_column, *LABEL_COLUMNS]).with_format("arrow")
        self.metadata = metadata
        self.num_crops = num_crops
        self.size = (int(size[0]), int(size[1]))
        self.interpolation = interpolation
        self.seed = int(seed)
        self.image_column = image_column
        skipped = np.asarray(metadata.skipped_rows, dtype=np.int64)
        self.row_ids = np.setdiff1d(np.arange(len(rows)), skipped)

    def __len__(self) -> int:
        return len(self.row_ids)

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """Reads a batch of rows with one Arrow take, then decodes each image once and replays its crops."""
        rows = self.row_ids[np.asarray(indices, dtype=np.int64)]
        table = self.rows[rows.tolist()]
        n = len(rows)
        stored = self.metadata.stored_crops
        crops = fixed_size_to_numpy(table.column("crops"), (n, stored, 4))
        flips = fixed_size_to_numpy(table.column("flips"), (n, stored))
        indices_k = fixed_size_to_numpy(table.column("topk_indices"), (n, stored, -1))
        values_k = fixed_size_to_numpy(table.column("topk_values"), (n, stored, -1))
        keys = table.column("image_key").to_pylist()
        images = table.column(self.image_column).to_pylist()
        pass_index = self.pass_index
        samples = []
        for j, row in enumerate(rows.tolist()):
            data = image_bytes(images[j])
            if image_key(data) != keys[j]:
                raise LabelMismatchError(row, keys[j], image_key(data), self.metadata)
            image = decode_image(data)
            chosen = select_crops(self.seed, row, pass_index, self.metadata.stored_crops, self.num_crops)
            boxes = crops_to_pixels(crops[j][chosen], image.height, image.width)
            pixels = np.stack(
                [
                    np.asarray(replay_crop(image, box, bool(flip), self.size, self.interpolation))
                    for box, flip in zip(boxes, flips[j][chosen])
                ]
            )
            samples.append(
                {
                    "pixel_values": torch.from_numpy(pixels),
                    "topk_indices": torch.from_numpy(indices_k[j][chosen]),
                    "topk_values": torch.from_numpy(values_k[j][chosen]),
                    "sample_id": pass_index * len(self.rows) + row,
                }
            )
        return samples


def eval_transform(image: Image.Image, size: Sequence[int], crop_pct: float, interpolation: str) -> Image.Image:
    """timm's evaluation transform: resize the shorter side to ``floor(size / crop_pct)``, then centre-crop ``size``.

    Matches ``timm.data.create_transform(..., is_training=False)`` (torchvision ``Resize`` + ``CenterCrop``).
    """
    height, width = int(size[0]), int(size[1])
    scale = math.floor(min(height, width) / crop_pct)
    short, long = sorted((image.width, image.height))
    new_short, new_long = scale, int(scale * long / short)
    new_w, new_h = (new_short, new_long) if image.width <= image.height else (new_long, new_short)
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), resample_filter(interpolation))
    top, left = int(round((new_h - height) / 2.0)), int(round((new_w - width) / 2.0))
    return image.crop((left, top, left + width, top + height))


class EvalDataset(torch.utils.data.Dataset):
    """A labelled image split for evaluation: ``pixel_values`` uint8 ``[H, W, 3]`` after :func:`eval_transform`, and
    ``labels`` mapped to the label set's class order by ``label_map`` (dataset label -> class index)."""

    def __init__(
        self,
        rows: datasets.Dataset,
        size: Sequence[int],
        crop_pct: float,
        interpolation: str,
        image_column: str = "image",
        label_column: str = "label",
        label_map: Sequence[int] | None = None,
    ):
        self.rows = rows.select_columns([image_column, label_column])
        self.size, self.crop_pct, self.interpolation = (int(size[0]), int(size[1])), float(crop_pct), interpolation
        self.image_column, self.label_column = image_column, label_column
        self.label_map = None if label_map is None else np.asarray(label_map, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        batch = self.rows[list(indices)]
        samples = []
        for value, label in zip(batch[self.image_column], batch[self.label_column]):
            image = eval_transform(decode_image(image_bytes(value)), self.size, self.crop_pct, self.interpolation)
            label = int(label) if self.label_map is None else int(self.label_map[label])
            samples.append({"pixel_values": torch.from_numpy(np.array(image)), "labels": label})
        return samples


def collate_crops(samples: list[dict]) -> dict:
    """Stacks samples of :class:`FKDCropDataset` or :class:`EvalDataset` into a batch.

    ``pixel_values`` becomes uint8 ``[N, 3, H, W]`` in channels-last memory (N = images x crops, image-major);
    ``topk_*`` become ``[N, k]``; ``sample_id`` becomes the list ``sample_ids``.
    """
    batch = default_collate(samples)
    batch["pixel_values"] = batch["pixel_values"].flatten(0, -4).permute(0, 3, 1, 2)
    if "topk_indices" in batch:
        batch["topk_indices"] = batch["topk_indices"].flatten(0, 1)
        batch["topk_values"] = batch["topk_values"].flatten(0, 1)
        batch["sample_ids"] = batch.pop("sample_id").tolist()
    return batch
