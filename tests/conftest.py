"""Shared fixtures: tiny synthetic photos and a tiny timm teacher, made offline in the test session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGENETTE = REPO_ROOT.parent / "shared" / "data" / "imagenette-mini"
TINY_CLASSES = ("cat", "dog", "fox")
TEACHER_SIZE = 32

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def assert_same_logits(actual, expected) -> None:
    """Logits of one set of weights loaded two ways. Not bit-equal: a memory-mapped safetensors tensor can sit at
    another alignment than a copied one, and the CPU kernels then take another SIMD path (differences ~1e-7)."""
    import torch

    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def make_image_folder(root: Path, per_class: int = 6, seed: int = 0) -> Path:
    """An imagefolder of small JPEG and PNG photos of several sizes and aspect ratios, one folder per class."""
    rng = np.random.default_rng(seed)
    sizes = [(48, 64), (64, 48), (40, 40), (72, 56)]
    for c, name in enumerate(TINY_CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = sizes[(c + i) % len(sizes)]
            base = np.zeros((h, w, 3), dtype=np.uint8)
            base[..., c] = 180  # a class-dependent colour, plus noise
            pixels = np.clip(base + rng.integers(0, 75, size=(h, w, 3)), 0, 255).astype(np.uint8)
            suffix = "png" if i % 3 == 0 else "jpg"
            Image.fromarray(pixels).save(root / name / f"{name}_{i:02d}.{suffix}")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("images"))


def make_timm_teacher(folder: Path, num_classes: int = len(TINY_CLASSES), seed: int = 0) -> Path:
    """A randomly initialised timm classifier saved in timm's Hub format (config.json + safetensors)."""
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(
        "test_resnet",
        num_classes=num_classes,
        pretrained_cfg_overlay=dict(input_size=(3, TEACHER_SIZE, TEACHER_SIZE)),
    )
    timm.models.save_for_hf(model, folder, model_config={"label_names": list(TINY_CLASSES)}, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory) -> Path:
    return make_timm_teacher(tmp_path_factory.mktemp("teacher"))


@pytest.fixture
def generate_config(image_folder, teacher_dir, tmp_path):
    """A fast GenerateConfig on the tiny photos; tests change what they need."""
    from fkd_hf import GenerateConfig

    def make(**overrides) -> GenerateConfig:
        options = dict(
            dataset=f"imagefolder:{image_folder}",
            output_dir=str(tmp_path / "labels"),
            teacher=str(teacher_dir),
            stored_crops=3,
            k=2,
            batch_size=8,
            num_workers=1,
        )
        options.update(overrides)
        return GenerateConfig(**options)

    return make
