"""The label-set writer: the one place where label sets are written, by generation and by anything that derives a
label set from another (hard labels for a plain baseline, a cut to fewer crops or classes).

Shards hold consecutive source rows and are written atomically, each with the fields that define its values in its
parquet metadata; values no label set can hold are refused: crops outside [0, 1] or NaN, and target values as the
set's target type checks them (:meth:`~fkd_hf.labels.targets.base.TargetType.store`; for class probabilities:
probabilities outside [0, 1], NaN, class indices out of range). :meth:`LabelSetWriter.finish` checks that every shard
is there, then has the dataset card written (by a function it is given: cards belong to :mod:`fkd_hf.hub`) and
writes, last, ``fkd_labels.json`` (with the card's digest), whose presence marks a finished set.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .format import LabelSetMetadata, card_digest, rows_to_table, shard_path, shard_skipped_rows, write_shard
from .targets.base import stored_fractions

__all__ = ["CardWriter", "LabelSetWriter", "write_label_set"]

CardWriter = Callable[[Path, LabelSetMetadata], object]  # writes the README.md of a label set's folder


class LabelSetWriter:
    """Writes the shards and the metadata of one label set into ``directory``.

    ``columns`` of a shard: ``image_key`` (a list of N strings) and ``[N, R, ...]`` arrays ``crops``, ``flips``
    and those of the set's target type (``topk_indices`` and ``topk_values`` for class probabilities), cast to the
    stored dtypes here.
    """

    def __init__(self, directory: str | os.PathLike, metadata: LabelSetMetadata):
        self.directory = Path(directory)
        self.metadata = metadata

    def shard_path(self, shard: int) -> Path:
        return shard_path(self.directory, shard)

    def write_shard(self, shard: int, columns: Mapping, skipped_rows: Sequence[int] = ()) -> Path:
        """Writes shard ``shard`` atomically; ``skipped_rows`` are the source rows it holds as placeholders."""
        columns = dict(columns)
        path = self.shard_path(shard)
        refuse = functools.partial(_refuse, path)
        columns["crops"] = stored_fractions("crops", columns["crops"], refuse)
        columns.update(self.metadata.target.store(columns, self.metadata, refuse))
        write_shard(rows_to_table(columns, self.metadata.features()), path, list(skipped_rows), self.metadata)
        return path

    def finish(self, num_shards: int, card: CardWriter | None = None) -> LabelSetMetadata:
        """Records the row count, skipped rows and bytes per crop of the ``num_shards`` shards, then has ``card``
        write the dataset card (e.g. :func:`fkd_hf.hub.write_label_set_card`; None: no card) and writes
        ``fkd_labels.json``. Raises if a shard is missing."""
        paths = [self.shard_path(shard) for shard in range(num_shards)]
        missing = [path.name for path in paths if not path.is_file()]
        if missing:
            raise RuntimeError(
                f"Shards {missing} are missing in {self.directory}: rerun the same command to finish them."
            )
        metadata = self.metadata
        metadata.num_rows = sum(pq.read_metadata(path).num_rows for path in paths)
        metadata.num_shards = num_shards
        metadata.skipped_rows = sorted(row for path in paths for row in shard_skipped_rows(path))
        crops = metadata.num_rows * metadata.stored_crops
        metadata.bytes_per_crop = sum(path.stat().st_size for path in paths) / max(crops, 1)
        if card is not None:
            card(self.directory, metadata)
            metadata.card_digest = card_digest(self.directory)
        metadata.save(self.directory)
        return metadata


def _refuse(path: Path, name: str, values: np.ndarray, bad: np.ndarray, allowed: str) -> None:
    """Raises a ValueError naming the first ``bad`` value of column ``name``: nothing impossible is stored."""
    if bad.any():
        first = tuple(np.argwhere(bad)[0])
        raise ValueError(
            f"{path.name} was not written: {name} must hold {allowed}, but row {first[0]} of the shard "
            f"holds {values[first]} (crop {first[1]}). The teacher's outputs (check --mean, --std and "
            "--precision) or the labels given are not valid."
        )


def write_label_set(
    directory: str | os.PathLike,
    metadata: LabelSetMetadata,
    columns: Mapping,
    skipped_rows: Sequence[int] = (),
    card: CardWriter | None = None,
) -> LabelSetMetadata:
    """Writes a whole label set of one shard (``columns`` as in :meth:`LabelSetWriter.write_shard`; ``card`` as in
    :meth:`LabelSetWriter.finish`)."""
    metadata.rows_per_shard = max(len(columns["image_key"]), 1)
    writer = LabelSetWriter(directory, metadata)
    writer.write_shard(0, columns, skipped_rows)
    return writer.finish(1, card)
