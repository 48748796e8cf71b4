"""Soft-label generation: run the teacher once on R stored random-resized crops of every image.

Work is split into shards of consecutive source rows. Under ``accelerate launch`` process p takes shards
p, p + P, p + 2P, ...; each shard is written atomically when complete, so an interrupted run resumes by skipping
finished shards. Crops and flips depend only on ``(seed, row index)`` and batches never cross a shard boundary,
so the label set is the same whatever the number of processes or interruptions. ``fkd_labels.json`` is written
last, by the main process, once every shard is on disk.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__
from .crops import (
    DEFAULT_RATIO,
    DEFAULT_SCALE,
    check_crop_ranges,
    crop_rng,
    crops_to_pixels,
    replay_crop,
    resample_filter,
    sample_crops,
)
from .image_data import BadImageError, ImageSource, decode_image, image_bytes, image_key, load_images
from .label_set import (
    DATA_DIR,
    METADATA_FILE,
    SHARD_PATTERN,
    LabelSetMetadata,
    index_dtype,
    rows_to_table,
    shard_skipped_rows,
    write_shard,
)
from .pipeline import prefetch_map
from .precision import AUTO, PRECISIONS, resolve_precision
from .soft_labels import KINDS, quantize, resolve_k
from .teachers import Teacher, load_teacher, resolve_class_map

RUN_FILE = "fkd_run.json"
TARGET_ROWS_PER_SHARD = 5000
MIN_SHARDS = 8

__all__ = ["GenerateConfig", "GenerateSummary", "generate"]


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
    num_crops: int = dataclasses.field(default=8, metadata={"help": "R: crops stored per image."})
    kind: str = dataclasses.field(default="marginal_smoothing", metadata={"help": f"One of {', '.join(KINDS)}."})
    k: int | None = dataclasses.field(default=None, metadata={"help": "Classes stored per crop (default per kind)."})
    temperature: float = dataclasses.field(default=1.0, metadata={"help": "Softmax temperature of the teacher."})
    crop_scale: list[float] = dataclasses.field(default_factory=lambda: list(DEFAULT_SCALE), metadata={"help": "RRC scale range."})
    crop_ratio: list[float] = dataclasses.field(default_factory=lambda: list(DEFAULT_RATIO), metadata={"help": "RRC ratio range."})
    batch_size: int = dataclasses.field(default=128, metadata={"help": "Crops per teacher forward pass."})
    precision: str = dataclasses.field(
        default="fp32",
        metadata={"help": "Teacher precision: fp32, bf16, fp16, or auto (bf16 on GPUs and CPUs with bf16 units "
                          "(AMX, AVX512-BF16), else fp32)."},
    )  # fmt: skip
    seed: int = dataclasses.field(default=0, metadata={"help": "Seed of the crop sampler."})
    rows_per_shard: int | None = dataclasses.field(default=None, metadata={"help": "Source rows per shard."})
    num_shards: int | None = dataclasses.field(default=None, metadata={"help": "Number of shards (sets rows/shard)."})
    num_workers: int = dataclasses.field(default=2, metadata={"help": "Image decoding threads per process."})
    overwrite: bool = dataclasses.field(default=False, metadata={"help": "Replace an existing, different label set."})
    skip_bad_images: bool = dataclasses.field(
        default=False, metadata={"help": "Record undecodable images as skipped rows instead of stopping."}
    )

    def validate(self) -> None:
        """Checks every range before any work starts."""
        if self.num_crops < 1:
            raise ValueError(f"num_crops (R) must be at least 1, got {self.num_crops}.")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive number, got {self.temperature}.")
        if self.kind not in KINDS:
            raise ValueError(f"Unknown soft-label kind {self.kind!r}; choose one of {', '.join(KINDS)}.")
        if self.k is not None and self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}.")
        if self.precision != AUTO and self.precision not in PRECISIONS:
            raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {self.precision!r}.")
        if self.batch_size < 1 or self.num_workers < 0:
            raise ValueError("batch_size must be at least 1 and num_workers at least 0.")
        for name in ("rows_per_shard", "num_shards", "max_rows"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}.")
        check_crop_ranges(self.crop_scale, self.crop_ratio)


@dataclasses.dataclass
class GenerateSummary:
    output_dir: str
    rows: int
    crops: int
    skipped_rows: int
    bytes_per_crop: float
    seconds: float

    def __str__(self) -> str:
        rate = self.rows / self.seconds if self.seconds else float("nan")
        return (
            f"Label set in {self.output_dir}: {self.rows} rows, {self.crops} crops, {self.skipped_rows} skipped, "
            f"{self.bytes_per_crop:.1f} bytes per crop on disk, {self.seconds:.1f} s ({rate:.1f} images/s)."
        )


def _shard_layout(config: GenerateConfig, num_rows: int | None) -> int:
    """Rows per shard: fixed by the options and the row count, never by the number of processes."""
    if config.rows_per_shard:
        return config.rows_per_shard
    if num_rows is None:
        return TARGET_ROWS_PER_SHARD
    num_shards = config.num_shards or max(MIN_SHARDS, math.ceil(num_rows / TARGET_ROWS_PER_SHARD))
    return max(1, math.ceil(num_rows / num_shards))


def _build_metadata(config, source: ImageSource, teacher: Teacher, class_indices, k, rows_per_shard):
    num_classes = len(class_indices) if class_indices is not None else teacher.num_classes
    if class_indices is not None:
        class_names = source.label_names or [teacher.class_names[i] for i in class_indices]
    else:
        class_names = teacher.class_names
    return LabelSetMetadata(
        kind=config.kind,
        k=k,
        num_classes=num_classes,
        class_names=list(class_names),
        temperature=float(config.temperature),
        num_crops=config.num_crops,
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
        dataset=source.spec,
        dataset_config=source.config,
        dataset_split=source.split,
        dataset_revision=source.revision,
        image_column=source.image_column,
        label_column=source.label_column,
        num_rows=source.num_rows or 0,
        rows_per_shard=rows_per_shard,
        fkd_hf_version=__version__,
    )


def _run_fingerprint(metadata: LabelSetMetadata, config: GenerateConfig) -> dict:
    """What must match for a rerun to resume an existing output folder."""
    keep = metadata.to_dict()
    for volatile in ("num_shards", "skipped_rows", "bytes_per_crop", "fkd_hf_version"):
        keep.pop(volatile)
    keep.update(max_rows=config.max_rows, streaming=config.streaming, skip_bad_images=config.skip_bad_images)
    return keep


def _prepare_output(output_dir: Path, fingerprint: dict, overwrite: bool) -> bool:
    """Makes ``output_dir`` ready; returns True when it already holds this exact, finished label set."""
    run_file = output_dir / RUN_FILE
    if run_file.is_file():
        previous = json.loads(run_file.read_text())
        if previous == fingerprint:
            return (output_dir / METADATA_FILE).is_file()
        if not overwrite:
            changed = sorted(key for key in set(previous) | set(fingerprint) if previous.get(key) != fingerprint.get(key))
            raise FileExistsError(
                f"{output_dir} holds a label set made with different options ({', '.join(changed)}). Use another "
                "--output-dir, rerun with the original options to resume, or pass --overwrite to replace it."
            )
    elif output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{output_dir} is not empty and is not an FKD label set: choose an empty folder or pass --overwrite."
        )
    if overwrite:
        for name in (DATA_DIR, METADATA_FILE, RUN_FILE, "README.md"):
            path = output_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    (output_dir / DATA_DIR).mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps(fingerprint, indent=2) + "\n")
    return False


def _shard_path(output_dir: Path, shard: int) -> Path:
    return output_dir / DATA_DIR / SHARD_PATTERN.format(shard)


class _RowLabeler:
    """Per-row image work, run in decoding threads: key, decode, sample crops, replay them at teacher size."""

    def __init__(self, config: GenerateConfig, teacher: Teacher):
        self.config = config
        self.size = teacher.input_size
        self.interpolation = teacher.interpolation
        resample_filter(self.interpolation)  # fail early on an unknown name

    def __call__(self, item):
        row, value = item
        result = {"row": row, "key": "", "error": None}
        try:
            data = image_bytes(value)
            result["key"] = image_key(data)
            image = decode_image(data)
        except BadImageError as err:
            result["error"] = f"{err} (file: {value.get('path') or 'embedded bytes'})"
            return result
        rng = crop_rng(self.config.seed, row)
        crops, flips = sample_crops(image.height, image.width, self.config.num_crops, rng, self.config.crop_scale, self.config.crop_ratio)
        boxes = crops_to_pixels(crops, image.height, image.width)
        pixels = [np.asarray(replay_crop(image, box, flip, self.size, self.interpolation)) for box, flip in zip(boxes, flips)]
        result.update(crops=crops, flips=flips, pixels=np.stack(pixels))
        return result


class _ShardWriter:
    """Collects labelled rows of one shard and writes the shard when its last row arrives."""

    def __init__(self, path: Path, metadata: LabelSetMetadata):
        self.path = path
        self.metadata = metadata
        self.rows: list[dict] = []
        self.skipped: list[int] = []

    def add(self, row: dict) -> None:
        if row.get("error") is not None:
            self.skipped.append(row["row"])
            r, k = self.metadata.num_crops, self.metadata.k
            row = dict(row, crops=np.zeros((r, 4), np.float16), flips=np.zeros(r, bool),
                       indices=np.zeros((r, k), np.int64), values=np.zeros((r, k), np.float16))
        self.rows.append(row)

    def write(self) -> None:
        columns = {
            "image_key": [row["key"] for row in self.rows],
            "crops": np.stack([row["crops"] for row in self.rows]),
            "flips": np.stack([row["flips"] for row in self.rows]),
            "topk_indices": np.stack([row["indices"] for row in self.rows]).astype(index_dtype(self.metadata.num_classes)),
            "topk_values": np.stack([row["values"] for row in self.rows]).astype(np.float16),
        }
        write_shard(rows_to_table(columns, self.metadata.features()), self.path, self.skipped)


def _rows_of_shards(source: ImageSource, shards: list[int], rows_per_shard: int) -> Iterator[tuple[int, dict]]:
    """(row index, undecoded image) for every row of ``shards`` of a map-style dataset, in order."""
    column = source.image_column
    images = source.dataset.select_columns([column])
    for shard in shards:
        start, stop = shard * rows_per_shard, min((shard + 1) * rows_per_shard, source.num_rows)
        for row, example in zip(range(start, stop), images.select(range(start, stop))):
            yield row, example[column]


class _TeacherRunner:
    """Teacher forward passes in the chosen precision; returns stored top-k per crop."""

    def __init__(self, teacher: Teacher, metadata: LabelSetMetadata, precision: str, device: torch.device):
        self.teacher = teacher
        self.device = device
        self.dtype = PRECISIONS[precision]
        teacher.model.to(device)  # in place; channels-last since load_teacher
        self.mean = torch.tensor(teacher.mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(teacher.std, device=device).view(1, -1, 1, 1) * 255
        indices = metadata.teacher_class_indices
        self.class_indices = torch.tensor(indices, device=device) if indices is not None else None
        self.metadata = metadata

    @torch.inference_mode()
    def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``pixels``: uint8 ``[N, H, W, 3]`` crops -> (indices ``[N, k]``, values ``[N, k]``)."""
        x = torch.from_numpy(pixels).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            logits = self.teacher.logits(x)
        logits = logits.float()
        if self.class_indices is not None:
            logits = logits.index_select(-1, self.class_indices)
        probs = torch.softmax(logits / self.metadata.temperature, dim=-1)
        indices, values = quantize(probs, self.metadata.kind, self.metadata.k)
        return indices.cpu().numpy(), values.half().cpu().numpy()


def _finalize(output_dir: Path, metadata: LabelSetMetadata, num_shards: int) -> LabelSetMetadata:
    import pyarrow.parquet as pq

    from .cards import write_label_set_card

    paths = [_shard_path(output_dir, shard) for shard in range(num_shards)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"Shards {missing} are missing in {output_dir}: rerun the same command to finish them.")
    metadata.num_rows = sum(pq.read_metadata(p).num_rows for p in paths)
    metadata.num_shards = num_shards
    metadata.skipped_rows = sorted(row for p in paths for row in shard_skipped_rows(p))
    crops = metadata.num_rows * metadata.num_crops
    metadata.bytes_per_crop = sum(p.stat().st_size for p in paths) / max(crops, 1)
    write_label_set_card(output_dir, metadata)
    metadata.save(output_dir)
    return metadata


def generate(config: GenerateConfig) -> GenerateSummary:
    """Generates a label set (see the module docstring); returns a summary of what was written.

    >>> generate(GenerateConfig(dataset="imagefolder:photos/train", output_dir="labels"))  # doctest: +SKIP
    """
    from accelerate import Accelerator, InitProcessGroupKwargs

    config.validate()
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
    teacher = load_teacher(
        config.teacher, config.teacher_revision, config.input_size, config.mean, config.std, config.interpolation
    )
    class_indices = resolve_class_map(teacher, config.class_map, source.label_names) if config.class_map else None
    num_classes = len(class_indices) if class_indices is not None else teacher.num_classes
    k = resolve_k(config.kind, config.k, num_classes)
    rows_per_shard = _shard_layout(config, source.num_rows)
    metadata = _build_metadata(config, source, teacher, class_indices, k, rows_per_shard)
    fingerprint = _run_fingerprint(metadata, config)

    done = False
    if accelerator.is_main_process:
        done = _prepare_output(output_dir, fingerprint, config.overwrite)
    accelerator.wait_for_everyone()
    if not done:
        done = (output_dir / METADATA_FILE).is_file() and json.loads((output_dir / RUN_FILE).read_text()) == fingerprint
    if done:
        from .label_set import read_metadata

        final = read_metadata(output_dir)
        accelerator.print(f"{output_dir} already holds this label set; nothing to do.")
        return GenerateSummary(str(output_dir), final.num_rows, final.num_rows * final.num_crops,
                               len(final.skipped_rows), final.bytes_per_crop or 0.0, 0.0)

    num_shards = math.ceil(source.num_rows / rows_per_shard) if source.num_rows is not None else None
    labeled = _label_shards(config, source, teacher, metadata, accelerator, num_shards, rows_per_shard)
    if num_shards is None:  # streaming: the stream's end tells the shard count
        num_shards = int(accelerator.gather(torch.tensor([labeled], device=accelerator.device)).max().item())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        metadata = _finalize(output_dir, metadata, num_shards)
    accelerator.wait_for_everyone()
    from .label_set import read_metadata

    metadata = read_metadata(output_dir)
    summary = GenerateSummary(str(output_dir), metadata.num_rows, metadata.num_rows * metadata.num_crops,
                              len(metadata.skipped_rows), metadata.bytes_per_crop or 0.0, time.perf_counter() - start)
    accelerator.print(summary)
    return summary


def _label_shards(config, source, teacher, metadata, accelerator, num_shards, rows_per_shard) -> int:
    """Labels this process's unfinished shards. Returns the number of shards the source has (for streams)."""
    output_dir = Path(config.output_dir)
    rank, world = accelerator.process_index, accelerator.num_processes
    if num_shards is not None:
        mine = [s for s in range(num_shards) if s % world == rank and not _shard_path(output_dir, s).is_file()]
        total_rows = sum(min((s + 1) * rows_per_shard, source.num_rows) - s * rows_per_shard for s in mine)
        rows = _rows_of_shards(source, mine, rows_per_shard)
    else:
        stream = _StreamShards(output_dir, rank, world)
        total_rows = config.max_rows
        rows = stream.rows(source, rows_per_shard)
    runner = _TeacherRunner(teacher, metadata, config.precision, accelerator.device)
    labeler = _RowLabeler(config, teacher)
    images_per_batch = max(1, config.batch_size // config.num_crops)
    progress = tqdm(total=total_rows, unit="img", desc=f"generate [{rank}/{world}]",
                    disable=not accelerator.is_local_main_process, dynamic_ncols=True)
    prepared = prefetch_map(labeler, rows, config.num_workers, ahead=2 * images_per_batch + config.num_workers)
    writer, batch, crops_done, last_shard = None, [], 0, -1
    start = time.perf_counter()

    def flush():
        nonlocal crops_done
        good = [row for row in batch if row["error"] is None]
        if good:
            indices, values = runner(np.concatenate([row["pixels"] for row in good]))
            r = config.num_crops
            for i, row in enumerate(good):
                row["indices"], row["values"] = indices[i * r:(i + 1) * r], values[i * r:(i + 1) * r]
                del row["pixels"]
        for row in batch:
            if row["error"] is not None and not config.skip_bad_images:
                raise BadImageError(
                    f"Row {row['row']} of {source.spec} cannot be used: {row['error']}. Fix or remove the file, or "
                    "rerun with --skip-bad-images to record such rows as skipped (finished shards are kept)."
                )
            writer.add(row)
        crops_done += len(good) * config.num_crops
        progress.update(len(batch))
        elapsed = time.perf_counter() - start
        progress.set_postfix(crops_per_s=f"{crops_done / elapsed:.0f}", refresh=False)
        batch.clear()

    for row in prepared:
        shard = row["row"] // rows_per_shard
        if shard != last_shard:
            if batch:
                flush()
            if writer is not None:
                writer.write()
            writer, last_shard = _ShardWriter(_shard_path(output_dir, shard), metadata), shard
        batch.append(row)
        if len(batch) >= images_per_batch:
            flush()
    if batch:
        flush()
    if writer is not None:
        writer.write()
    progress.close()
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
            if shard % self.world == self.rank and not _shard_path(self.output_dir, shard).is_file():
                yield row, example[column]
