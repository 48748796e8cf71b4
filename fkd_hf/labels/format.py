"""The FKD label-set format: Hugging Face Datasets columns that line up row by row with an image dataset.

A label set is a folder (or a Hub dataset repo) laid out as::

    fkd_labels.json                 # LabelSetMetadata: how the labels were made (written last: its presence = done)
    fkd_run.json                    # the options of the `fkd-hf generate` run that writes it (resume, repair)
    README.md                       # dataset card; its YAML points `load_dataset` at data/*.parquet
    data/shard-00000.parquet ...    # one row per source image, in source order

Columns (R stored crops per image):

- ``image_key`` (string): BLAKE2b-128 hex digest of the encoded source image bytes.
- ``crops`` (R x 4 float16): ``(top/H, left/W, height/H, width/W)`` of each crop in the source image.
- ``flips`` (R bool): horizontal flip of each crop.
- the columns of the set's target type (``target_type`` in ``fkd_labels.json``, :mod:`fkd_hf.labels.targets`); for
  ``class_probabilities``, every set's unless it names another: ``topk_indices`` (R x k int16, or int32 when the
  class count exceeds int16), the teacher's top-k classes, and ``topk_values`` (R x k float16), their probabilities
  after the temperature.

Each shard's parquet key-value metadata holds its skipped rows and the fields that define its values (kind, k,
classes, temperature, R, teacher, crop seed...); loading checks each shard's footer, row count and these fields
against ``fkd_labels.json`` (format-version-1 shards lack the fields: their R, k and row count are checked).

``datasets.concatenate_datasets([images, labels.dataset], axis=1)`` joins the two; :func:`load_label_set` reads
the data and its metadata back, locally or from the Hub.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features

from ..errors import InputNotFoundError
from ..repo_ids import is_repo_id
from .checks import LabelSetError, check_label_set, repair_hint
from .schema import (
    CARD_FILE,
    CROP_COLUMNS,
    DATA_DIR,
    FORMAT_VERSION,
    LABEL_COLUMNS,
    LABEL_SET_KEY,
    METADATA_FILE,
    RUN_FILE,
    SHARD_NAME,
    SHARD_PATTERN,
    SKIPPED_ROWS_KEY,
    TARGET_TYPE_FORMAT_VERSION,
    TEMPORARY_SHARD,
    LabelSetMetadata,
    card_digest,
    index_dtype,
    label_features,
)

__all__ = [  # with the schema's names, so that the format's readers and writers import everything from here
    "CARD_FILE",
    "CROP_COLUMNS",
    "DATA_DIR",
    "FORMAT_VERSION",
    "LABEL_COLUMNS",
    "LABEL_SET_KEY",
    "METADATA_FILE",
    "RUN_FILE",
    "SHARD_NAME",
    "SHARD_PATTERN",
    "SKIPPED_ROWS_KEY",
    "TARGET_TYPE_FORMAT_VERSION",
    "TEMPORARY_SHARD",
    "LabelSetMetadata",
    "card_digest",
    "index_dtype",
    "label_features",
    "LabelSet",
    "fixed_size_to_numpy",
    "rows_to_table",
    "shard_path",
    "write_shard",
    "shard_skipped_rows",
    "read_local_metadata",
    "read_metadata",
    "load_label_set",
]


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
    """An Arrow table of the columns of ``features`` (a label set's: ``image_key`` first) from column arrays
    (``[N, R, ...]`` numpy arrays, keys as a list)."""
    names = list(features)
    arrays = [pa.array(list(columns["image_key"]), type=pa.string())]
    arrays += [_fixed_size_lists(np.asarray(columns[name])) for name in names[1:]]
    table = pa.Table.from_arrays(arrays, names=names)
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
    if local.exists() or not is_repo_id(text):  # a path, not a Hub id: answered without asking the Hub
        raise InputNotFoundError(
            f"{text} is neither a label-set folder nor a Hub dataset repo id (user/name): give the output_dir of "
            "`fkd-hf generate` or the repo `fkd-hf push-labels` uploaded it to."
        )
    return None, text


def _hub_answers(repo_id: str, revision: str | None, token: str | bool | None) -> bool:
    """Whether the Hub answers one request about ``repo_id`` (False offline); raises the Hub's error for a repo or
    revision it does not have. One request without a download's retries: no connection is known at once."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        HfApi().repo_info(repo_id, repo_type="dataset", revision=revision, token=token)
    except HfHubHTTPError:
        raise
    except Exception:  # no answer; the transport's error types differ between huggingface_hub versions
        return False
    return True


def _read_hub_metadata(
    repo_id: str, revision: str | None, token: str | bool | None
) -> tuple[LabelSetMetadata, str | None]:
    """The metadata of a Hub label set and the commit it was read from (``revision`` when the cache hides it)."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        cached_only = not _hub_answers(repo_id, revision, token)
        path = Path(
            hf_hub_download(
                repo_id,
                METADATA_FILE,
                repo_type="dataset",
                revision=revision,
                token=token,
                local_files_only=cached_only,
            )
        )
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
    except LocalEntryNotFoundError as err:  # offline or the Hub unreachable, and no copy in the cache
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        raise InputNotFoundError(
            f"no label-set folder {repo_id} (and no Hub dataset of that name: {why} and the local cache holds none): "
            "give the output_dir of `fkd-hf generate` or the repo `fkd-hf push-labels` uploaded it to."
        ) from err
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
    metadata = read_local_metadata(local)
    check_label_set(local, metadata)
    return metadata


def read_local_metadata(directory: str | os.PathLike) -> LabelSetMetadata:
    """The ``fkd_labels.json`` of a label-set folder, not checked against its shards."""
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
