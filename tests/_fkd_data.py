"""Training-test data built on conftest's helpers: tiny photos with train/ and val/ splits, and their label set."""

from __future__ import annotations

from pathlib import Path

from conftest import TINY_CLASSES, make_image_folder, make_timm_teacher

__all__ = ["TINY_CLASSES", "make_splits", "make_label_set", "make_timm_teacher"]


def make_splits(root: Path, train_per_class: int = 4, val_per_class: int = 2) -> Path:
    """``root/train/<class>/`` and ``root/val/<class>/``, different photos in each."""
    make_image_folder(root / "train", per_class=train_per_class, seed=0)
    make_image_folder(root / "val", per_class=val_per_class, seed=1)
    return root


def make_label_set(images: Path, teacher: Path, output: Path, num_crops: int = 4, **overrides) -> Path:
    """Runs ``fkd-hf generate`` on the train split of ``images`` with the tiny teacher."""
    from fkd_hf import GenerateConfig, generate

    options = dict(
        dataset=f"imagefolder:{images}",
        output_dir=str(output),
        teacher=str(teacher),
        stored_crops=num_crops,
        k=2,
        num_workers=0,
        batch_size=64,
    )
    options.update(overrides)
    generate(GenerateConfig(**options))
    return output
