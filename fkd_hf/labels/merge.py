"""Label sets that share crops: ensembles of teachers.

- ``fkd-hf generate --crops_from A --teacher B`` labels the crops and flips that label set A stores, read by
  :class:`SharedCrops` (each image checked by its ``image_key``): the new set differs from A in its labels only.
- :func:`merge_label_sets` (``fkd-hf merge-labels``) merges label sets that share crops into one: each set's targets
  are reconstructed, averaged with optional weights, and quantized again to the kind and k asked for.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .attach import LabelMismatchError
from .format import LabelSet, LabelSetMetadata, fixed_size_to_numpy, load_label_set
from .kinds import resolve_k
from .writer import CardWriter, LabelSetWriter

__all__ = ["SharedCrops", "merge_label_sets"]

_DENSE_VALUES_PER_BATCH = 1 << 22  # dense float32 targets held at once per label set (16 MiB)


class SharedCrops:
    """The stored crops and flips of the label set ``source``, row by row, to label them with another teacher."""

    def __init__(self, source: str | os.PathLike):
        labels = load_label_set(source)
        self.source, self.metadata = str(source), labels.metadata
        self.rows = labels.dataset.select_columns(["image_key", "crops", "flips"]).with_format("arrow")
        self.skipped = set(labels.metadata.skipped_rows)

    def generate_options(self, replay: str | None, class_map, max_rows: int | None) -> dict:
        """What the shared crops fix in ``fkd-hf generate`` (R, seed, crop ranges and replay, so that the sets can be
        merged) and carry where not given: the class map (as teacher class indices) and the row count. Raises where
        ``replay`` or ``max_rows`` contradict the set."""
        meta = self.metadata
        if replay not in (None, meta.replay):
            raise ValueError(
                f"--replay {replay} differs from the replay {meta.replay!r} of {self.source} "
                "(--crops_from), which a set of its crops keeps: drop --replay."
            )
        if max_rows is not None and max_rows > meta.num_rows:
            raise ValueError(
                f"--max_rows {max_rows} is more than the {meta.num_rows} rows of {self.source} "
                f"(--crops_from): pass --max_rows {meta.num_rows} or less."
            )
        indices = tuple(meta.teacher_class_indices) if meta.teacher_class_indices is not None else None
        return dict(
            stored_crops=meta.stored_crops,
            seed=meta.seed,
            crop_scale=tuple(meta.crop_scale),
            crop_ratio=tuple(meta.crop_ratio),
            replay=meta.replay,
            class_map=class_map or indices,
            max_rows=max_rows or meta.max_rows,
        )

    def check_rows(self, num_rows: int | None, dataset: str) -> None:
        """Raises unless the set has a row for each of the ``num_rows`` rows of ``dataset`` (None: a stream)."""
        if num_rows is not None and num_rows > len(self.rows):
            raise ValueError(
                f"{dataset} has {num_rows} rows but {self.source} (--crops_from) only "
                f"{len(self.rows)}: label the images it was made from, or pass --max_rows "
                f"{len(self.rows)}."
            )

    def row(self, row: int, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(crops, flips)`` stored for source row ``row``, after checking that its image has ``key``; None for a
        row the label set records as skipped."""
        if row >= len(self.rows):
            raise ValueError(
                f"Row {row} is past the {len(self.rows)} rows of {self.source} (--crops_from): label the dataset it "
                "was made from, or generate without --crops_from."
            )
        if row in self.skipped:
            return None
        table = self.rows[row : row + 1]
        stored = table.column("image_key")[0].as_py()
        if stored != key:
            raise LabelMismatchError(row, stored, key, self.metadata)
        r = self.metadata.stored_crops
        return fixed_size_to_numpy(table.column("crops"), (r, 4)), fixed_size_to_numpy(table.column("flips"), (r,))


def _check_compatible(sources: Sequence[str], sets: Sequence[LabelSet]) -> None:
    first = sets[0].metadata
    for source, labels in zip(sources[1:], sets[1:]):
        if first.target.label_free and labels.metadata.teacher != first.teacher:
            raise ValueError(
                f"{source} and {sources[0]} hold {first.target_type} targets of different encoders "
                f"({labels.metadata.teacher} vs {first.teacher}), whose embedding dimensions do not correspond: "
                "averaging them means nothing. Train on one set, or merge class-probability sets."
            )
        for name in ("target_type", "num_rows", "stored_crops", "num_classes", "class_names", "temperature", "replay"):
            if getattr(labels.metadata, name) != getattr(first, name):
                raise ValueError(
                    f"{source} and {sources[0]} differ in {name} ({getattr(labels.metadata, name)!r:.60} vs "
                    f"{getattr(first, name)!r:.60}): merge label sets made with `fkd-hf generate --crops_from "
                    f"{sources[0]}` at one temperature."
                )


def _columns(table, metadata: LabelSetMetadata) -> dict:
    n, r = table.num_rows, metadata.stored_crops
    columns = {name: fixed_size_to_numpy(table.column(name), (n, r, -1)) for name in metadata.columns[1:]}
    columns["flips"] = columns["flips"].reshape(n, r)
    columns["image_key"] = table.column("image_key").to_pylist()
    return columns


def _check_shared_crops(sources, parts: list[dict], start: int, keep: np.ndarray) -> None:
    """Raises unless every set stores the same image keys, crops (bit for bit) and flips on the rows ``keep``."""
    first = parts[0]
    for source, part in zip(sources[1:], parts[1:]):
        for name in ("image_key", "crops", "flips"):
            a, b = np.asarray(first[name])[keep], np.asarray(part[name])[keep]
            same = (a.view(np.uint16) == b.view(np.uint16)) if name == "crops" else (a == b)
            rows = np.flatnonzero(~same.reshape(len(a), -1).all(axis=1)) if a.size else []
            if len(rows):
                row = start + int(np.flatnonzero(keep)[rows[0]])
                raise ValueError(
                    f"{source} stores other {name} than {sources[0]} at row {row}: merge only label sets that share "
                    f"crops (made with `fkd-hf generate --crops_from {sources[0]} --teacher ...`)."
                )


def _merged_targets(parts, metas, weights, metadata: LabelSetMetadata) -> dict[str, np.ndarray]:
    """The weighted mean of the sets' decoded targets, stored as ``metadata`` says (for class probabilities: as its
    kind and k), in row batches."""
    n, r = parts[0]["crops"].shape[:2]
    batch = max(1, _DENSE_VALUES_PER_BATCH // (r * metadata.num_classes))
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, batch):
        dense = None
        for part, meta, weight in zip(parts, metas, weights):
            stored = {name: torch.from_numpy(part[name][start : start + batch].copy()) for name in meta.target.columns}
            targets = meta.target.decode(stored, meta)
            dense = torch.zeros_like(targets) if dense is None else dense
            dense += weight * targets
        for name, values in metadata.target.from_targets(dense, metadata).items():
            out.setdefault(name, []).append(values.numpy())
    return {name: np.concatenate(values) for name, values in out.items()}


def _merged_metadata(sources, sets, weights, kind: str, k: int) -> LabelSetMetadata:
    metas = [labels.metadata for labels in sets]
    parts = [
        dict(
            source=source,
            teacher=meta.teacher,
            teacher_revision=meta.teacher_revision,
            kind=meta.kind,
            k=meta.k,
            weight=float(weight),
        )
        for source, meta, weight in zip(sources, metas, weights)
    ]
    values = metas[0].to_dict()
    values.update(
        kind=kind,
        k=k,
        teacher=" + ".join(meta.teacher for meta in metas),
        teacher_revision=None,
        teacher_class_indices=None,
        skipped_rows=sorted({row for meta in metas for row in meta.skipped_rows}),
        provenance=dict(method="merged", label_sets=parts),
    )
    return LabelSetMetadata.from_dict(values)


def merge_label_sets(
    sources: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    weights: Sequence[float] | None = None,
    kind: str | None = None,
    k: int | None = None,
    card: CardWriter | None = None,
) -> LabelSetMetadata:
    """Merges label sets that share crops into one in ``output_dir`` (a new or empty folder).

    Targets are averaged with ``weights`` (default equal; normalised to sum 1), then stored as ``kind`` (default:
    the first set's) with ``k`` classes (default: the first set's k when the kind is the same, else the kind's).
    ``card`` writes the dataset card (as in :meth:`~fkd_hf.labels.writer.LabelSetWriter.finish`).

    >>> merge_label_sets(["labels/teacher-a", "labels/teacher-b"], "labels/ensemble", kind="full")  # doctest: +SKIP
    """
    sources = [str(source) for source in sources]
    if len(sources) < 2:
        raise ValueError("Give at least two label sets to merge.")
    output = Path(output_dir)
    if output.exists() and any(output.iterdir()):
        raise FileExistsError(f"{output} is not empty: choose a new or empty folder for the merged label set.")
    weights = np.ones(len(sources)) if weights is None else np.asarray(weights, dtype=np.float64)
    usable = ((weights > 0) & (weights < np.inf)).all() and math.isfinite(sum(weights.tolist()))
    if len(weights) != len(sources) or not usable:
        raise ValueError(
            f"Give one positive weight per label set ({len(sources)}), finite and with a finite sum, "
            f"got {weights.tolist()}."
        )
    weights = weights / weights.sum()
    sets = [load_label_set(source) for source in sources]
    _check_compatible(sources, sets)
    first = sets[0].metadata
    kind = kind or first.kind
    k = resolve_k(kind, k if k is not None or kind != first.kind else first.k, first.num_classes)
    metadata = _merged_metadata(sources, sets, weights, kind, k)
    metadata.rows_per_shard = first.rows_per_shard or max(first.num_rows, 1)
    return _write_merged(sources, sets, weights, metadata, output, card)


def _write_merged(sources, sets, weights, metadata: LabelSetMetadata, output: Path, card) -> LabelSetMetadata:
    """Writes the merged rows shard by shard (the first set's shard layout), checking the shared crops as it goes."""
    writer = LabelSetWriter(output, metadata)
    metas = [labels.metadata for labels in sets]
    tables = [labels.dataset.with_format("arrow") for labels in sets]
    skipped = np.asarray(metadata.skipped_rows, dtype=np.int64)
    n, step = metadata.num_rows, metadata.rows_per_shard
    for shard, start in enumerate(range(0, n, step)):
        stop = min(start + step, n)
        parts = [_columns(table[start:stop], meta) for table, meta in zip(tables, metas)]
        keep = ~np.isin(np.arange(start, stop), skipped)
        _check_shared_crops(sources, parts, start, keep)
        columns = {name: parts[0][name] for name in ("image_key", "crops", "flips")}
        for name, values in _merged_targets(parts, metas, weights, metadata).items():
            values[~keep] = 0  # placeholders of skipped rows, as generate writes them
            columns[name] = values
        writer.write_shard(shard, columns, [start + int(row) for row in np.flatnonzero(~keep)])
    return writer.finish(math.ceil(n / step), card)
