"""``GenerateConfig``: the options of ``fkd-hf generate``, checked when made; ``ResolvedGenerate``: the values a run
uses where the options leave them open. Importing it loads neither torch nor the datasets library, so
``fkd-hf generate --help`` prints at once."""

from __future__ import annotations

import dataclasses
import math

from ..labels.crops import DEFAULT_RATIO, DEFAULT_SCALE, check_crop_ranges, check_replay
from ..labels.kinds import KINDS
from ..labels.targets import DEFAULT_TARGET_TYPE, TARGET_TYPES, target_type
from ..models.precision import AUTO, PRECISIONS, resolve_precision

__all__ = ["GenerateConfig", "ResolvedGenerate"]

VERIFY_IMAGES = ("sample", "all", "none")
VERIFY_SAMPLE = 256  # image keys --verify_images sample compares


@dataclasses.dataclass
class GenerateConfig:
    """Options of ``fkd-hf generate``; each field is also a command-line flag."""

    dataset: str = dataclasses.field(metadata={"help": "Hub id, imagefolder:PATH, a folder, or parquet:GLOB."})
    output_dir: str = dataclasses.field(metadata={"help": "Folder for the label set (parquet shards + metadata)."})
    teacher: str = dataclasses.field(default="efficientnet-lite0", metadata={"help": "Teacher spec (see docs)."})
    dataset_config: str | None = dataclasses.field(default=None, metadata={"help": "Hub dataset config name."})
    split: str = dataclasses.field(default="train", metadata={"help": "Dataset split to label."})
    revision: str | None = dataclasses.field(default=None, metadata={"help": "Dataset revision on the Hub."})
    image_column: str = dataclasses.field(default="image", metadata={"help": "Name of the image column."})
    label_column: str | None = dataclasses.field(default="label", metadata={"help": "Class-label column (names)."})
    streaming: bool = dataclasses.field(default=False, metadata={"help": "Stream the dataset instead of downloading."})
    max_rows: int | None = dataclasses.field(default=None, metadata={"help": "Label only the first N rows."})
    teacher_revision: str | None = dataclasses.field(default=None, metadata={"help": "Teacher revision on the Hub."})
    input_size: int | None = dataclasses.field(default=None, metadata={"help": "Override the teacher input size."})
    mean: list[float] | None = dataclasses.field(default=None, metadata={"help": "Override mean."})
    std: list[float] | None = dataclasses.field(default=None, metadata={"help": "Override std."})
    interpolation: str | None = dataclasses.field(default=None, metadata={"help": "Override interpolation."})
    class_map: str | None = dataclasses.field(
        default=None,
        metadata={"help": "Restrict the teacher to the dataset's classes: 'auto', a comma list or a JSON file."},
    )
    stored_crops: int = dataclasses.field(default=8, metadata={"help": "R: crops stored per image."})
    crops_from: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Label the crops and flips this label set stores (same images, checked by image_key), "
            "e.g. a second teacher for `fkd-hf merge-labels`; its R, seed, crop ranges and replay are "
            "used, and its class map and row count unless given."
        },
    )
    target_type: str = dataclasses.field(
        default=DEFAULT_TARGET_TYPE,
        metadata={
            "help": "What each crop stores: class_probabilities (a classifier's soft labels), or, for "
            "self-supervised distillation from an encoder teacher (its classifier, if any, is dropped): "
            "distribution (the softmax of its embedding over the D dimensions at --temperature, stored as "
            "top-k per --kind) or embedding (the vector itself, float16).",
            "choices": tuple(TARGET_TYPES),
        },
    )
    normalize_embeddings: bool = dataclasses.field(
        default=False, metadata={"help": "embedding targets: store them L2-normalised (kind 'normalized')."}
    )
    kind: str = dataclasses.field(default="marginal_smoothing", metadata={"help": f"One of {', '.join(KINDS)}."})
    k: int | None = dataclasses.field(default=None, metadata={"help": "Classes stored per crop (default per kind)."})
    temperature: float = dataclasses.field(default=1.0, metadata={"help": "Softmax temperature of the teacher."})
    crop_scale: list[float] = dataclasses.field(
        default_factory=lambda: list(DEFAULT_SCALE), metadata={"help": "RRC scale range."}
    )
    crop_ratio: list[float] = dataclasses.field(
        default_factory=lambda: list(DEFAULT_RATIO), metadata={"help": "RRC ratio range."}
    )
    batch_size: int = dataclasses.field(default=128, metadata={"help": "Crops per teacher forward pass."})
    precision: str = dataclasses.field(
        default="fp32",
        metadata={
            "help": "Teacher precision: fp32, bf16, fp16, or auto (bf16 on GPUs and CPUs with bf16 units "
            "(AMX, AVX512-BF16), else fp32)."
        },
    )
    seed: int = dataclasses.field(default=0, metadata={"help": "Seed of the crop sampler."})
    replay: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "How stored crops become pixels, recorded in the label set and used again in training: "
            "tensor (torchvision decoding and torch's uint8 resize, bilinear or bicubic; 2-3x less CPU "
            "per crop than pil) or pil. Default: tensor (pil for a teacher with another interpolation); "
            "with --crops_from, that set's."
        },
    )
    rows_per_shard: int | None = dataclasses.field(default=None, metadata={"help": "Source rows per shard."})
    num_shards: int | None = dataclasses.field(default=None, metadata={"help": "Number of shards (sets rows/shard)."})
    num_workers: int = dataclasses.field(default=2, metadata={"help": "Image decoding threads per process."})
    overwrite: bool = dataclasses.field(
        default=False,
        metadata={"help": "Replace a different label set in output_dir (only the files fkd-hf wrote are deleted)."},
    )
    skip_bad_images: bool = dataclasses.field(
        default=False, metadata={"help": "Record undecodable images as skipped rows instead of stopping."}
    )
    verify_images: str = dataclasses.field(
        default="sample",
        metadata={
            "help": f"On a rerun, check the stored image keys against the images: 'sample' ({VERIFY_SAMPLE} "
            f"rows spread over the set; of a stream, its first {VERIFY_SAMPLE}), 'all' or 'none'. "
            "Changed rows are relabelled."
        },
    )

    def __post_init__(self):
        if self.replay is not None:
            check_replay(self.replay)
        if self.stored_crops < 1:
            raise ValueError(f"stored_crops (R) must be at least 1, got {self.stored_crops}.")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive number, got {self.temperature}.")
        label_free = target_type(self.target_type).label_free
        if label_free and self.class_map:
            raise ValueError(
                f"--class_map restricts a classifier's classes; a {self.target_type} label set stores an encoder's "
                "embedding, which has none: drop --class_map."
            )
        if self.normalize_embeddings and self.target_type != "embedding":
            raise ValueError("--normalize_embeddings applies to --target_type embedding only.")
        if self.kind not in KINDS:
            raise ValueError(f"Unknown soft-label kind {self.kind!r}; choose one of {', '.join(KINDS)}.")
        if self.precision != AUTO and self.precision not in PRECISIONS:
            raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {self.precision!r}.")
        if self.batch_size < 1 or self.num_workers < 0:
            raise ValueError("batch_size must be at least 1 and num_workers at least 0.")
        if self.seed < 0:
            raise ValueError(f"seed must be at least 0, got {self.seed}.")
        if self.verify_images not in VERIFY_IMAGES:
            raise ValueError(f"verify_images must be one of {', '.join(VERIFY_IMAGES)}, got {self.verify_images!r}.")
        for name in ("k", "input_size", "rows_per_shard", "num_shards", "max_rows"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}.")
        check_normalization(self.mean, self.std)
        check_crop_ranges(self.crop_scale, self.crop_ratio)


def check_normalization(mean, std) -> None:
    """Raises a ValueError unless ``mean`` (if given) holds finite numbers and ``std`` (if given) positive ones."""
    if mean is not None and not all(math.isfinite(value) for value in mean):
        raise ValueError(f"mean must be finite numbers, got {list(mean)}.")
    if std is not None and not all(0 < value < math.inf for value in std):
        raise ValueError(f"std must be positive finite numbers, got {list(std)}.")


@dataclasses.dataclass(frozen=True)
class ResolvedGenerate:
    """The values a ``generate`` run uses where its options leave them open or another source fixes them: the set
    of ``--crops_from`` (its crops; its classes and rows unless given), the device (``--precision auto``), and the
    run already in the output folder or the teacher (the replay). ``config`` is kept as given."""

    config: GenerateConfig
    stored_crops: int
    seed: int
    crop_scale: tuple[float, float]
    crop_ratio: tuple[float, float]
    class_map: str | tuple[int, ...] | None
    max_rows: int | None
    replay: str
    precision: str

    @classmethod
    def resolve(cls, config: GenerateConfig, shared: dict, replay: str, device) -> ResolvedGenerate:
        """``config``'s values, with ``shared`` (what ``--crops_from`` fixes and carries) over them; ``replay`` where
        neither gives one."""
        values = dict(
            stored_crops=config.stored_crops,
            seed=config.seed,
            crop_scale=tuple(config.crop_scale),
            crop_ratio=tuple(config.crop_ratio),
            class_map=config.class_map,
            max_rows=config.max_rows,
            replay=config.replay,
        )
        values.update(shared)
        values["replay"] = values["replay"] or replay
        return cls(config, precision=resolve_precision(config.precision, device), **values)
