"""The demo's label sets: the teacher's soft labels through :func:`fkd_hf.generation.generate`, and the plain
student's hard labels through :func:`fkd_hf.labels.write_label_set` (the one label-set writer)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from ..generation import GenerateConfig, GenerateSummary, generate
from ..hub.label_card import write_label_set_card
from ..labels.attach import join_labels
from ..labels.crops import crop_rng, sample_crops
from ..labels.format import load_label_set
from ..labels.images import image_bytes
from ..labels.kinds import DEFAULT_K
from ..labels.writer import write_label_set
from .config import DemoConfig
from .data import DemoData

__all__ = ["generate_labels", "hard_labels"]

KIND = "marginal_smoothing"


def generate_labels(
    config: DemoConfig, data: DemoData, output_dir: Path, stored_crops: int, seed: int, num_classes: int
) -> GenerateSummary:
    """``fkd-hf generate`` on the demo's training images into ``output_dir``. Its closing line, which names the
    demo's unfinished folder, is left out: the demo says where the result goes."""
    options = GenerateConfig(
        dataset=data.spec,
        output_dir=str(output_dir),
        teacher=config.teacher,
        dataset_config=config.dataset_config,
        split=config.train_split,
        class_map=data.class_map,
        stored_crops=stored_crops,
        seed=seed,
        kind=KIND,
        k=min(DEFAULT_K[KIND], num_classes),
        temperature=config.temperature,
        batch_size=config.teacher_batch_size,
        num_workers=config.num_workers,
        precision=config.precision,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        return generate(options)


def _image_sizes(rows, image_column: str, skipped: set[int]) -> list[tuple[int, int] | None]:
    """(height, width) of each row's image from its header (None for skipped rows)."""
    images = rows.select_columns([image_column])
    sizes = []
    for row in range(len(rows)):
        if row in skipped:
            sizes.append(None)
            continue
        with Image.open(io.BytesIO(image_bytes(images[row][image_column]))) as image:
            sizes.append((image.height, image.width))
    return sizes


def hard_labels(config: DemoConfig, data: DemoData, soft_dir: Path, targets: np.ndarray, output_dir: Path) -> Path:
    """A ``hard`` label set for the plain student, row for row with the soft one in ``soft_dir``: a fresh
    random-resized crop per image for every crop of every pass (as plain training samples them), each labelled with
    the image's class (``targets``: the label-set class of each training row)."""
    soft = load_label_set(soft_dir)
    rows = join_labels(data.train, soft)
    crops_per_image = math.ceil(config.fkd_epochs / config.num_crops) * config.num_crops
    n, seed, meta = len(rows), config.seed + 2, soft.metadata
    crops = np.zeros((n, crops_per_image, 4), np.float16)
    flips = np.zeros((n, crops_per_image), bool)
    for row, size in enumerate(_image_sizes(rows, data.train.image_column, set(meta.skipped_rows))):
        if size is not None:
            crops[row], flips[row] = sample_crops(
                *size, crops_per_image, crop_rng(seed, row), meta.crop_scale, meta.crop_ratio
            )
    indices = np.broadcast_to(np.asarray(targets).reshape(n, 1, 1), (n, crops_per_image, 1))
    metadata = dataclasses.replace(
        meta,
        kind="hard",
        k=1,
        stored_crops=crops_per_image,
        seed=seed,
        teacher="none (the dataset's labels)",
        teacher_class_indices=None,
    )
    columns = {
        "image_key": list(rows["image_key"]),
        "crops": crops,
        "flips": flips,
        "topk_indices": indices,
        "topk_values": np.ones(indices.shape, np.float16),
    }
    write_label_set(output_dir, metadata, columns, list(meta.skipped_rows), card=write_label_set_card)
    return output_dir
