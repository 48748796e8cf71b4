"""The label-set schema: the names of a label set's files and keys, its ``fkd_labels.json`` record
(:class:`LabelSetMetadata`) and its columns' features. :mod:`fkd_hf.labels.format` reads and writes the files;
:mod:`fkd_hf.labels.checks` checks them against this schema."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datasets import Features, List, Value

from .crops import DEFAULT_REPLAY, check_replay
from .targets import DEFAULT_TARGET_TYPE, target_type
from .targets.class_probabilities import TARGET_TYPE as CLASS_PROBABILITIES
from .targets.class_probabilities import column_features, index_dtype

if TYPE_CHECKING:
    from .targets.base import TargetType

__all__ = [
    "METADATA_FILE",
    "RUN_FILE",
    "CARD_FILE",
    "DATA_DIR",
    "SHARD_PATTERN",
    "SHARD_NAME",
    "TEMPORARY_SHARD",
    "CROP_COLUMNS",
    "LABEL_COLUMNS",
    "FORMAT_VERSION",
    "TARGET_TYPE_FORMAT_VERSION",
    "SKIPPED_ROWS_KEY",
    "LABEL_SET_KEY",
    "DEFINING_FIELDS",
    "DIGESTED_FIELDS",
    "LabelSetMetadata",
    "card_digest",
    "index_dtype",
    "label_features",
]

METADATA_FILE = "fkd_labels.json"
RUN_FILE = "fkd_run.json"
CARD_FILE = "README.md"
DATA_DIR = "data"
SHARD_PATTERN = "shard-{:05d}.parquet"
SHARD_NAME = re.compile(r"shard-(\d{5})\.parquet")
TEMPORARY_SHARD = re.compile(r"\.shard-\d{5}\.parquet\.\d+\.tmp")  # a shard being written by write_shard
CROP_COLUMNS = ("image_key", "crops", "flips")  # every label set's; its target type's columns follow
LABEL_COLUMNS = (*CROP_COLUMNS, *CLASS_PROBABILITIES.columns)  # the columns of a class-probability set
FORMAT_VERSION = 2  # of a class-probability set. 2: R is `stored_crops` (version 1 called it `num_crops`)
# Of a set of any other target type: fkd_hf before target types reads up to version 2 and would take the set's
# targets for class probabilities; this version makes it refuse the set and ask for an upgrade.
TARGET_TYPE_FORMAT_VERSION = 3
SKIPPED_ROWS_KEY = b"fkd_skipped_rows"
LABEL_SET_KEY = b"fkd_label_set"  # the fields that define a shard's values, as JSON
DEFINING_FIELDS = (
    "kind",
    "k",
    "num_classes",
    "class_names",
    "temperature",
    "stored_crops",
    "seed",
    "crop_scale",
    "crop_ratio",
    "teacher",
    "teacher_revision",
    "teacher_input_size",
    "teacher_mean",
    "teacher_std",
    "teacher_interpolation",
    "teacher_class_indices",
    "precision",
    "replay",
)
DIGESTED_FIELDS = ("class_names", "teacher_class_indices")  # stored as a digest: they can be long


@dataclasses.dataclass
class LabelSetMetadata:
    """Everything needed to reproduce, check and use a label set; saved as ``fkd_labels.json``."""

    kind: str
    k: int
    num_classes: int
    class_names: list[str]
    temperature: float
    stored_crops: int  # R: crops stored per image
    seed: int
    crop_scale: list[float]
    crop_ratio: list[float]
    teacher: str
    teacher_revision: str | None
    teacher_library: str
    teacher_input_size: list[int]
    teacher_mean: list[float]
    teacher_std: list[float]
    teacher_interpolation: str
    teacher_class_indices: list[int] | None
    precision: str
    dataset: str
    dataset_config: str | None
    dataset_split: str
    dataset_revision: str | None
    image_column: str
    label_column: str | None
    num_rows: int = 0
    num_shards: int = 0
    rows_per_shard: int = 0
    skipped_rows: list[int] = dataclasses.field(default_factory=list)
    bytes_per_crop: float | None = None
    fkd_hf_version: str = ""
    format_version: int = FORMAT_VERSION
    max_rows: int | None = None  # set when only the first max_rows rows of the split were labelled
    dataset_absolute: str | None = None  # `dataset` with its local path made absolute (None for a Hub id)
    dataset_class_names: list[str] | None = None  # the dataset's own class names where class_names are the teacher's
    provenance: dict | None = None  # how the set was derived from other labels (converted, merged), for the card
    card_digest: str | None = None  # BLAKE2b-128 of the README.md fkd-hf wrote beside it
    replay: str = DEFAULT_REPLAY  # how stored crops become pixels (fkd_hf.labels.crops.REPLAYS); sets before 0.2: pil
    target_type: str = DEFAULT_TARGET_TYPE  # what each crop stores (fkd_hf.labels.targets.TARGET_TYPES)

    def __post_init__(self):
        self.target.check(self)
        check_replay(self.replay)
        default = self.target_type == DEFAULT_TARGET_TYPE
        self.format_version = FORMAT_VERSION if default else TARGET_TYPE_FORMAT_VERSION

    @property
    def target(self) -> TargetType:
        """The set's target type: what its columns after :data:`CROP_COLUMNS` hold and how training reads them."""
        return target_type(self.target_type)

    @property
    def columns(self) -> tuple[str, ...]:
        """The set's columns, in their stored order."""
        return (*CROP_COLUMNS, *self.target.columns)

    def to_dict(self) -> dict[str, Any]:
        """The fields as ``fkd_labels.json`` holds them: ``target_type`` only where it is not the default, so that a
        class-probability set's file is byte for byte what it was before target types."""
        values = dataclasses.asdict(self)
        if self.target_type == DEFAULT_TARGET_TYPE:
            del values["target_type"]
        return values

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSetMetadata:
        if data.get("format_version", FORMAT_VERSION) > TARGET_TYPE_FORMAT_VERSION:
            raise ValueError(
                f"This label set uses format version {data['format_version']}, newer than this fkd_hf reads "
                f"({TARGET_TYPE_FORMAT_VERSION}): upgrade fkd_hf (pip install -U fkd-hf)."
            )
        data = dict(data)
        if data.get("format_version", 1) < 2 and "num_crops" in data:  # version 1 named R num_crops
            data["stored_crops"] = data.pop("num_crops")
        data.setdefault("replay", "pil")  # a set made before replays were named (fkd-hf < 0.2)
        if data.get("format_version", 1) < TARGET_TYPE_FORMAT_VERSION:  # versions 1 and 2: class probabilities
            data["target_type"] = DEFAULT_TARGET_TYPE
        known = {f.name for f in dataclasses.fields(cls)}  # format_version follows from the target type
        return cls(**{key: value for key, value in data.items() if key in known})

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes ``fkd_labels.json`` into ``directory`` atomically (a reader never sees half a file)."""
        path = Path(directory) / METADATA_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")  # NaN is not JSON
        os.replace(tmp, path)
        return path

    def features(self) -> Features:
        return Features({**_crop_features(self.stored_crops), **self.target.features(self)})

    def defining(self) -> dict[str, Any]:
        """The fields that define the stored values, as each shard records them (long lists as digests; the target
        type where it is not the default, so that class-probability shards keep their bytes)."""
        values = {name: getattr(self, name) for name in DEFINING_FIELDS}
        if self.target_type != DEFAULT_TARGET_TYPE:
            values["target_type"] = self.target_type
        for name in DIGESTED_FIELDS:
            values[name] = "blake2b:" + _digest(json.dumps(values[name]).encode())
        return values


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def card_digest(directory: str | os.PathLike) -> str | None:
    """The digest of the ``README.md`` in ``directory`` (None when there is none)."""
    path = Path(directory) / CARD_FILE
    return _digest(path.read_bytes()) if path.is_file() else None


def _crop_features(stored_crops: int) -> dict[str, Any]:
    """The features of :data:`CROP_COLUMNS` for R = ``stored_crops``."""
    return {
        "image_key": Value("string"),
        "crops": List(List(Value("float16"), length=4), length=stored_crops),
        "flips": List(Value("bool"), length=stored_crops),
    }


def label_features(stored_crops: int, k: int, num_classes: int) -> Features:
    """The ``datasets.Features`` of a class-probability label set with R = ``stored_crops`` crops and top-``k``
    labels (:meth:`LabelSetMetadata.features` gives those of any set)."""
    return Features({**_crop_features(stored_crops), **column_features(stored_crops, k, num_classes)})
