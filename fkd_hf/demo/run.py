"""``fkd-hf demo``: FKD end to end in one process, offline on a CPU by default.

Stages: data -> teacher (load, evaluate) -> ``generate`` (soft labels) -> evaluation set -> FKD training of a
small student -> (with ``compare``: a plain student on hard labels, one decoded photo per crop as plain training
does, with the same crops per step and in all, optimizer and initialisation) -> cards, plot, summary. Each stage
calls the library: ``generate``, ``write_label_set``, ``TeacherRunner``, ``build_trainer``.

Data (:mod:`fkd_hf.demo.data`): by default the 20 ImageNet sample photos that the PyPI package ``foolbox`` (MIT)
ships; twenty photos cannot measure accuracy, so the students are scored by top-1 *agreement with the teacher* on
crops of the photos that no training step used. With ``dataset``: top-1 on its validation split, or on every 10th
training image, held out of training.

Output (``output_dir``), built in a hidden sibling folder and renamed into place when everything is done
(:mod:`fkd_hf.demo.output`)::

    labels/              label set with its dataset card   (fkd-hf push-labels labels --repo-id ...)
    student/             safetensors student with its model card   (fkd-hf push-student student --repo-id ...)
    summary.md           the summary table
    training_curves.png  training loss and evaluation score per FKD epoch
    demo_config.yaml     the resolved options (fkd-hf demo --config demo_config.yaml reruns them)
    demo_result.json     every figure of the summary, machine-readable (written last)

    >>> result = run_demo(DemoConfig(compare=True))  # doctest: +SKIP
    >>> print(result.summary)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ..config_io import save_config
from ..models.students import create_student, student_data_config
from .card import demo_card_callback, write_demo_card
from .config import DemoConfig, device_type
from .data import DemoData, label_map, prepare_data
from .eval_set import CachedEval, eval_images, heldout_crops
from .labels import generate_labels, hard_labels
from .output import CONFIG_FILE, CURVES_FILE, LABELS_DIR, RESULT_FILE, STUDENT_DIR, SUMMARY_FILE, output_transaction
from .plots import plot_training_curves
from .summary import Stage, device_name, paired_difference, summary_markdown
from .teacher_eval import TeacherEval, evaluate_teacher
from .train_stage import EVALS_PER_RUN, StudentRun, train_student, training_stage

__all__ = ["DemoConfig", "DemoResult", "run_demo"]

RUN_NAMES = {"fkd": "FKD (teacher soft labels)", "plain": "plain (hard labels)"}


@dataclasses.dataclass
class DemoResult:
    """What the demo measured and wrote."""

    output_dir: str
    summary: str  # the Markdown of summary.md
    metrics: dict  # also in demo_result.json
    stages: list[Stage]
    curves: str | None  # training_curves.png, or None without matplotlib


@dataclasses.dataclass
class _StudentEval:
    dataset: CachedEval  # at the student's size
    teacher_preds: np.ndarray | None  # for the agreement score (None: the labels are the teacher's predictions)
    metrics: dict
    stages: list[Stage]  # the work done for it before training (held-out crops)
    stage: Stage  # decoding


def _banner(name: str) -> None:
    print(f"\n== {name} ==", flush=True)


def _soft_labels(config: DemoConfig, data: DemoData, teacher: TeacherEval, labels_dir: Path, final: Path) -> Stage:
    _banner(f"generate: {data.train.num_rows} images x {config.stored_crops} crops")
    summary = generate_labels(config, data, labels_dir, config.stored_crops, config.seed, len(teacher.class_names))
    print(dataclasses.replace(summary, output_dir=str(final)), flush=True)
    return Stage(
        "generate", summary.seconds, summary.crops, "crops", f"{summary.rows} images x {config.stored_crops} crops"
    )


def _student_eval(config: DemoConfig, data: DemoData, teacher: TeacherEval, work: Path) -> _StudentEval:
    """The evaluation set at the student's size: held-out crops of the photos, or the evaluation images."""
    student = student_data_config(create_student(config.student, teacher.class_names), config.input_size)
    size = student["input_size"]
    if data.mode != "photos":
        start, source = time.perf_counter(), data.eval_source()
        dataset = eval_images(
            source,
            label_map(source, data.train.label_names, teacher.classes),
            size,
            student["crop_pct"],
            student["interpolation"],
            config.num_workers,
            "student: decode eval images",
        )
        stage = Stage(
            "evaluation",
            time.perf_counter() - start,
            len(dataset),
            "images",
            f"decode {len(dataset)} eval images at {size[0]} px",
        )
        return _StudentEval(dataset, teacher.preds, {}, [], stage)
    crops = config.heldout_crops
    _banner(f"held-out crops: {data.train.num_rows} images x {crops} crops (another seed)")
    heldout = generate_labels(config, data, work / "heldout", crops, config.seed + 1, len(teacher.class_names))
    start = time.perf_counter()
    dataset, rows = heldout_crops(work / "heldout", data.train, size, config.seed, config.num_workers)
    metrics = {"teacher_crop_top1": float(np.mean(dataset.labels == teacher.eval_labels[rows]))}
    generated = Stage(
        "held-out crops",
        heldout.seconds,
        heldout.crops,
        "crops",
        f"{heldout.rows} images x {crops} crops, never trained on",
    )
    stage = Stage(
        "evaluation",
        time.perf_counter() - start,
        len(dataset),
        "crops",
        f"decode {len(dataset)} eval crops at {size[0]} px",
    )
    return _StudentEval(dataset, None, metrics, [generated], stage)


def plain_config(config: DemoConfig, num_rows: int) -> DemoConfig:
    """The plain student's options: plain training as usual, one decoded photo per crop and a batch of as many
    photos as FKD's batch has crops, when there are that many photos; else FKD's m crops of each photo."""
    crops_per_step = config.batch_size * config.num_crops
    if num_rows < crops_per_step:
        return config
    return dataclasses.replace(config, num_crops=1, batch_size=crops_per_step)


def _plain_student(
    config: DemoConfig, data: DemoData, teacher: TeacherEval, labels_dir: Path, evaluation: _StudentEval, work: Path
) -> StudentRun:
    config = plain_config(config, len(data.train.dataset))
    _banner(f"plain training: {config.student}, hard labels, same budget, {config.num_crops} crop(s) per decoded photo")
    labels = np.asarray(data.train.dataset[data.train.label_column], dtype=np.int64)
    targets = label_map(data.train, data.train.label_names, teacher.classes)[labels]
    plain_dir = hard_labels(config, data, labels_dir, targets, work / "plain_labels")
    return train_student("plain", config, plain_dir, data, evaluation.dataset, evaluation.teacher_preds, work)


def _plot(partial: Path, config: DemoConfig, data: DemoData, runs: dict[str, StudentRun], teacher: TeacherEval):
    photos = data.mode == "photos"
    return plot_training_curves(
        {RUN_NAMES[key]: run.log_history for key, run in runs.items()},
        partial / CURVES_FILE,
        "agreement with the teacher (held-out crops)" if photos else "top-1",
        reference=None if photos else teacher.metrics["teacher_top1"],
        reference_label="teacher",
        title=f"{config.student} on {'the sample photos' if photos else data.spec}",
    )


def _metrics(
    config: DemoConfig, data: DemoData, teacher: TeacherEval, evaluation: _StudentEval, runs: dict[str, StudentRun]
) -> dict:
    """Every figure of the summary (``demo_result.json``), stages and total time left to the caller."""
    plain_source = None
    if "plain" in runs:
        m = plain_config(config, len(data.train.dataset)).num_crops
        plain_source = (
            ("the photos' own labels (one-hot)" if data.mode == "photos" else "the dataset's labels (one-hot)")
            + " on fresh random-resized crops every pass, "
            + (
                "one decoded photo per crop (plain training as usual)"
                if m == 1
                else f"{m} crops of each decoded photo (too few photos for a batch of one crop each)"
            )
        )
    metrics = {
        **teacher.metrics,
        **evaluation.metrics,
        "teacher_name": teacher.name,
        "device": device_name(device_type()),
        "threads": torch.get_num_threads(),
        "dataset": data.spec,
        "eval": data.eval_name,
        "student": config.student,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "mode": data.mode,
        "plain_source": plain_source,
        "eval_items": len(evaluation.dataset),
        "runs": {
            key: {
                k: v for k, v in dataclasses.asdict(run).items() if k not in ("log_history", "correct", "final_metrics")
            }
            for key, run in runs.items()
        },
    }
    if "plain" in runs:
        metrics["fkd_minus_plain"], metrics["fkd_minus_plain_se"] = paired_difference(
            runs["fkd"].correct, runs["plain"].correct
        )
    return metrics


def _train_students(
    config: DemoConfig,
    data: DemoData,
    teacher: TeacherEval,
    labels_dir: Path,
    evaluation: _StudentEval,
    partial: Path,
    final: Path,
) -> tuple[dict[str, StudentRun], list[Stage]]:
    """The FKD student (saved with its card) and, with ``compare``, the plain one."""
    work, card = partial / "work", demo_card_callback(config)
    _banner(f"FKD training: {config.student}")
    runs = {
        "fkd": train_student(
            "fkd",
            config,
            labels_dir,
            data,
            evaluation.dataset,
            evaluation.teacher_preds,
            work,
            [card],
            partial / STUDENT_DIR,
        )
    }
    write_demo_card(
        card,
        partial / STUDENT_DIR,
        final / LABELS_DIR,
        data,
        teacher.name,
        runs["fkd"],
        len(evaluation.dataset),
        config,
    )
    stages = [training_stage("FKD training", runs["fkd"])]
    gc.collect()
    if config.compare:
        runs["plain"] = _plain_student(config, data, teacher, labels_dir, evaluation, work)
        stages.append(training_stage("plain training", runs["plain"]))
        gc.collect()
    return runs, stages


def _run(config: DemoConfig, partial: Path, final: Path) -> DemoResult:
    start = time.perf_counter()
    (partial / "work").mkdir()
    _banner(f"teacher: {config.teacher}")
    data = prepare_data(config)
    stages = [Stage("data", time.perf_counter() - start, detail="open the images")]
    teacher = evaluate_teacher(config, data)
    stages.append(teacher.stage)
    stages.append(_soft_labels(config, data, teacher, partial / LABELS_DIR, final / LABELS_DIR))
    evaluation = _student_eval(config, data, teacher, partial / "work")
    runs, trained = _train_students(config, data, teacher, partial / LABELS_DIR, evaluation, partial, final)
    stages += [*evaluation.stages, *trained, evaluation.stage]
    plotted = time.perf_counter()
    curves = _plot(partial, config, data, runs, teacher)
    shutil.rmtree(partial / "work")
    stages.append(Stage("plot", time.perf_counter() - plotted))
    metrics = _metrics(config, data, teacher, evaluation, runs)
    metrics["total_seconds"] = time.perf_counter() - start
    metrics["stages"] = [dataclasses.asdict(stage) for stage in stages]
    text = summary_markdown(
        config, data.description, data.eval_name, metrics, stages, final, curves is not None, EVALS_PER_RUN
    )
    (partial / SUMMARY_FILE).write_text(text)
    save_config(config, partial / CONFIG_FILE)
    (partial / RESULT_FILE).write_text(json.dumps(metrics, indent=2, default=str) + "\n")  # last: marks a result
    return DemoResult(str(final), text, metrics, stages, str(final / CURVES_FILE) if curves else None)


def run_demo(config: DemoConfig) -> DemoResult:
    """Runs the demo (see the module docstring) and returns what it measured and where it wrote it."""
    config = config.resolved()
    final = Path(config.output_dir).expanduser().absolute()
    with output_transaction(final) as partial:
        return _run(config, partial, final)
