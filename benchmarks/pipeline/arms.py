"""The measured methods ("arms"): each an endless stream of collated batches, and the crop ops they are made of."""

from __future__ import annotations

import dataclasses
import io
import itertools

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms import functional as TF

from fkd_hf.labels.crops import DEFAULT_RATIO, DEFAULT_SCALE, crop_rng, crops_to_pixels, replay_crops, sample_crops
from fkd_hf.labels.decode import decode_for_replay, decode_pixels, decoded_size
from fkd_hf.labels.format import LABEL_COLUMNS, LabelSetMetadata, fixed_size_to_numpy
from fkd_hf.labels.images import image_bytes, image_key
from fkd_hf.labels.kinds import reconstruct
from fkd_hf.training import FKDCropDataset, SpreadCropDataset, collate_crops
from fkd_hf.training.data import PassDataset, select_crops

from ..relabel import relabel_targets
from .settings import TEACHER


def imagefolder_decode(data: bytes) -> Image.Image:
    """torchvision's ImageFolder decoding (its ``pil_loader``), which the official FKD loader uses too."""
    return Image.open(io.BytesIO(data)).convert("RGB")


def torchvision_crop(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, tuple[float, ...]]:
    """plain's crop of a PIL image: RandomResizedCrop + RandomHorizontalFlip (the calls of their ``forward``)."""
    top, left, h, w = RandomResizedCrop.get_params(image, list(DEFAULT_SCALE), list(DEFAULT_RATIO))
    out = TF.resized_crop(image, top, left, h, w, list(size), antialias=True)
    if torch.rand(1) < 0.5:
        out = TF.hflip(out)
    return np.array(out), (top / image.height, left / image.width, h / image.height, w / image.width)


def official_crops(image: Image.Image, boxes: np.ndarray, flips: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The official FKD loader's replay (``RandomResizedCrop_FKD`` then ``RandomHorizontalFlip_FKD`` of FKD's
    ``utils_FKD.py``): torchvision's ``resized_crop`` of the PIL image at the float pixel ``boxes`` (the stored
    fractions times the photo's size), bilinear, then the stored flip. uint8 ``[n, h, w, 3]``."""
    out = []
    for (top, left, h, w), flip in zip(np.asarray(boxes).tolist(), np.asarray(flips).tolist()):
        crop = TF.resized_crop(image, top, left, h, w, list(size), TF.InterpolationMode.BILINEAR, antialias=True)
        out.append(np.array(TF.hflip(crop) if flip else crop))
    return np.stack(out)


class SingleCrops(torch.utils.data.Dataset):
    """Single-crop training samples (one fresh crop per decoded photo) with ``ops`` "torchvision" or "tensor"; with
    ``maps``, the photo's ReLabel map and the crop's box (fractions of the photo)."""

    def __init__(self, rows, size: tuple[int, int], ops: str, maps=None):
        self.images, self.labels = rows.select_columns(["image"]).with_format("arrow"), np.asarray(rows["label"])
        self.size, self.ops, self.maps, self.rng = size, ops, maps, np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices) -> list[dict]:
        samples = []
        for i, value in zip(indices, self.images[list(indices)].column("image").to_pylist()):
            data = image_bytes(value)
            if self.ops == "torchvision":
                pixels, box = torchvision_crop(imagefolder_decode(data), self.size)
            else:  # decode_pixels, one RandomResizedCrop box + flip, the tensor replay
                image = decode_pixels(data)
                crops, flips = sample_crops(*decoded_size(image), 1, self.rng)
                pixel_box = crops_to_pixels(crops, *decoded_size(image))
                pixels, box = replay_crops(image, pixel_box, flips, self.size, "bilinear", "tensor")[0], crops[0]
            sample = {"pixel_values": torch.from_numpy(pixels), "labels": int(self.labels[i])}
            if self.maps is not None:
                sample.update(
                    boxes=torch.tensor(box, dtype=torch.float32),
                    map_indices=self.maps[0][i],
                    map_values=self.maps[1][i],
                )
            samples.append(sample)
        return samples


class OfficialFKDCrops(PassDataset):
    """FKD samples as the official loader makes them (``ImageFolder_FKD_MIX``): the photo decoded by ImageFolder's
    PIL loader, then :func:`official_crops` of the same stored crops :class:`FKDCropDataset` replays in this pass,
    with their stored top-k labels (read from the Arrow rows, where the official loader reads a file per photo)."""

    def __init__(self, rows, metadata: LabelSetMetadata, num_crops: int, size: tuple[int, int]):
        super().__init__()
        self.rows = rows.select_columns(["image", *LABEL_COLUMNS]).with_format("arrow")
        self.stored = metadata.stored_crops
        self.num_crops, self.size = num_crops, size

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices) -> list[dict]:
        table, n, samples = self.rows[list(indices)], len(indices), []
        boxes = fixed_size_to_numpy(table.column("crops"), (n, self.stored, 4)).astype(np.float64)
        flips = fixed_size_to_numpy(table.column("flips"), (n, self.stored))
        top_i = fixed_size_to_numpy(table.column("topk_indices"), (n, self.stored, -1))
        top_v = fixed_size_to_numpy(table.column("topk_values"), (n, self.stored, -1))
        for j, (row, value) in enumerate(zip(indices, table.column("image").to_pylist())):
            image = imagefolder_decode(image_bytes(value))
            chosen = select_crops(0, row, self.pass_index, self.stored, self.num_crops)
            scale = np.array([image.height, image.width, image.height, image.width])
            pixels = official_crops(image, boxes[j][chosen] * scale, flips[j][chosen], self.size)
            samples.append(
                {
                    "pixel_values": torch.from_numpy(pixels),
                    "sample_id": int(row),
                    "topk_indices": torch.from_numpy(top_i[j][chosen]),
                    "topk_values": torch.from_numpy(top_v[j][chosen]),
                }
            )
        return samples


def device_crops(
    images: list[torch.Tensor],
    boxes: list[np.ndarray],
    flips: list[np.ndarray],
    size: tuple[int, int],
    device: str | torch.device,
) -> torch.Tensor:
    """Decoded uint8 ``[3, H, W]`` photos cropped at pixel ``boxes`` and resized to ``size`` on ``device`` in one
    batch (float antialiased bilinear, rounded): uint8 ``[N, 3, h, w]``, photo-major, within a level of the
    ``tensor`` replay. The CPU only decodes and launches (asynchronously: the caller synchronises)."""
    out = []
    for image, image_boxes, image_flips in zip(images, boxes, flips):
        x = image.to(device, non_blocking=True).unsqueeze(0).float()
        for (top, left, h, w), flip in zip(np.asarray(image_boxes).tolist(), np.asarray(image_flips).tolist()):
            crop = F.interpolate(x[..., top : top + h, left : left + w], size=size, mode="bilinear", antialias=True)
            out.append(crop.flip(-1) if flip else crop)
    return torch.cat(out).round_().clamp_(0, 255).to(torch.uint8)


def forever(loader: torch.utils.data.DataLoader):
    """The loader's batches, pass after pass (each pass announced to a pass-aware dataset)."""
    if len(loader) == 0:
        raise ValueError(f"{len(loader.dataset)} photos make no full batch of {loader.batch_size}: give more --photos.")
    for pass_index in itertools.count():
        if hasattr(loader.dataset, "set_pass"):
            loader.dataset.set_pass(pass_index)
        yield from loader


def training_arms(rows, metadata: LabelSetMetadata, maps, size: tuple[int, int], args) -> dict:
    """method -> (its batches, batches per timed unit, its target builder or None) at crop ``size``."""
    m, classes, images = args.num_crops, metadata.num_classes, args.batch_crops // args.num_crops

    def loader(dataset, batch_size, shuffle=True):
        """(batches, batches per timed unit: one, or a whole pass for an ordered layout whose cost varies by step)."""
        batches = torch.utils.data.DataLoader(dataset, batch_size, shuffle, collate_fn=collate_crops, drop_last=True)
        return forever(batches), 1 if shuffle else len(batches)

    def relabel(batch):
        crop_image = torch.arange(len(batch["boxes"]))
        return relabel_targets(batch["map_indices"], batch["map_values"], crop_image, batch["boxes"], classes)

    def fkd(batch):
        return reconstruct(batch["topk_indices"], batch["topk_values"], metadata.kind, classes)

    arms = {
        "plain": (*loader(SingleCrops(rows, size, "torchvision"), args.batch_crops), None),
        "plain_fast": (*loader(SingleCrops(rows, size, "tensor"), args.batch_crops), None),
        "relabel": (*loader(SingleCrops(rows, size, "tensor", maps), args.batch_crops), relabel),
        "relabel_pil": (*loader(SingleCrops(rows, size, "torchvision", maps), args.batch_crops), relabel),
        "fkd": (*loader(FKDCropDataset(rows, metadata, m, size), images), fkd),
        "fkd_pil": (*loader(FKDCropDataset(rows, dataclasses.replace(metadata, replay="pil"), m, size), images), fkd),
        "fkd_official": (*loader(OfficialFKDCrops(rows, metadata, m, size), images), fkd),
    }
    spread = SpreadCropDataset(rows, metadata, m, size, batch_size=images)
    arms["fkd_spread"] = (*loader(spread, images, shuffle=False), fkd)
    return arms


def generation_batches(photos: list[bytes], stored: int, replay: str, batch_crops: int):
    """Generation's CPU side, batch by batch: per photo its key, decode, R sampled crops replayed at the teacher's
    size; per batch the teacher's uint8 input."""
    row, (size, interpolation) = 0, ((TEACHER[0], TEACHER[0]), TEACHER[1])
    while True:
        pixels = []
        for _ in range(max(1, batch_crops // stored)):
            data = photos[row % len(photos)]
            image_key(data)
            image = decode_for_replay(data, replay)
            height, width = decoded_size(image)
            crops, flips = sample_crops(height, width, stored, crop_rng(0, row))
            pixels.append(
                replay_crops(image, crops_to_pixels(crops, height, width), flips, size, interpolation, replay)
            )
            row += 1
        yield {"pixel_values": torch.from_numpy(np.concatenate(pixels)).permute(0, 3, 1, 2)}
