"""The run every producer of a label set shares (``fkd-hf generate``, ``fkd-hf import-fkd``): :func:`run_sharded`.

Work is split into shards of consecutive source rows (:class:`ShardPlan`), sized by the options and the row count,
never by the number of processes. Under ``accelerate launch`` process p takes shards p, p + P, p + 2P, ...; each
shard is written atomically once complete (:class:`ShardWriter`), so an interrupted run resumes by skipping finished
shards. ``fkd_labels.json`` is written last, by the main process, once every shard is on disk. A rerun first
verifies what is there (:mod:`.verify`) and redoes only damaged or stale shards; :mod:`.output` says when a folder
may be resumed or overwritten.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ..hub.label_card import write_label_set_card
from ..labels.format import METADATA_FILE, LabelSetMetadata, read_metadata, shard_path
from ..labels.images import ImageSource
from ..labels.writer import LabelSetWriter
from ..progress import progress_bar
from .output import prepare_output
from .prefetch import prefetch_map
from .verify import verify_output

__all__ = ["GenerateSummary", "ShardPlan", "ShardWriter", "ShardedRun", "plan_rows_per_shard", "run_sharded"]

TARGET_ROWS_PER_SHARD = 5000
MIN_SHARDS = 8  # for the processes of a distributed run to share...
MIN_ROWS_PER_SHARD = 256  # ...unless that leaves shards smaller than this: a shard's footer and metadata cost a few kB


def plan_rows_per_shard(num_rows: int | None, rows_per_shard: int | None = None, num_shards: int | None = None) -> int:
    """Rows per shard: ``rows_per_shard``, or ``num_rows`` split into ``num_shards`` (default: at least MIN_SHARDS
    of up to TARGET_ROWS_PER_SHARD rows, none under MIN_ROWS_PER_SHARD); TARGET_ROWS_PER_SHARD for a stream."""
    if rows_per_shard:
        return rows_per_shard
    if num_rows is None:
        return TARGET_ROWS_PER_SHARD
    if num_shards:
        return max(1, math.ceil(num_rows / num_shards))
    num_shards = max(MIN_SHARDS, math.ceil(num_rows / TARGET_ROWS_PER_SHARD))
    return max(1, min(num_rows, max(MIN_ROWS_PER_SHARD, math.ceil(num_rows / num_shards))))


@dataclasses.dataclass
class GenerateSummary:
    output_dir: str
    rows: int
    crops: int
    skipped_rows: int
    bytes_per_crop: float
    seconds: float
    repaired: list[str] = dataclasses.field(default_factory=list)  # what a rerun found damaged and redid

    @classmethod
    def of(cls, output_dir, metadata: LabelSetMetadata, seconds: float, repaired: list[str] = ()) -> GenerateSummary:
        """The summary of the finished label set ``metadata``: its crops are those of the rows not skipped."""
        skipped = len(metadata.skipped_rows)
        return cls(
            str(output_dir),
            metadata.num_rows,
            (metadata.num_rows - skipped) * metadata.stored_crops,
            skipped,
            metadata.bytes_per_crop or 0.0,
            seconds,
            list(repaired),
        )

    def __str__(self) -> str:
        rate = self.rows / self.seconds if self.seconds else float("nan")
        repaired = f" Redone: {'; '.join(self.repaired)}." if self.repaired else ""
        return (
            f"Label set in {self.output_dir}: {self.rows} rows, {self.crops} crops, {self.skipped_rows} skipped, "
            f"{self.bytes_per_crop:.1f} bytes per crop on disk, {self.seconds:.1f} s ({rate:.1f} images/s).{repaired}"
        )


class ShardPlan:
    """The shards of a source of ``num_rows`` rows (None: a stream, whose shards are counted as it is read), and the
    rows of those a process has yet to write."""

    def __init__(self, output_dir: Path, rows_per_shard: int, num_rows: int | None):
        self.output_dir, self.rows_per_shard, self.num_rows = output_dir, rows_per_shard, num_rows
        self.num_shards = None if num_rows is None else math.ceil(num_rows / rows_per_shard)
        self.streamed_shards = 0  # of a stream: the shards seen so far

    def shard_of(self, row: int) -> int:
        return row // self.rows_per_shard

    def _todo(self, shard: int, rank: int, world: int) -> bool:
        return shard % world == rank and not shard_path(self.output_dir, shard).is_file()

    def rows(self, source: ImageSource, rank: int, world: int) -> tuple[Iterator[tuple[int, dict]], int | None]:
        """``(row index, undecoded image)`` of each row of process ``rank``'s unfinished shards, in order, and how
        many there are (None for a stream)."""
        if self.num_shards is None:
            return self._stream(source, rank, world), None
        ranges = [
            range(shard * self.rows_per_shard, min((shard + 1) * self.rows_per_shard, self.num_rows))
            for shard in range(self.num_shards)
            if self._todo(shard, rank, world)
        ]
        return self._select(source, ranges), sum(map(len, ranges))

    @staticmethod
    def _select(source: ImageSource, ranges: list[range]) -> Iterator[tuple[int, dict]]:
        column = source.image_column
        images = source.dataset.select_columns([column])
        for rows in ranges:
            for row, example in zip(rows, images.select(rows)):
                yield row, example[column]

    def _stream(self, source: ImageSource, rank: int, world: int) -> Iterator[tuple[int, dict]]:
        column = source.image_column
        for row, example in enumerate(source.dataset.select_columns([column])):
            shard = self.shard_of(row)
            self.streamed_shards = shard + 1
            if self._todo(shard, rank, world):
                yield row, example[column]


class ShardWriter:
    """Collects labelled rows (``row``, ``key``, ``error``, ``crops``, ``flips`` and the columns of the set's target
    type) and writes each shard through ``writer`` once the rows of the next one come. A row with an ``error`` is
    stored as a placeholder and recorded as skipped."""

    def __init__(self, writer: LabelSetWriter, plan: ShardPlan):
        self.writer, self.plan = writer, plan
        self.shard: int | None = None
        self.rows: list[dict] = []
        self.skipped: list[int] = []

    def add(self, row: dict) -> None:
        shard = self.plan.shard_of(row["row"])
        if shard != self.shard:
            self.close()
            self.shard = shard
        if row["error"] is not None:
            self.skipped.append(row["row"])
            meta = self.writer.metadata
            row = dict(
                row,
                crops=np.zeros((meta.stored_crops, 4), np.float16),
                flips=np.zeros(meta.stored_crops, bool),
                **meta.target.placeholder(meta),
            )
        self.rows.append(row)

    def close(self) -> None:
        """Writes the shard being collected, if any."""
        if self.rows:
            columns = {name: np.stack([row[name] for row in self.rows]) for name in self.writer.metadata.columns[1:]}
            columns["image_key"] = [row["key"] for row in self.rows]
            self.writer.write_shard(self.shard, columns, self.skipped)
        self.rows, self.skipped = [], []


def _unchanged(rows: Iterable[dict]) -> Iterable[dict]:
    return rows


@dataclasses.dataclass(frozen=True)
class ShardedRun:
    """What a producer of a label set brings to :func:`run_sharded`.

    ``prepare`` does one source row's work in reading threads: ``(row, image) -> {"row", "key", "error", ...}``;
    ``label`` turns the prepared rows, in order, into labelled ones (with ``crops``, ``flips`` and the columns of the
    target type of ``metadata``; rows with an ``error`` pass through). ``refuse`` gives the error that stops the run
    at a row that cannot be used (None: such rows are recorded as skipped).
    """

    name: str  # the command, for the progress bar
    output_dir: Path
    metadata: LabelSetMetadata  # of the set to write
    fingerprint: dict  # what a rerun must match to resume (fkd_run.json)
    source: ImageSource
    prepare: Callable[[tuple[int, dict]], dict]
    refuse: Callable[[dict], Exception] | None
    start: float  # time.perf_counter() when the command started
    label: Callable[[Iterator[dict]], Iterable[dict]] = _unchanged
    overwrite: bool = False
    verify_images: str = "sample"
    num_workers: int = 2
    ahead: int = 8  # rows prepared ahead of the one being labelled
    notice: str | None = None  # printed when the work starts


def run_sharded(run: ShardedRun, state) -> GenerateSummary:
    """Makes ``run.output_dir`` hold the finished label set of ``run``: prepares the folder (or verifies and repairs
    the run in it), labels and writes this process's unfinished shards, and lets the main process finish the set.
    ``state`` is the Accelerate state of the job (an ``Accelerator`` or a ``PartialState``)."""
    output_dir, plan = run.output_dir, ShardPlan(run.output_dir, run.metadata.rows_per_shard, run.source.num_rows)
    verification = None
    if state.is_main_process and prepare_output(output_dir, run.fingerprint, run.overwrite):
        # a rerun: the others wait, so nothing is written while the folder is checked
        verification = verify_output(
            output_dir, run.metadata, run.fingerprint, run.source, run.verify_images, plan.num_shards, run.num_workers
        )
    state.wait_for_everyone()
    if (output_dir / METADATA_FILE).is_file():  # finished, and verified
        final = read_metadata(output_dir)
        keys = f" and {verification.keys_checked} image keys" if verification and verification.keys_checked else ""
        state.print(
            f"{output_dir} already holds this label set ({final.num_shards} shards{keys} verified); nothing to do."
        )
        return GenerateSummary.of(output_dir, final, 0.0)
    if run.notice:
        state.print(run.notice)
    num_shards = _write_shards(run, plan, state)
    state.wait_for_everyone()
    if state.is_main_process:
        LabelSetWriter(output_dir, run.metadata).finish(num_shards, card=write_label_set_card)
    state.wait_for_everyone()
    summary = GenerateSummary.of(
        output_dir,
        read_metadata(output_dir),
        time.perf_counter() - run.start,
        verification.problems if verification else [],
    )
    state.print(summary)
    return summary


def _write_shards(run: ShardedRun, plan: ShardPlan, state) -> int:
    """Labels and writes this process's unfinished shards. Returns the number of shards the source has (of a
    stream: the most any process saw)."""
    rank, world = state.process_index, state.num_processes
    rows, total = plan.rows(run.source, rank, world)
    shards = ShardWriter(LabelSetWriter(run.output_dir, run.metadata), plan)
    progress = progress_bar(
        f"{run.name} [{rank}/{world}]",
        total if total is not None else run.metadata.max_rows,
        "img",
        disable=not state.is_local_main_process,
    )
    crops, start = 0, time.perf_counter()
    with progress:  # closed (its line ended) also when a bad row or Ctrl-C stops the run
        for row in run.label(prefetch_map(run.prepare, rows, run.num_workers, run.ahead)):
            shards.add(row)  # first, so that the shard before a bad row's is written
            if row["error"] is not None and run.refuse is not None:
                raise run.refuse(row)
            crops += run.metadata.stored_crops * (row["error"] is None)
            progress.update(1)
            progress.set_postfix(crops_per_s=f"{crops / max(time.perf_counter() - start, 1e-6):.0f}", refresh=False)
        shards.close()
    if plan.num_shards is not None:
        return plan.num_shards
    import torch
    from accelerate.utils import gather

    return int(gather(torch.tensor([plan.streamed_shards], device=state.device)).max().item())
