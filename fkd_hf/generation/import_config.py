"""``ImportFKDConfig``: the options of ``fkd-hf import-fkd``. Importing it loads neither torch nor the datasets
library, so ``fkd-hf import-fkd --help`` prints at once.

The teacher defaults are those of the official generator's example command (``tf_efficientnet_l2_ns_475``, 475 px,
bicubic, ImageNet mean and std, crop scale 0.08-0.936): the files do not record them, so they are recorded as given.
"""

from __future__ import annotations

import dataclasses
import math

from ..labels.crops import DEFAULT_RATIO, check_crop_ranges
from ..labels.official import IMPORTABLE_KINDS, LABEL_TYPES, resolve_kind
from .config import check_normalization

__all__ = ["ImportFKDConfig"]

_field = dataclasses.field
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclasses.dataclass
class ImportFKDConfig:
    """Options of ``fkd-hf import-fkd``; each field is also a command-line flag."""

    label_dir: str = _field(metadata={"help": "Folder of official FKD label files (<split>/<wnid>/<stem>.tar)."})
    dataset: str = _field(metadata={"help": "The images they label: imagefolder:PATH, a folder, or a Hub id."})
    output_dir: str = _field(metadata={"help": "Folder for the label set (parquet shards + metadata)."})
    teacher: str = _field(default="tf_efficientnet_l2_ns_475", metadata={"help": "Teacher that made the files."})
    temperature: float = _field(default=1.0, metadata={"help": "Softmax temperature the files were made with."})
    kind: str | None = _field(
        default=None,
        metadata={
            "help": f"One of {', '.join(IMPORTABLE_KINDS)} or an official --label_type "
            f"({', '.join(LABEL_TYPES)}). Default: from the files' shape (R x 2 x k: "
            "marginal_smoothing)."
        },
    )
    num_classes: int | None = _field(
        default=None, metadata={"help": "Classes of the teacher (default: the dataset's class count)."}
    )
    input_size: int = _field(default=475, metadata={"help": "Teacher input size the files were made at."})
    interpolation: str = _field(default="bicubic", metadata={"help": "Teacher interpolation."})
    mean: list[float] = _field(default_factory=lambda: list(IMAGENET_MEAN), metadata={"help": "Teacher mean."})
    std: list[float] = _field(default_factory=lambda: list(IMAGENET_STD), metadata={"help": "Teacher std."})
    crop_scale: list[float] = _field(default_factory=lambda: [0.08, 0.936], metadata={"help": "RRC scale range used."})
    crop_ratio: list[float] = _field(default_factory=lambda: list(DEFAULT_RATIO), metadata={"help": "RRC ratio range."})
    dataset_config: str | None = _field(default=None, metadata={"help": "Hub dataset config name."})
    split: str = _field(default="train", metadata={"help": "Dataset split the files label."})
    revision: str | None = _field(default=None, metadata={"help": "Dataset revision on the Hub."})
    image_column: str = _field(default="image", metadata={"help": "Name of the image column."})
    label_column: str | None = _field(default="label", metadata={"help": "Class-label column (names)."})
    max_rows: int | None = _field(default=None, metadata={"help": "Import only the first N rows."})
    rows_per_shard: int | None = _field(default=None, metadata={"help": "Source rows per shard."})
    num_shards: int | None = _field(default=None, metadata={"help": "Number of shards (sets rows/shard)."})
    num_workers: int = _field(default=2, metadata={"help": "File reading threads per process."})
    overwrite: bool = _field(default=False, metadata={"help": "Replace an existing, different label set."})
    skip_missing: bool = _field(
        default=False,
        metadata={
            "help": "Record images without a usable label file as skipped rows, and ignore label files without "
            "an image, instead of stopping."
        },
    )

    def __post_init__(self):
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive number, got {self.temperature}.")
        if self.kind is not None:
            resolve_kind(self.kind)
        for name in ("num_classes", "input_size", "max_rows", "rows_per_shard", "num_shards"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}.")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be at least 0, got {self.num_workers}.")
        check_normalization(self.mean, self.std)
        check_crop_ranges(self.crop_scale, self.crop_ratio)
