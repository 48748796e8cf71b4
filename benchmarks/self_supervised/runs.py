"""The rows of one dataset: FKD's label-free label sets (generation timed), each row's training through
:func:`fkd_hf.training.build_trainer` from one initial student (timed, its student saved), and the teacher's own
features; every row scored by the k-NN and the linear probe of its frozen features."""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from transformers.trainer_callback import PrinterCallback

from fkd_hf.generation import GenerateConfig, generate
from fkd_hf.labels import load_label_set, read_metadata
from fkd_hf.labels.images import ImageSource, load_images
from fkd_hf.models import create_student, load_teacher, student_data_config
from fkd_hf.models.projection import save_backbone_and_head
from fkd_hf.models.teacher_runner import TeacherRunner
from fkd_hf.training import EvalDataset, FKDTrainer, build_trainer
from fkd_hf.training.data import collate_crops
from fkd_hf.training.embedding_metrics import embedding_scores

from ..compare.cost import cpu_seconds
from ..compare.labels import prepare_data
from ..compare.runs import timed, weights_digest
from ..compare.trainer_config import protocol_config
from ..methods import crop_set_factory
from .online import OnlineTargetsTrainer
from .settings import FKD_ROWS, Settings

__all__ = ["Context", "Labels", "make_context", "generate_targets", "train_row", "teacher_row"]


@dataclasses.dataclass
class Context:
    """What every row of one dataset shares: the protocol, the photos and the two labelled splits the features are
    scored on (the labels are read there only)."""

    settings: Settings
    name: str  # the dataset folder's name
    work: Path  # labels and runs of this dataset
    output: Path  # <output-dir>/<name>: the students
    spec: str  # imagefolder: spec of the (subset of the) photos
    images: ImageSource  # the training split
    validation: ImageSource
    eval_set: EvalDataset  # validation photos at the student's eval transform
    reference_set: EvalDataset  # training photos at the student's eval transform: the k-NN's memory, the probe's fit


@dataclasses.dataclass
class Labels:
    """One generated label set and what making it cost."""

    path: Path
    seconds: float
    cpu_seconds: float  # this process and its children: the teacher's forward passes, decoding, writing
    crops: int  # stored crops (R per photo): the teacher's forward passes
    bytes: int  # the label set's size on disk
    precision: str  # the teacher's, as generation resolved it: the online teacher and the teacher row run in it


def _eval_set(source: ImageSource, size: int, crop_pct: float, interpolation: str) -> EvalDataset:
    return EvalDataset(source.dataset, (size, size), crop_pct, interpolation, source.image_column, source.label_column)


def make_context(settings: Settings, folder: str, work: Path, output: Path) -> Context:
    """The photos of ``folder`` (a class-balanced subset of symlinks in quick mode) and their evaluation splits."""
    subset = SimpleNamespace(
        dataset=folder, train_per_class=settings.train_per_class, val_per_class=settings.val_per_class
    )
    spec = prepare_data(subset, work)
    images, validation = load_images(spec, split="train"), load_images(spec, split="validation")
    data = student_data_config(create_student(settings.student, ["any"]), settings.input_size)
    size, crop_pct, interpolation = data["input_size"][-1], data["crop_pct"], data["interpolation"]
    return Context(
        settings,
        Path(folder).name,
        work,
        output,
        spec,
        images,
        validation,
        _eval_set(validation, size, crop_pct, interpolation),
        _eval_set(images, size, crop_pct, interpolation),
    )


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def generate_targets(ctx: Context, row: str) -> Labels:
    """``fkd-hf generate`` of FKD row ``row``'s target type (R crops per photo, at the teacher's size), timed, with
    ``prep_threads`` torch threads (no loader workers run then)."""
    s, target_type = ctx.settings, FKD_ROWS[row]
    path = ctx.work / "labels" / target_type
    options = {}
    if target_type == "distribution":
        options = dict(kind=s.distribution_kind, k=s.distribution_k, temperature=s.distribution_temperature)
    threads = torch.get_num_threads()
    torch.set_num_threads(s.prep_threads)
    start, cpu = time.perf_counter(), sum(cpu_seconds())
    try:
        summary = generate(
            GenerateConfig(
                dataset=ctx.spec,
                output_dir=str(path),
                teacher=s.teacher,
                input_size=s.teacher_size,
                target_type=target_type,
                stored_crops=s.stored_crops,
                seed=s.seed,
                batch_size=64,
                overwrite=True,
                **options,
            )
        )
    finally:
        torch.set_num_threads(threads)
    seconds, used = time.perf_counter() - start, sum(cpu_seconds()) - cpu
    labels = Labels(path, seconds, used, summary.crops, _folder_bytes(path), read_metadata(path).precision)
    print(f"[ssl] {ctx.name}: {target_type} labels in {labels.seconds:.1f} s ({labels.crops} crops)", flush=True)
    return labels


def _scores(trainer: FKDTrainer, ctx: Context) -> dict:
    start = time.perf_counter()
    metrics = trainer.embedding_metrics(ctx.eval_set)
    return {**metrics, "eval_seconds": time.perf_counter() - start}


def train_row(ctx: Context, row: str, labels: Labels) -> dict:
    """Trains row ``row`` (an FKD row on ``labels``, or ``online`` with ``labels`` as the embedding set whose
    target type, crop ranges and replay it uses, never its stored targets) and scores its backbone.

    ``cpu_s`` is the whole run's CPU time: the training (this process and its loader workers, from the end of the
    Trainer's setup to the last step), plus the generation of ``labels`` for an FKD row; the online row's teacher
    runs inside its training steps. ``teacher_crops`` counts the teacher's forward passes of the whole run."""
    s, online = ctx.settings, row == "online"
    m = 1 if online else s.num_crops
    config = protocol_config(ctx, row, m, embedding_loss=s.embedding_loss)
    label_set = load_label_set(labels.path)
    options: dict = {}
    if online:
        teacher = load_teacher(s.teacher, input_size=s.teacher_size, encoder=True)
        options = dict(
            train_set_factory=crop_set_factory(teacher=teacher),
            teacher=teacher,
            class_indices=None,
            precision=labels.precision,
        )
    setup = build_trainer(
        config,
        labels=label_set,
        images=ctx.images,
        eval_dataset=ctx.eval_set,
        reference_dataset=ctx.reference_set,
        trainer_class=timed(OnlineTargetsTrainer if online else FKDTrainer),
        **options,
    )
    trainer = setup.trainer
    digest = weights_digest(trainer.model)
    trainer.remove_callback(PrinterCallback)
    load_before = os.getloadavg()[0]
    trainer.train()
    train_cpu, crops = sum(trainer.train_cpu), config.max_steps * s.batch_crops
    result = {
        **_scores(trainer, ctx),
        "cpu_s": train_cpu + (0.0 if online else labels.cpu_seconds),
        "wall_s": trainer.train_seconds + (0.0 if online else labels.seconds),
        "decodes_per_crop": 1 / m,
        "bytes_per_crop": 0.0 if online else labels.bytes / labels.crops,
        "teacher_crops": trainer.teacher_crops if online else labels.crops,
        "crops": crops,
        "steps": config.max_steps,
        "crops_per_image": m,
        "train_cpu_s": train_cpu,
        "train_main_cpu_s": trainer.train_cpu[0],  # the training process alone (its loader workers left out)
        "train_seconds": trainer.train_seconds,
        "crops_per_second": crops / trainer.train_seconds,
        "labels_cpu_s": 0.0 if online else labels.cpu_seconds,
        "labels_seconds": 0.0 if online else labels.seconds,
        "initial_weights": digest,
        "load_1min": [load_before, os.getloadavg()[0]],
        "student": str(Path("students", row)),
    }
    if online:
        result["teacher_cpu_s"] = trainer.teacher_cpu_seconds
    student = trainer.accelerator.unwrap_model(trainer.model)
    save_backbone_and_head(student, ctx.output / "students" / row, setup.data_config)
    shutil.rmtree(config.output_dir, ignore_errors=True)
    del setup, trainer, student
    gc.collect()  # the loader workers end here, not inside the next row's CPU count
    print(
        f"[ssl] {ctx.name}: {row}: {result['crops_per_second']:.1f} crops/s, k-NN {100 * result['knn_top1']:.1f}%, "
        f"probe {100 * result['probe_top1']:.1f}%, {result['cpu_s']:.0f} CPU s",
        flush=True,
    )
    return result


def _features(runner: TeacherRunner, dataset: EvalDataset, ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=ctx.settings.eval_batch_size, collate_fn=collate_crops, num_workers=ctx.settings.workers
    )
    features, labels = [], []
    for batch in loader:
        features.append(runner.outputs(batch["pixel_values"]).cpu())
        labels.append(batch["labels"])
    return torch.cat(features), torch.cat(labels)


def teacher_row(ctx: Context, precision: str) -> dict:
    """The ceiling: the teacher's own embedding of the training and validation photos at its eval transform (its
    input size as in generation), scored as the students are; ``cpu_s`` is the feature extraction's."""
    import timm.data

    s = ctx.settings
    teacher = load_teacher(s.teacher, input_size=s.teacher_size, encoder=True)
    crop_pct = timm.data.resolve_data_config({}, model=teacher.model)["crop_pct"]
    runner = TeacherRunner(teacher, precision, "cpu")
    splits = [
        _eval_set(split, s.teacher_size, crop_pct, teacher.interpolation) for split in (ctx.images, ctx.validation)
    ]
    start, cpu = time.perf_counter(), sum(cpu_seconds())
    (reference, reference_labels), (features, labels) = (_features(runner, split, ctx) for split in splits)
    seconds, used = time.perf_counter() - start, sum(cpu_seconds()) - cpu
    result = {
        **embedding_scores(reference, reference_labels, features, labels),
        "cpu_s": used,
        "wall_s": seconds,
        "decodes_per_crop": 1.0,
        "bytes_per_crop": 0.0,
        "teacher_crops": len(reference) + len(features),
    }
    print(f"[ssl] {ctx.name}: teacher: k-NN {100 * result['knn_top1']:.1f}%, probe {100 * result['probe_top1']:.1f}%")
    return result
