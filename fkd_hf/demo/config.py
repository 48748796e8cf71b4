"""``DemoConfig``: the options of ``fkd-hf demo``. Importing it loads neither torch nor the datasets library, so
``fkd-hf demo --help`` prints at once."""

from __future__ import annotations

import dataclasses
import math

from ..errors import UsageError
from ..models.precision import resolve_precision

__all__ = ["DemoConfig", "PHOTO_DEFAULTS", "DATASET_DEFAULTS", "device_type"]


def device_type() -> str:
    """Where the Trainer and ``generate`` run: the accelerator (CUDA, MPS, ...) if there is one, else the CPU."""
    import torch

    return torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"


_field = dataclasses.field

# Defaults that depend on the data: the sample photos (20 images) or a real dataset (thousands of images).
PHOTO_DEFAULTS = dict(stored_crops=32, num_crops=8, fkd_epochs=400, batch_size=20, learning_rate=0.01, temperature=1.0)
DATASET_DEFAULTS = dict(stored_crops=4, num_crops=4, fkd_epochs=16, batch_size=64, learning_rate=0.008, temperature=1.0)


@dataclasses.dataclass
class DemoConfig:
    """Options of ``fkd-hf demo``; every field is a flag. Fields left unset get defaults that suit the data."""

    dataset: str | None = _field(
        default=None,
        metadata={
            "help": "Images: a Hub id, imagefolder:PATH or a folder (class subfolders, or train/ and val/). "
            "Default: the 20 ImageNet sample photos of the PyPI package foolbox (offline)."
        },
    )
    teacher: str = _field(
        default="efficientnet-lite0",
        metadata={"help": "Any teacher `fkd-hf generate` accepts (default: ImageNet-1k efficientnet-lite0, offline)."},
    )
    output_dir: str = _field(default="outputs/demo", metadata={"help": "Folder for the results (replaced on rerun)."})
    compare: bool = _field(
        default=False, metadata={"help": "Also train a plain student on hard labels with the same budget."}
    )
    class_map: str | None = _field(
        default=None,
        metadata={
            "help": "Restrict the teacher to the data's classes: 'auto' (by class name or WordNet id), a comma "
            "list or JSON file of teacher classes, or 'none' to keep all teacher classes. Default: "
            "'auto' with --dataset, 'none' (all 1000 ImageNet classes) for the sample photos."
        },
    )
    dataset_config: str | None = _field(default=None, metadata={"help": "Hub dataset config name."})
    train_split: str = _field(default="train", metadata={"help": "Split the teacher labels and the students learn."})
    eval_split: str | None = _field(
        default=None,
        metadata={
            "help": "Labelled split to evaluate on (default: validation/val, else test, else every 10th train "
            "image held out)."
        },
    )
    max_eval_images: int | None = _field(
        default=None, metadata={"help": "Evaluate on this many evenly spaced eval images (default: all)."}
    )
    student: str = _field(default="resnet10t", metadata={"help": "Student: a timm architecture, trained from scratch."})
    input_size: int = _field(default=64, metadata={"help": "Student input size (pixels)."})
    stored_crops: int | None = _field(
        default=None, metadata={"help": "R: crops the teacher labels per image (default: 32 photos / 4 dataset)."}
    )
    num_crops: int | None = _field(
        default=None, metadata={"help": "m: stored crops replayed per image and pass (default: 8 photos / 4 dataset)."}
    )
    fkd_epochs: float | None = _field(
        default=None,
        metadata={"help": "Training length in FKD epochs = passes x m (default: 400 photos / 16 dataset)."},
    )
    batch_size: int | None = _field(
        default=None, metadata={"help": "Images per step; each gives m crops (default: 20 photos / 64 dataset)."}
    )
    learning_rate: float | None = _field(
        default=None,
        metadata={"help": "AdamW peak learning rate, cosine schedule (default: 0.01 photos / 0.008 dataset)."},
    )
    weight_decay: float = _field(default=0.05, metadata={"help": "AdamW weight decay."})
    temperature: float | None = _field(
        default=None, metadata={"help": "Teacher softmax temperature of the stored soft labels (default: 1)."}
    )
    heldout_crops: int = _field(
        default=16, metadata={"help": "Sample photos only: crops per photo, never trained on, for the agreement score."}
    )
    teacher_batch_size: int = _field(default=64, metadata={"help": "Crops per teacher forward pass."})
    precision: str = _field(
        default="auto",
        metadata={
            "help": "Teacher and student arithmetic: fp32, bf16, or auto (bf16 on GPUs and CPUs with bf16 "
            "units (AMX, AVX512-BF16): about 2x faster there; else fp32)."
        },
    )
    num_workers: int = _field(default=2, metadata={"help": "Image decoding threads."})
    seed: int = _field(default=0, metadata={"help": "Seed of crops, initialisation and data order."})

    def __post_init__(self):
        if isinstance(self.class_map, str) and self.class_map.lower() in ("none", "null", "all"):
            self.class_map = "none"
        for name in (
            "input_size",
            "stored_crops",
            "num_crops",
            "batch_size",
            "heldout_crops",
            "teacher_batch_size",
            "max_eval_images",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}.")
        for name in ("fkd_epochs", "learning_rate", "temperature"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number, got {value}.")
        if self.num_workers < 0 or self.weight_decay < 0:
            raise ValueError("num_workers and weight_decay must be at least 0.")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}.")

    def resolved(self) -> DemoConfig:
        """A copy with the data-dependent defaults filled in; checks that m <= R."""
        defaults = PHOTO_DEFAULTS if self.dataset is None else DATASET_DEFAULTS
        defaults = {**defaults, "class_map": "none" if self.dataset is None else "auto"}
        values = {
            name: value if getattr(self, name) is None else getattr(self, name) for name, value in defaults.items()
        }
        values["precision"] = resolve_precision(self.precision, device_type())
        config = dataclasses.replace(self, **values)
        if config.num_crops > config.stored_crops:
            raise UsageError(
                f"num_crops (m = {config.num_crops}) cannot exceed stored_crops (R = {config.stored_crops}): each pass "
                "replays m of the R crops the teacher labelled."
            )
        return config
