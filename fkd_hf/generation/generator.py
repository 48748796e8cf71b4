"""Soft-label generation: run the teacher once on R stored random-resized crops of every image.

Work is split into shards of consecutive source rows. Under ``accelerate launch`` process p takes shards
p, p + P, p + 2P, ...; each shard is written atomically when complete, so an interrupted run resumes by skipping
finished shards. Crops and flips depend only on ``(seed, row index)`` and batches never cross a shard boundary,
so the label set is the same whatever the number of processes or interruptions. ``fkd_labels.json`` is written
last, by the main process, once every shard is on disk. A rerun first verifies what is there (:mod:`.verify`) and
relabels only damaged or stale shards; :mod:`.output` says when a folder may be resumed or overwritten.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..version import __version__
from ..labels.crops import (
    DEFAULT_REPLAY, TENSOR_INTERPOLATIONS, check_replay_interpolation, crop_rng, crops_to_pixels, replay_crops,
    sample_crops,
)  # fmt: skip
from ..labels.decode import decode_for_replay, decoded_size
from ..labels.images import (
    BadImageError, ImageSource, absolute_dataset_spec, image_bytes, image_key, load_images,
)  # fmt: skip
from ..labels.format import METADATA_FILE, LabelSetMetadata, read_metadata, shard_path
from ..labels.kinds import quantize, resolve_k
from ..labels.merge import SharedCrops
from ..labels.writer import LabelSetWriter
from ..models.precision import resolve_precision
from ..models.teacher_runner import TeacherRunner
from ..models.teachers import Teacher, load_teacher, resolve_class_map
from .config import GenerateConfig
from .output import prepare_output, recorded_replay
from .prefetch import prefetch_map
from .verify import verify_output

TARGET_ROWS_PER_SHARD = 5000
MIN_SHARDS = 8  # for the processes of a distributed run to share...
MIN_ROWS_PER_SHARD = 256  # ...unless that leaves shards smaller than this: a shard's footer and metadata cost a few kB

__all__ = ["GenerateConfig", "GenerateSummary", "generate"]


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
        return cls(str(output_dir), metadata.num_rows, (metadata.num_rows - skipped) * metadata.stored_crops, skipped,
                   metadata.bytes_per_crop or 0.0, seconds, list(repaired))  # fmt: skip

    def __str__(self) -> str:
        rate = self.rows / self.seconds if self.seconds else float("nan")
        repaired = f" Redone: {'; '.join(self.repaired)}." if self.repaired else ""
        return (
            f"Label set in {self.output_dir}: {self.rows} rows, {self.crops} crops, {self.skipped_rows} skipped, "
            f"{self.bytes_per_crop:.1f} bytes per crop on disk, {self.seconds:.1f} s ({rate:.1f} images/s).{repaired}"
        )


def _shard_layout(config: GenerateConfig, num_rows: int | None) -> int:
    """Rows per shard: fixed by the options and the row count, never by the number of processes."""
    if config.rows_per_shard:
        return config.rows_per_shard
    if num_rows is None:
        return TARGET_ROWS_PER_SHARD
    if config.num_shards:
        return max(1, math.ceil(num_rows / config.num_shards))
    num_shards = max(MIN_SHARDS, math.ceil(num_rows / TARGET_ROWS_PER_SHARD))
    return max(1, min(num_rows, max(MIN_ROWS_PER_SHARD, math.ceil(num_rows / num_shards))))


def _class_names(teacher: Teacher, class_indices, label_names) -> tuple[list[str], list[str] | None]:
    """``(class names, the dataset's own names or None)``: a dataset class named by the teacher's class id (an
    ImageNet WordNet id such as n01440764) gets the teacher's readable name (tench); the dataset's names are kept."""
    if class_indices is None:
        return list(teacher.class_names), None
    if not label_names:
        return [teacher.class_names[i] for i in class_indices], None
    ids = [class_id.lower() for class_id in teacher.class_ids or []]
    known = [i < len(ids) and name.lower() == ids[i] for name, i in zip(label_names, class_indices)]
    short = [teacher.class_names[i].split(",")[0].strip() for i in class_indices]
    names = [(s if short.count(s) == 1 else teacher.class_names[i]) if is_id else name
             for name, i, s, is_id in zip(label_names, class_indices, short, known)]  # fmt: skip
    return names, (list(label_names) if any(known) else None)


def _build_metadata(config, source: ImageSource, teacher: Teacher, class_indices, k, rows_per_shard):
    num_classes = len(class_indices) if class_indices is not None else teacher.num_classes
    class_names, dataset_class_names = _class_names(teacher, class_indices, source.label_names)
    return LabelSetMetadata(
        kind=config.kind,
        k=k,
        num_classes=num_classes,
        class_names=class_names,
        dataset_class_names=dataset_class_names,
        temperature=float(config.temperature),
        stored_crops=config.stored_crops,
        seed=config.seed,
        crop_scale=list(config.crop_scale),
        crop_ratio=list(config.crop_ratio),
        teacher=teacher.name,
        teacher_revision=teacher.revision,
        teacher_library=teacher.library,
        teacher_input_size=list(teacher.input_size),
        teacher_mean=list(teacher.mean),
        teacher_std=list(teacher.std),
        teacher_interpolation=teacher.interpolation,
        teacher_class_indices=class_indices,
        precision=config.precision,
        replay=config.replay,
        dataset=source.spec,
        dataset_config=source.config,
        dataset_split=source.split,
        dataset_revision=source.revision,
        image_column=source.image_column,
        label_column=source.label_column,
        num_rows=source.num_rows or 0,
        rows_per_shard=rows_per_shard,
        fkd_hf_version=__version__,
        max_rows=config.max_rows,
        dataset_absolute=absolute_dataset_spec(source.spec),
    )


def _default_replay(teacher: Teacher) -> str:
    """The replay of a new label set: DEFAULT_REPLAY, or pil for a teacher whose interpolation it lacks."""
    return DEFAULT_REPLAY if teacher.interpolation in TENSOR_INTERPOLATIONS else "pil"


def _run_fingerprint(metadata: LabelSetMetadata, config: GenerateConfig) -> dict:
    """What must match for a rerun to resume an existing output folder."""
    keep = metadata.to_dict()
    for volatile in ("num_shards", "skipped_rows", "bytes_per_crop", "fkd_hf_version", "card_digest",
                     "dataset_absolute"):  # fmt: skip
        keep.pop(volatile)
    keep.update(streaming=config.streaming)  # not skip_bad_images: a resume may add it for the shards left
    if config.crops_from:
        keep["crops_from"] = config.crops_from
    return keep


class _RowLabeler:
    """Per-row image work, run in decoding threads: key, decode, sample crops, replay them at teacher size."""

    def __init__(self, config: GenerateConfig, teacher: Teacher):
        self.config = config
        self.size = teacher.input_size
        self.interpolation = teacher.interpolation
        self.replay = config.replay
        check_replay_interpolation(self.replay, self.interpolation)  # fail early
        self.shared = SharedCrops(config.crops_from) if config.crops_from else None

    def __call__(self, item):
        row, value = item
        result = {"row": row, "key": "", "error": None}
        try:
            data = image_bytes(value)
            result["key"] = image_key(data)
            image = decode_for_replay(data, self.replay)
        except BadImageError as err:
            result["error"] = f"{err} (file: {value.get('path') or 'embedded bytes'})"
            return result
        if self.shared is not None:  # --crops_from: the crops another label set stores for this image
            stored = self.shared.row(row, result["key"])
            if stored is None:
                result["error"] = f"the row is recorded as skipped in {self.config.crops_from} (--crops_from)"
                return result
            crops, flips = stored
        else:
            rng = crop_rng(self.config.seed, row)
            crops, flips = sample_crops(*decoded_size(image), self.config.stored_crops, rng, self.config.crop_scale,
                                        self.config.crop_ratio)  # fmt: skip
        boxes = crops_to_pixels(crops, *decoded_size(image))
        pixels = replay_crops(image, boxes, flips, self.size, self.interpolation, self.replay)
        result.update(crops=crops, flips=flips, pixels=pixels)
        return result


class _ShardRows:
    """Collects the labelled rows of one shard; :meth:`write` hands them to the label-set writer."""

    def __init__(self, writer: LabelSetWriter, shard: int):
        self.writer, self.shard = writer, shard
        self.rows: list[dict] = []
        self.skipped: list[int] = []

    def add(self, row: dict) -> None:
        if row.get("error") is not None:  # a placeholder row, recorded as skipped
            self.skipped.append(row["row"])
            r, k = self.writer.metadata.stored_crops, self.writer.metadata.k
            row = dict(row, crops=np.zeros((r, 4), np.float16), flips=np.zeros(r, bool),
                       indices=np.zeros((r, k), np.int64), values=np.zeros((r, k), np.float16))
        self.rows.append(row)

    def write(self) -> None:
        columns = {
            "image_key": [row["key"] for row in self.rows],
            "crops": np.stack([row["crops"] for row in self.rows]),
            "flips": np.stack([row["flips"] for row in self.rows]),
            "topk_indices": np.stack([row["indices"] for row in self.rows]),
            "topk_values": np.stack([row["values"] for row in self.rows]),
        }
        self.writer.write_shard(self.shard, columns, self.skipped)


def _rows_of_shards(source: ImageSource, shards: list[int], rows_per_shard: int) -> Iterator[tuple[int, dict]]:
    """(row index, undecoded image) for every row of ``shards`` of a map-style dataset, in order."""
    column = source.image_column
    images = source.dataset.select_columns([column])
    for shard in shards:
        start, stop = shard * rows_per_shard, min((shard + 1) * rows_per_shard, source.num_rows)
        for row, example in zip(range(start, stop), images.select(range(start, stop))):
            yield row, example[column]


def generate(config: GenerateConfig) -> GenerateSummary:
    """Generates a label set (see the module docstring); returns a summary of what was written.

    >>> generate(GenerateConfig(dataset="imagefolder:photos/train", output_dir="labels"))  # doctest: +SKIP
    """
    from accelerate import Accelerator, InitProcessGroupKwargs

    shared = SharedCrops(config.crops_from) if config.crops_from else None
    if shared:  # the shared crops fix R, the seed, the crop ranges and the replay, and carry the classes and rows
        options = shared.crop_options()
        if config.replay not in (None, options["replay"]):
            raise ValueError(f"--replay {config.replay} differs from the replay {options['replay']!r} of "
                             f"{config.crops_from} (--crops_from), which a set of its crops keeps: drop --replay.")
        config = dataclasses.replace(config, **options, **shared.carried_options(config.class_map, config.max_rows))
    start = time.perf_counter()
    # Accelerate treats a torchrun/launch job as distributed on CPU only when told to use the CPU.
    accelerator = Accelerator(
        cpu=not torch.accelerator.is_available(),
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=24))],
    )
    config = dataclasses.replace(config, precision=resolve_precision(config.precision, accelerator.device))
    output_dir = Path(config.output_dir)
    with accelerator.main_process_first():
        source = load_images(
            config.dataset, config.dataset_config, config.split, config.revision, config.streaming,
            config.image_column, config.label_column, config.max_rows,
        )
    if shared:
        shared.check_rows(source.num_rows, config.dataset)
    teacher = load_teacher(
        config.teacher, config.teacher_revision, config.input_size, config.mean, config.std, config.interpolation
    )
    if config.replay is None:  # a rerun resumes with its run's replay; a new set gets the default
        previous = None if config.overwrite else recorded_replay(config.output_dir)
        config = dataclasses.replace(config, replay=previous or _default_replay(teacher))
    class_indices = resolve_class_map(teacher, config.class_map, source.label_names) if config.class_map else None
    num_classes = len(class_indices) if class_indices is not None else teacher.num_classes
    k = resolve_k(config.kind, config.k, num_classes)
    rows_per_shard = _shard_layout(config, source.num_rows)
    metadata = _build_metadata(config, source, teacher, class_indices, k, rows_per_shard)
    fingerprint = _run_fingerprint(metadata, config)
    num_shards = math.ceil(source.num_rows / rows_per_shard) if source.num_rows is not None else None
    verification = None
    if accelerator.is_main_process and prepare_output(output_dir, fingerprint, config.overwrite):
        # a rerun: the others wait, so nothing is written while the folder is checked
        verification = verify_output(output_dir, metadata, fingerprint, source, config.verify_images, num_shards,
                                     config.num_workers)  # fmt: skip
    accelerator.wait_for_everyone()
    if (output_dir / METADATA_FILE).is_file():  # finished, and verified
        final = read_metadata(output_dir)
        keys = f" and {verification.keys_checked} image keys" if verification and verification.keys_checked else ""
        accelerator.print(f"{output_dir} already holds this label set ({final.num_shards} shards{keys} verified); "
                          "nothing to do.")  # fmt: skip
        return GenerateSummary.of(output_dir, final, 0.0)

    accelerator.print(f"Generating on {accelerator.num_processes} process{'es' * (accelerator.num_processes > 1)}: "
                      f"teacher {config.teacher}, R={config.stored_crops}, {config.precision}, replay {config.replay}.")
    labeled = _label_shards(config, source, teacher, metadata, accelerator, num_shards, rows_per_shard)
    if num_shards is None:  # streaming: the stream's end tells the shard count
        num_shards = int(accelerator.gather(torch.tensor([labeled], device=accelerator.device)).max().item())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        metadata = LabelSetWriter(output_dir, metadata).finish(num_shards)
    accelerator.wait_for_everyone()
    metadata = read_metadata(output_dir)
    summary = GenerateSummary.of(output_dir, metadata, time.perf_counter() - start,
                                 verification.problems if verification else [])  # fmt: skip
    accelerator.print(summary)
    return summary


def _label_shards(config, source, teacher, metadata, accelerator, num_shards, rows_per_shard) -> int:
    """Labels this process's unfinished shards. Returns the number of shards the source has (for streams)."""
    output_dir = Path(config.output_dir)
    rank, world = accelerator.process_index, accelerator.num_processes
    if num_shards is not None:
        mine = [s for s in range(num_shards) if s % world == rank and not shard_path(output_dir, s).is_file()]
        total_rows = sum(min((s + 1) * rows_per_shard, source.num_rows) - s * rows_per_shard for s in mine)
        rows = _rows_of_shards(source, mine, rows_per_shard)
    else:
        stream = _StreamShards(output_dir, rank, world)
        total_rows = config.max_rows
        rows = stream.rows(source, rows_per_shard)
    runner = TeacherRunner(teacher, config.precision, accelerator.device, metadata.teacher_class_indices,
                           metadata.temperature)
    writer = LabelSetWriter(output_dir, metadata)
    labeler = _RowLabeler(config, teacher)
    images_per_batch = max(1, config.batch_size // config.stored_crops)
    progress = tqdm(total=total_rows, unit="img", desc=f"generate [{rank}/{world}]",
                    disable=not accelerator.is_local_main_process, dynamic_ncols=True)
    prepared = prefetch_map(labeler, rows, config.num_workers, ahead=2 * images_per_batch + config.num_workers)
    shard_rows, batch, crops_done, last_shard = None, [], 0, -1
    start = time.perf_counter()

    def flush():
        nonlocal crops_done
        good = [row for row in batch if row["error"] is None]
        if good:
            probs = runner.probs(np.concatenate([row["pixels"] for row in good]))
            indices, values = (v.cpu().numpy() for v in quantize(probs, metadata.kind, metadata.k))
            r = config.stored_crops
            for i, row in enumerate(good):
                row["indices"], row["values"] = indices[i * r:(i + 1) * r], values[i * r:(i + 1) * r]
                del row["pixels"]
        for row in batch:
            if row["error"] is not None and not config.skip_bad_images:
                raise BadImageError(
                    f"Row {row['row']} of {source.spec} cannot be used: {row['error']}. Fix or remove the file, or "
                    "rerun with --skip-bad-images to record such rows as skipped (finished shards are kept)."
                )
            shard_rows.add(row)
        crops_done += len(good) * config.stored_crops
        progress.update(len(batch))
        elapsed = time.perf_counter() - start
        progress.set_postfix(crops_per_s=f"{crops_done / elapsed:.0f}", refresh=False)
        batch.clear()

    with progress:  # closed (its line ended) also when a bad image or Ctrl-C stops the run
        for row in prepared:
            shard = row["row"] // rows_per_shard
            if shard != last_shard:
                if batch:
                    flush()
                if shard_rows is not None:
                    shard_rows.write()
                shard_rows, last_shard = _ShardRows(writer, shard), shard
            batch.append(row)
            if len(batch) >= images_per_batch:
                flush()
        if batch:
            flush()
        if shard_rows is not None:
            shard_rows.write()
    return num_shards if num_shards is not None else stream.num_shards


class _StreamShards:
    """Shard selection for a stream: this process's shards that are not on disk yet; counts the stream's shards."""

    def __init__(self, output_dir: Path, rank: int, world: int):
        self.output_dir, self.rank, self.world = output_dir, rank, world
        self.num_shards = 0

    def rows(self, source: ImageSource, rows_per_shard: int) -> Iterator[tuple[int, dict]]:
        column = source.image_column
        for row, example in enumerate(source.dataset.select_columns([column])):
            shard = row // rows_per_shard
            self.num_shards = shard + 1
            if shard % self.world == self.rank and not shard_path(self.output_dir, shard).is_file():
                yield row, example[column]
