"""The FKD label-set format: Hugging Face Datasets columns that line up row by row with an image dataset.

A label set is a folder (or a Hub dataset repo) laid out as::

    fkd_labels.json                 # LabelSetMetadata: how the labels were made (written last: its presence = done)
    fkd_run.json                    # the options of the `fkd-hf generate` run that writes it (resume, repair)
    README.md                       # dataset card; its YAML points `load_dataset` at data/*.parquet
    data/shard-00000.parquet ...    # one row per source image, in source order

Columns (R stored crops per image, k stored classes per crop):

- ``image_key`` (string): BLAKE2b-128 hex digest of the encoded source image bytes.
- ``crops`` (R x 4 float16): ``(top/H, left/W, height/H, width/W)`` of each crop in the source image.
- ``flips`` (R bool): horizontal flip of each crop.
- ``topk_indices`` (R x k int16, or int32 when the class count exceeds int16): the teacher's top-k classes.
- ``topk_values`` (R x k float16): their probabilities, after the temperature.

Each shard's parquet key-value metadata holds its skipped rows and the fields that define its values (kind, k,
classes, temperature, R, teacher, crop seed...); loading checks each shard's footer, row count and these fields
against ``fkd_labels.json`` (format-version-1 shards lack the fields: their R, k and row count are checked).

``datasets.concatenate_datasets([images, labels.dataset], axis=1)`` joins the two; :func:`load_label_set` reads
the data and its metadata back, locally or from the Hub.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, List, Value

from ..hub.ids import is_repo_id
from .crops import DEFAULT_REPLAY, check_replay
from .kinds import check_kind

METADATA_FILE = "fkd_labels.json"
RUN_FILE = "fkd_run.json"
CARD_FILE = "README.md"
DATA_DIR = "data"
SHARD_PATTERN = "shard-{:05d}.parquet"
SHARD_NAME = re.compile(r"shard-(\d{5})\.parquet")
TEMPORARY_SHARD = re.compile(r"\.shard-\d{5}\.parquet\.\d+\.tmp")  # a shard being written by write_shard
LABEL_COLUMNS = ("image_key", "crops", "flips", "topk_indices", "topk_values")
FORMAT_VERSION = 2  # 2: R is `stored_crops` (version 1 called it `num_crops`); the shards are the same
SKIPPED_ROWS_KEY = b"fkd_skipped_rows"
LABEL_SET_KEY = b"fkd_label_set"  # the fields that define a shard's values, as JSON
DEFINING_FIELDS = ("kind", "k", "num_classes", "class_names", "temperature", "stored_crops", "seed", "crop_scale",
                   "crop_ratio", "teacher", "teacher_revision", "teacher_input_size", "teacher_mean", "teacher_std",
                   "teacher_interpolation", "teacher_class_indices", "precision", "replay")  # fmt: skip
DIGESTED_FIELDS = ("class_names", "teacher_class_indices")  # stored as a digest: they can be long

__all__ = [
    "METADATA_FILE",
    "LABEL_COLUMNS",
    "LabelSetMetadata",
    "LabelSet",
    "label_features",
    "index_dtype",
    "rows_to_table",
    "write_shard",
    "read_local_metadata",
    "read_metadata",
    "load_label_set",
]


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

    def __post_init__(self):
        check_kind(self.kind)
        check_replay(self.replay)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSetMetadata:
        if data.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ValueError(
                f"This label set uses format version {data['format_version']}, newer than this fkd_hf reads "
                f"({FORMAT_VERSION}): upgrade fkd_hf (pip install -U fkd-hf)."
            )
        data = dict(data)
        if data.get("format_version", 1) < 2 and "num_crops" in data:  # version 1 named R num_crops
            data["stored_crops"] = data.pop("num_crops")
        data.setdefault("replay", "pil")  # a set made before replays were named (fkd-hf < 0.2)
        data["format_version"] = FORMAT_VERSION
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes ``fkd_labels.json`` into ``directory`` atomically (a reader never sees half a file)."""
        path = Path(directory) / METADATA_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")  # NaN is not JSON
        os.replace(tmp, path)
        return path

    def features(self) -> Features:
        return label_features(self.stored_crops, self.k, self.num_classes)

    def defining(self) -> dict[str, Any]:
        """The fields that define the stored values, as each shard records them (long lists as digests)."""
        values = {name: getattr(self, name) for name in DEFINING_FIELDS}
        for name in DIGESTED_FIELDS:
            values[name] = "blake2b:" + _digest(json.dumps(values[name]).encode())
        return values


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def card_digest(directory: str | os.PathLike) -> str | None:
    """The digest of the ``README.md`` in ``directory`` (None when there is none)."""
    path = Path(directory) / CARD_FILE
    return _digest(path.read_bytes()) if path.is_file() else None


def index_dtype(num_classes: int) -> str:
    """int16 when every class index fits, int32 otherwise."""
    return "int16" if num_classes <= np.iinfo(np.int16).max + 1 else "int32"


def label_features(stored_crops: int, k: int, num_classes: int) -> Features:
    """The ``datasets.Features`` of a label set with R = ``stored_crops`` crops and top-``k`` labels."""
    return Features(
        {
            "image_key": Value("string"),
            "crops": List(List(Value("float16"), length=4), length=stored_crops),
            "flips": List(Value("bool"), length=stored_crops),
            "topk_indices": List(List(Value(index_dtype(num_classes)), length=k), length=stored_crops),
            "topk_values": List(List(Value("float16"), length=k), length=stored_crops),
        }
    )


def _fixed_size_lists(array: np.ndarray) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(array).reshape(-1))
    for size in reversed(array.shape[1:]):
        flat = pa.FixedSizeListArray.from_arrays(flat, size)
    return flat


def fixed_size_to_numpy(column: pa.Array | pa.ChunkedArray, shape: tuple[int, ...]) -> np.ndarray:
    """A (nested) fixed-size-list Arrow column as a numpy array of ``shape`` in its stored dtype, without Python
    objects: the inverse of how :func:`rows_to_table` stores ``[N, R, ...]`` arrays."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    while pa.types.is_fixed_size_list(array.type):
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False).reshape(shape)


def rows_to_table(columns: dict[str, Any], features: Features) -> pa.Table:
    """An Arrow table in the label-set schema from column arrays (``[N, R, ...]`` numpy arrays, keys as a list)."""
    arrays = [pa.array(list(columns["image_key"]), type=pa.string())]
    arrays += [_fixed_size_lists(np.asarray(columns[name])) for name in LABEL_COLUMNS[1:]]
    table = pa.Table.from_arrays(arrays, names=list(LABEL_COLUMNS))
    return table.cast(features.arrow_schema)


def shard_path(directory: str | os.PathLike, shard: int) -> Path:
    """Where shard number ``shard`` of the label set in ``directory`` lives."""
    return Path(directory) / DATA_DIR / SHARD_PATTERN.format(shard)


def write_shard(
    table: pa.Table, path: str | os.PathLike, skipped_rows: list[int] = (), label_set: LabelSetMetadata | None = None
) -> None:
    """Writes one parquet shard atomically: to a temporary name first, renamed once complete. Its key-value
    metadata records ``skipped_rows`` and, given ``label_set``, the fields that define its values."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = dict(table.schema.metadata or {})
    metadata[SKIPPED_ROWS_KEY] = json.dumps(list(skipped_rows)).encode()
    metadata.pop(LABEL_SET_KEY, None)  # a table read from another label set's shard carries that set's fields
    if label_set is not None:
        metadata[LABEL_SET_KEY] = json.dumps(label_set.defining(), sort_keys=True).encode()
    table = table.replace_schema_metadata(metadata)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def shard_skipped_rows(path: str | os.PathLike) -> list[int]:
    """The source rows recorded as skipped in one shard's parquet metadata."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(SKIPPED_ROWS_KEY, b"[]"))


def _check_source(source: str | os.PathLike) -> tuple[Path | None, str | None]:
    """``(folder, None)`` for a local label set, ``(None, repo_id)`` for a Hub dataset repo id."""
    local = Path(source)
    if local.is_dir():
        return local, None
    text = str(source)
    if local.exists() or not is_repo_id(text):
        raise FileNotFoundError(
            f"{text} is neither a label-set folder nor a Hub dataset repo id (user/name): give the output_dir of "
            "`fkd-hf generate` or the repo `fkd-hf push-labels` uploaded it to."
        )
    return None, text


def _read_hub_metadata(
    repo_id: str, revision: str | None, token: str | bool | None
) -> tuple[LabelSetMetadata, str | None]:
    """The metadata of a Hub label set and the commit it was read from (``revision`` when the cache hides it)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        path = Path(hf_hub_download(repo_id, METADATA_FILE, repo_type="dataset", revision=revision, token=token))
    except RemoteEntryNotFoundError as err:
        raise FileNotFoundError(
            f"The Hub dataset {repo_id} (revision {revision or 'main'}) has no {METADATA_FILE}: it is not an FKD "
            "label set. Upload one with `fkd-hf push-labels DIR --repo-id ...`."
        ) from err
    except (RepositoryNotFoundError, RevisionNotFoundError) as err:
        err.append_to_message(
            f"\n{repo_id} is not a local label-set folder either. For a private repo, set HF_TOKEN or run "
            "`hf auth login`."
        )
        raise
    # The cache keeps files under snapshots/<commit sha>/: reading the rows at that commit keeps them in step with
    # the metadata even if the repo is pushed to meanwhile.
    commit = path.parent.name if re.fullmatch(r"[0-9a-f]{40}", path.parent.name) else revision
    return LabelSetMetadata.from_dict(json.loads(path.read_text())), commit


def read_metadata(
    source: str | os.PathLike, revision: str | None = None, token: str | bool | None = None
) -> LabelSetMetadata:
    """Reads ``fkd_labels.json`` from a label-set folder (checked against its shards: :func:`check_label_set`) or
    a Hub dataset repo id (at ``revision``)."""
    local, repo_id = _check_source(source)
    if repo_id is not None:
        return _read_hub_metadata(repo_id, revision, token)[0]
    from .checks import check_label_set

    metadata = read_local_metadata(local)
    check_label_set(local, metadata)
    return metadata


def read_local_metadata(directory: str | os.PathLike) -> LabelSetMetadata:
    """The ``fkd_labels.json`` of a label-set folder, not checked against its shards."""
    from .checks import LabelSetError, repair_hint

    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} has no {METADATA_FILE}: it is not a finished FKD label set. If `fkd-hf generate` was "
            "interrupted, rerun the same command to finish it."
        )
    try:
        return LabelSetMetadata.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as err:  # not JSON, or fields missing
        raise LabelSetError(f"{path} cannot be read ({' '.join(str(err).split())}). {repair_hint(directory)}") from err


@dataclasses.dataclass
class LabelSet:
    """A label set's rows (a ``datasets.Dataset``, or ``IterableDataset`` when streamed) and its metadata."""

    dataset: datasets.Dataset | datasets.IterableDataset
    metadata: LabelSetMetadata


def load_label_set(
    source: str | os.PathLike,
    revision: str | None = None,
    streaming: bool = False,
    token: str | bool | None = None,
) -> LabelSet:
    """Loads a label set from a folder written by ``fkd-hf generate`` or from a Hub dataset repo id.

    From the Hub, ``revision`` (branch, tag or commit; default ``main``) is resolved to one commit for both the
    metadata and the rows (offline, the cache answers); ``streaming=True`` reads the parquet shards as they are
    iterated, without downloading the label set (for label sets larger than the disk). ``token`` defaults to
    ``HF_TOKEN`` or the ``hf auth login`` token.

    >>> labels = load_label_set("outputs/labels")  # doctest: +SKIP
    >>> labels.metadata.kind, labels.dataset.num_rows  # doctest: +SKIP
    ('marginal_smoothing', 3000)
    >>> labels = load_label_set("user/imagenette-fkd-labels", streaming=True)  # doctest: +SKIP
    """
    from .checks import LabelSetError, repair_hint

    local, repo_id = _check_source(source)
    if repo_id is not None:
        metadata, revision = _read_hub_metadata(repo_id, revision, token)
        # The card's dataset_info declares the features; passing them here too would change the cache's config
        # name, and offline the cached rows would no longer be found.
        dataset = datasets.load_dataset(repo_id, split="train", revision=revision, streaming=streaming, token=token)
        if dataset.features != metadata.features():
            dataset = dataset.cast(metadata.features())
    else:
        metadata = read_metadata(local)
        files = sorted(str(p) for p in (local / DATA_DIR).glob("*.parquet"))
        try:
            dataset = datasets.load_dataset(
                "parquet", data_files={"train": files}, split="train", streaming=streaming, features=metadata.features()
            )
        except (datasets.exceptions.DatasetGenerationError, pa.ArrowException, OSError) as err:
            bad = next((f for f in files if not _reads(f)), "one of its shards")
            raise LabelSetError(f"{local}: {bad} cannot be read ({err}). {repair_hint(local)}") from err
    if not streaming and dataset.num_rows != metadata.num_rows:
        raise ValueError(
            f"{source} has {dataset.num_rows} rows but its {METADATA_FILE} says {metadata.num_rows}: the label set "
            "is incomplete or was modified; regenerate it with `fkd-hf generate`."
        )
    return LabelSet(dataset=dataset, metadata=metadata)


def _reads(path: str) -> bool:
    try:
        pq.read_table(path)
    except (OSError, pa.ArrowException):
        return False
    return True
