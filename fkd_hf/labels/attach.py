"""Attach a label set to its image dataset as extra columns, after checking that the two line up row by row."""

from __future__ import annotations

import logging

import datasets
import numpy as np

from .format import LabelSet, LabelSetMetadata, load_label_set
from .images import ImageSource, image_bytes, image_key
from .kinds import KINDS

__all__ = ["LabelMismatchError", "open_label_set", "join_labels"]

logger = logging.getLogger(__name__)


def _origin(metadata: LabelSetMetadata) -> str:
    parts = [f"split {metadata.dataset_split!r}", f"{metadata.num_rows} rows"]
    if metadata.dataset_config:
        parts.insert(0, f"config {metadata.dataset_config!r}")
    if metadata.dataset_revision:
        parts.insert(-1, f"revision {metadata.dataset_revision}")
    return f"{metadata.dataset} ({', '.join(parts)})"


class LabelMismatchError(ValueError):
    """A row whose image is not the one the label set was made from."""

    def __init__(self, row: int, expected: str, found: str, metadata: LabelSetMetadata):
        self.row = row
        super().__init__(
            f"Row {row} of the image dataset does not match the label set: its image_key is {found}, the label set "
            f"has {expected}. The label set was made from {_origin(metadata)} (its fkd_labels.json). Train on that "
            f"dataset, split and revision in the same row order, or generate labels for this one with "
            f"`fkd-hf generate --dataset <this dataset> --split <this split>`."
        )


def open_label_set(source: str, revision: str | None = None) -> LabelSet:
    """:func:`~fkd_hf.labels.format.load_label_set`, with an error that says what to do about an unknown label kind."""
    try:
        return load_label_set(source, revision)
    except ValueError as err:
        if "soft-label kind" not in str(err):
            raise
        raise ValueError(
            f"Cannot train on the label set {source}: {err.args[0].split(';')[0]} (this fkd_hf knows "
            f"{', '.join(KINDS)}). If it was made by a newer fkd_hf, upgrade (pip install -U fkd-hf); otherwise "
            "regenerate it with `fkd-hf generate --kind marginal_smoothing`."
        ) from err


def _first_mismatch(
    image_rows: datasets.Dataset, image_column: str, label_rows: datasets.Dataset, rows: np.ndarray
) -> tuple[int, str, str] | None:
    """``(row, stored key, image key)`` of the first of ``rows`` whose image does not hash to its key, or None."""
    images = image_rows.select_columns([image_column]).with_format("arrow")
    keys = label_rows.select_columns(["image_key"]).with_format("arrow")
    for start in range(0, len(rows), 256):
        chunk = rows[start : start + 256].tolist()
        values = images[chunk].column(image_column).to_pylist()
        for row, value, key in zip(chunk, values, keys[chunk].column("image_key").to_pylist()):
            found = image_key(image_bytes(value))
            if found != key:
                return row, key, found
    return None


def join_labels(
    images: ImageSource, labels: LabelSet, max_rows: int | None = None, check_rows: int = 1024
) -> datasets.Dataset:
    """The image rows with the label-set columns attached (``concatenate_datasets(axis=1)``), checked first.

    Checks that both have the same number of rows (after keeping the first ``max_rows``; a label set made with
    ``--max_rows`` keeps the first rows it covers, and says so), and that the images of
    ``check_rows`` evenly spaced rows (first and last included; -1 = every row) hash to the stored ``image_key``.
    A mismatch is a :class:`LabelMismatchError` naming the first mismatching row (rows before a mismatching sample
    are scanned too). :class:`~fkd_hf.training.data.FKDCropDataset` checks every other row when it reads it.
    """
    metadata = labels.metadata
    image_rows, label_rows = images.dataset, labels.dataset
    if max_rows is not None:
        image_rows = image_rows.select(range(min(max_rows, len(image_rows))))
        label_rows = label_rows.select(range(min(max_rows, len(label_rows))))
    if metadata.max_rows is not None and len(label_rows) == metadata.num_rows < len(image_rows):
        logger.warning(
            "The label set covers the first %d rows of %s (it was made with --max_rows %d): training on those %d "
            "of its %d rows.",
            metadata.num_rows,
            images.spec,
            metadata.max_rows,
            metadata.num_rows,
            len(image_rows),
        )
        image_rows = image_rows.select(range(metadata.num_rows))
    if len(image_rows) != len(label_rows):
        raise ValueError(
            f"{images.spec} (split {images.split!r}) has {len(image_rows)} rows but the label set has "
            f"{len(label_rows)}: it was made from {_origin(metadata)}. If it was generated with --max_rows, train on "
            f"those rows only (max_train_samples: {len(label_rows)}); otherwise generate labels for this dataset."
        )
    clash = sorted(set(image_rows.column_names) & set(metadata.columns))
    if clash:
        raise ValueError(f"The image dataset already has columns {clash}; rename them before attaching labels.")
    n = len(image_rows)
    skipped = set(metadata.skipped_rows)
    count = n if check_rows < 0 else min(check_rows, n)
    spread = np.unique(np.linspace(0, n - 1, count).round().astype(np.int64)) if count else []
    sample = np.array([row for row in spread if row not in skipped], dtype=np.int64)
    mismatch = _first_mismatch(image_rows, images.image_column, label_rows, sample)
    if mismatch is not None:
        checked = skipped | set(sample.tolist())
        before = np.array([row for row in range(mismatch[0]) if row not in checked], dtype=np.int64)
        mismatch = _first_mismatch(image_rows, images.image_column, label_rows, before) or mismatch
        raise LabelMismatchError(*mismatch, metadata)
    return datasets.concatenate_datasets([image_rows, label_rows], axis=1)
