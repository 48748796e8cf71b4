"""Soft-label generation: run the teacher once on R stored random-resized crops of every image.

The run is sharded, resumable and distributed as :mod:`.shards` describes. Crops and flips depend only on
``(seed, row index)`` and teacher batches never cross a shard boundary, so the label set is the same whatever the
number of processes or interruptions.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch

from ..labels.crops import (
    DEFAULT_REPLAY,
    TENSOR_INTERPOLATIONS,
    check_replay_interpolation,
    crop_rng,
    crops_to_pixels,
    replay_crops,
    sample_crops,
)
from ..labels.decode import decode_for_replay, decoded_size
from ..labels.format import LabelSetMetadata
from ..labels.images import BadImageError, ImageSource, image_bytes, image_key, load_images
from ..labels.kinds import resolve_k
from ..labels.merge import SharedCrops
from ..labels.targets import target_type
from ..models.teacher_runner import TeacherRunner
from ..models.teachers import Teacher, load_teacher, resolve_class_map
from .config import GenerateConfig, ResolvedGenerate
from .metadata import build_metadata
from .output import recorded_replay
from .shards import GenerateSummary, ShardedRun, plan_rows_per_shard, run_sharded

__all__ = ["GenerateConfig", "GenerateSummary", "generate"]


def generate(config: GenerateConfig) -> GenerateSummary:
    """Generates a label set (see the module docstring); returns a summary of what was written.

    >>> generate(GenerateConfig(dataset="imagefolder:photos/train", output_dir="labels"))  # doctest: +SKIP
    """
    from accelerate import Accelerator, InitProcessGroupKwargs

    shared = SharedCrops(config.crops_from) if config.crops_from else None
    fixed = shared.generate_options(config.replay, config.class_map, config.max_rows) if shared else {}
    start = time.perf_counter()
    # Accelerate treats a torchrun/launch job as distributed on CPU only when told to use the CPU.
    accelerator = Accelerator(
        cpu=not torch.accelerator.is_available(),
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=24))],
    )
    with accelerator.main_process_first():
        source = load_images(
            config.dataset,
            config.dataset_config,
            config.split,
            config.revision,
            config.streaming,
            config.image_column,
            config.label_column,
            fixed.get("max_rows", config.max_rows),
        )
    if shared:
        shared.check_rows(source.num_rows, config.dataset)
    teacher = load_teacher(
        config.teacher,
        config.teacher_revision,
        config.input_size,
        config.mean,
        config.std,
        config.interpolation,
        encoder=target_type(config.target_type).label_free,
    )
    replay = (None if config.overwrite else recorded_replay(config.output_dir)) or _default_replay(teacher)
    run = ResolvedGenerate.resolve(config, fixed, replay, accelerator.device)
    metadata = _metadata(run, source, teacher)
    processes = f"{accelerator.num_processes} process{'es' * (accelerator.num_processes > 1)}"
    return run_sharded(
        ShardedRun(
            "generate",
            Path(config.output_dir),
            metadata,
            _run_fingerprint(metadata, config),
            source,
            prepare=_RowLabeler(run, teacher, shared),
            label=_TeacherLabels(run, teacher, metadata, accelerator.device),
            refuse=None if config.skip_bad_images else functools.partial(_bad_row, source.spec),
            start=start,
            overwrite=config.overwrite,
            verify_images=config.verify_images,
            num_workers=config.num_workers,
            ahead=2 * max(1, config.batch_size // run.stored_crops) + config.num_workers,
            notice=f"Generating on {processes}: teacher {config.teacher}, R={run.stored_crops}, {run.precision}, "
            f"replay {run.replay}.",
        ),
        accelerator,
    )


def _default_replay(teacher: Teacher) -> str:
    """The replay of a new label set: DEFAULT_REPLAY, or pil for a teacher whose interpolation it lacks."""
    return DEFAULT_REPLAY if teacher.interpolation in TENSOR_INTERPOLATIONS else "pil"


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
    names = [
        (s if short.count(s) == 1 else teacher.class_names[i]) if is_id else name
        for name, i, s, is_id in zip(label_names, class_indices, short, known)
    ]
    return names, (list(label_names) if any(known) else None)


def _targets(run: ResolvedGenerate, source: ImageSource, teacher: Teacher) -> dict:
    """The metadata fields of what each crop stores: the classes and kind of class probabilities; of a label-free
    type, the embedding width D (as ``num_classes``) and no class names."""
    config = run.config
    if target_type(config.target_type).label_free:
        width = teacher.output_width()
        if config.target_type == "embedding":
            kind, k = ("normalized" if config.normalize_embeddings else "raw"), width
        else:
            kind, k = config.kind, resolve_k(config.kind, config.k, width)
        return dict(
            kind=kind, k=k, num_classes=width, class_names=[], dataset_class_names=None, teacher_class_indices=None
        )
    class_indices = resolve_class_map(teacher, run.class_map, source.label_names) if run.class_map else None
    class_names, dataset_class_names = _class_names(teacher, class_indices, source.label_names)
    return dict(
        kind=config.kind,
        k=resolve_k(config.kind, config.k, len(class_names)),
        num_classes=len(class_names),
        class_names=class_names,
        dataset_class_names=dataset_class_names,
        teacher_class_indices=class_indices,
    )


def _metadata(run: ResolvedGenerate, source: ImageSource, teacher: Teacher) -> LabelSetMetadata:
    config = run.config
    return build_metadata(
        source,
        teacher,
        plan_rows_per_shard(source.num_rows, config.rows_per_shard, config.num_shards),
        run.max_rows,
        **_targets(run, source, teacher),
        temperature=float(config.temperature),
        stored_crops=run.stored_crops,
        seed=run.seed,
        crop_scale=list(run.crop_scale),
        crop_ratio=list(run.crop_ratio),
        precision=run.precision,
        replay=run.replay,
        target_type=config.target_type,
    )


def _run_fingerprint(metadata: LabelSetMetadata, config: GenerateConfig) -> dict:
    """What must match for a rerun to resume an existing output folder."""
    keep = metadata.to_dict()
    for volatile in (
        "num_shards",
        "skipped_rows",
        "bytes_per_crop",
        "fkd_hf_version",
        "card_digest",
        "dataset_absolute",
    ):
        keep.pop(volatile)
    keep.update(streaming=config.streaming)  # not skip_bad_images: a resume may add it for the shards left
    if config.crops_from:
        keep["crops_from"] = config.crops_from
    return keep


class _RowLabeler:
    """Per-row image work, run in decoding threads: key, decode, sample crops, replay them at teacher size."""

    def __init__(self, run: ResolvedGenerate, teacher: Teacher, shared: SharedCrops | None):
        self.run, self.shared = run, shared
        self.size, self.interpolation = teacher.input_size, teacher.interpolation
        check_replay_interpolation(run.replay, self.interpolation)  # fail early

    def __call__(self, item) -> dict:
        row, value = item
        run = self.run
        result = {"row": row, "key": "", "error": None}
        try:
            data = image_bytes(value)
            result["key"] = image_key(data)
            image = decode_for_replay(data, run.replay)
        except BadImageError as err:
            result["error"] = f"{err} (file: {value.get('path') or 'embedded bytes'})"
            return result
        if self.shared is not None:  # --crops_from: the crops another label set stores for this image
            stored = self.shared.row(row, result["key"])
            if stored is None:
                result["error"] = f"the row is recorded as skipped in {run.config.crops_from} (--crops_from)"
                return result
            crops, flips = stored
        else:
            crops, flips = sample_crops(
                *decoded_size(image), run.stored_crops, crop_rng(run.seed, row), run.crop_scale, run.crop_ratio
            )
        boxes = crops_to_pixels(crops, *decoded_size(image))
        pixels = replay_crops(image, boxes, flips, self.size, self.interpolation, run.replay)
        result.update(crops=crops, flips=flips, pixels=pixels)
        return result


class _TeacherLabels:
    """The stored targets of prepared rows (the teacher's outputs, encoded by the set's target type), in batches of
    ``batch_size`` crops that never cross a shard."""

    def __init__(self, run: ResolvedGenerate, teacher: Teacher, metadata: LabelSetMetadata, device):
        self.run, self.teacher, self.metadata, self.device = run, teacher, metadata, device
        self.images_per_batch = max(1, run.config.batch_size // run.stored_crops)

    def __call__(self, rows: Iterator[dict]) -> Iterator[dict]:
        meta = self.metadata
        runner = TeacherRunner(self.teacher, self.run.precision, self.device, meta.teacher_class_indices)
        batch: list[dict] = []
        for row in rows:
            if batch and (
                len(batch) == self.images_per_batch
                or row["row"] // meta.rows_per_shard != batch[0]["row"] // meta.rows_per_shard
            ):
                yield from self._label(runner, batch)
                batch = []
            batch.append(row)
        yield from self._label(runner, batch)

    def _label(self, runner: TeacherRunner, batch: list[dict]) -> list[dict]:
        good = [row for row in batch if row["error"] is None]
        if good:
            outputs = runner.restrict(runner.outputs(np.concatenate([row.pop("pixels") for row in good])))
            stored = {name: v.cpu().numpy() for name, v in self.metadata.target.encode(outputs, self.metadata).items()}
            r = self.run.stored_crops
            for i, row in enumerate(good):
                row.update({name: values[i * r : (i + 1) * r] for name, values in stored.items()})
        return batch


def _bad_row(dataset: str, row: dict) -> BadImageError:
    """The error that stops a run at a row whose image cannot be used (without --skip_bad_images)."""
    return BadImageError(
        f"Row {row['row']} of {dataset} cannot be used: {row['error']}. Fix or remove the file, or rerun with "
        "--skip-bad-images to record such rows as skipped (finished shards are kept)."
    )
