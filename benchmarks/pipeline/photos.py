"""The photos every method reads, and the joined label rows (random labels) that the FKD methods train from."""

from __future__ import annotations

import io

import datasets
import numpy as np
import torch
from PIL import Image

from fkd_hf.labels.crops import DEFAULT_RATIO, DEFAULT_SCALE, crop_rng, sample_crops
from fkd_hf.labels.decode import JPEG_MAGIC
from fkd_hf.labels.format import LabelSetMetadata, label_features, rows_to_table
from fkd_hf.labels.images import decode_image, image_bytes, image_key, load_images
from fkd_hf.labels.kinds import resolve_k

from .settings import AS_IS, KIND, MAP_K, MAP_SIZE, PHOTO_SIZE, REENCODED


def train_photos(dataset: str, count: int, form: str = REENCODED) -> list[bytes]:
    """``count`` random train photos of ``dataset``: their own encoded bytes (``form`` "as-is"), or resized to
    500x375 and re-encoded as JPEG quality 90 ("500x375-q90")."""
    source = load_images(dataset, split="train")
    rows = source.dataset.shuffle(seed=0).select(range(min(count, source.num_rows)))
    photos = [image_bytes(value) for value in rows[source.image_column]]
    if form == AS_IS:
        return photos
    reencoded = []
    for data in photos:
        buffer = io.BytesIO()
        decode_image(data).resize(PHOTO_SIZE, Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
        reencoded.append(buffer.getvalue())
    return reencoded


def describe(photos: list[bytes], form: str) -> str:
    """What the photos are, for the report: how they were encoded, their sizes and formats."""
    if form != AS_IS:
        return f"{len(photos)} photos at 500x375 (JPEG q90)"
    sizes = np.array([Image.open(io.BytesIO(data)).size for data in photos])
    area = sizes.prod(1)
    median, small, large = (sizes[np.argsort(area)[i]] for i in (len(area) // 2, 0, -1))
    jpeg = sum(data.startswith(JPEG_MAGIC) for data in photos)
    return (
        f"{len(photos)} photos as they are ({jpeg} JPEG; median {median[0]}x{median[1]}, from "
        f"{small[0]}x{small[1]} to {large[0]}x{large[1]} px)"
    )


def training_rows(photos: list[bytes], stored: int, classes: int):
    """(joined FKD rows of ``photos``, their LabelSetMetadata, ReLabel maps): R crops per photo sampled as generation
    samples them, random top-k labels and maps; the metadata's replay is the default (tensor)."""
    rng, n, k = np.random.default_rng(0), len(photos), resolve_k(KIND, None, classes)
    crops, flips = zip(
        *(
            sample_crops(*Image.open(io.BytesIO(data)).size[::-1], stored, crop_rng(0, row))
            for row, data in enumerate(photos)
        )
    )
    values = -np.sort(-rng.random((n, stored, k)), axis=-1) / k
    labels = {
        "image_key": [image_key(data) for data in photos],
        "crops": np.stack(crops),
        "flips": np.stack(flips),
        "topk_indices": rng.integers(0, classes, (n, stored, k)),
        "topk_values": values,
    }
    images = datasets.Dataset.from_dict(
        {"image": [{"bytes": data, "path": None} for data in photos], "label": rng.integers(0, classes, n).tolist()},
        features=datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")}),
    )
    table = rows_to_table(labels, label_features(stored, k, classes))
    rows = datasets.concatenate_datasets([images, datasets.Dataset(table)], axis=1)
    metadata = LabelSetMetadata(
        kind=KIND,
        k=k,
        num_classes=classes,
        class_names=[str(i) for i in range(classes)],
        temperature=1.0,
        stored_crops=stored,
        seed=0,
        crop_scale=list(DEFAULT_SCALE),
        crop_ratio=list(DEFAULT_RATIO),
        teacher="random",
        teacher_revision=None,
        teacher_library="timm",
        teacher_input_size=[224, 224],
        teacher_mean=[0.5] * 3,
        teacher_std=[0.5] * 3,
        teacher_interpolation="bicubic",
        teacher_class_indices=None,
        precision="fp32",
        dataset="photos",
        dataset_config=None,
        dataset_split="train",
        dataset_revision=None,
        image_column="image",
        label_column="label",
        num_rows=n,
    )
    maps = (rng.integers(0, classes, (n, MAP_SIZE, MAP_SIZE, MAP_K)), rng.normal(size=(n, MAP_SIZE, MAP_SIZE, MAP_K)))
    return rows, metadata, (torch.from_numpy(maps[0]), torch.from_numpy(maps[1]).float())
