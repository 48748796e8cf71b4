"""FKD training from a config: label set + images -> student -> FKDTrainer -> evaluation -> dual-loadable save.

    >>> train(FKDConfig(label_set="labels", student="resnet18", output_dir="outputs/student"))  # doctest: +SKIP

``train`` writes only into a new or empty ``output_dir``, an earlier run's, or the one whose checkpoint it resumes
(``overwrite_output_dir`` lifts this), and never writes the Hub token to a file.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import datasets

from ..config_io import save_config
from ..hub.push import push_student
from ..models.projection import save_backbone_and_head
from ..models.students import save_student
from .builder import FKDSetup, build_trainer, load_labels
from .card_callback import StudentCardCallback
from .checkpoints import is_complete, last_complete_checkpoint
from .config import FKDConfig
from .resolved import DataPlan, config_with, resolve_data

CONFIG_FILE = "train_config.yaml"
VALIDATION = "validation"
_VALIDATION_DIRS = ("validation", "val", "valid")  # the folder names of a validation split that load_images reads

logger = logging.getLogger(__name__)

__all__ = ["CONFIG_FILE", "check_output_dir", "train"]


def _resume_path(config: FKDConfig) -> str | None:
    """The checkpoint to resume: ``last`` is the newest complete one; a named one must be complete."""
    resume = config.resume_from_checkpoint
    if resume in ("last", "true", "True"):
        last = last_complete_checkpoint(config.output_dir)
        if last is None:
            raise FileNotFoundError(
                f"--resume_from_checkpoint {resume}, but {config.output_dir} has no complete "
                "checkpoint-* folder: rerun without it to start afresh."
            )
        return last
    if resume and Path(resume).is_dir() and not is_complete(resume):
        raise FileNotFoundError(
            f"--resume_from_checkpoint {resume} is an incomplete checkpoint (no readable "
            "trainer_state.json): give a complete one, or `last`."
        )
    return resume


def check_output_dir(config: FKDConfig, resume: str | None = None) -> None:
    """Refuses an ``output_dir`` with files in it, unless it holds an fkd-hf training run (its ``train_config.yaml``),
    ``resume`` is one of its checkpoints, or ``config.overwrite_output_dir`` is set."""
    folder = Path(config.output_dir)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"--output_dir {folder} is a file: give a folder for the student.")
    if config.overwrite_output_dir or not folder.is_dir() or (folder / CONFIG_FILE).is_file():
        return
    if resume is not None and Path(resume).resolve().parent == folder.resolve():
        return
    entries = sorted(path.name + "/" * path.is_dir() for path in folder.iterdir())
    if entries:
        shown = ", ".join(entries[:6]) + (f", ... ({len(entries)} entries)" if len(entries) > 6 else "")
        raise FileExistsError(
            f"--output_dir {folder} is not empty and holds no fkd-hf training run ({shown}): choose a new or empty "
            "folder, or pass --overwrite_output_dir to write into it (files of the same names are replaced)."
        )


def _has_validation_split(data: DataPlan | FKDConfig) -> bool:
    spec = data.dataset
    if not spec:
        return False
    folder = Path(spec.removeprefix("imagefolder:")).expanduser()
    if spec.startswith("imagefolder:") or folder.is_dir():
        return any((folder / name).is_dir() for name in _VALIDATION_DIRS)
    if spec.startswith("parquet:") or spec.endswith(".parquet"):
        return False
    try:
        return VALIDATION in datasets.get_dataset_split_names(spec, data.dataset_config, revision=data.dataset_revision)
    except Exception as err:  # offline and not cached, or no such config: train without evaluation and say so
        logger.warning("Cannot list the splits of %s (%s): no evaluation.", spec, " ".join(str(err).split()))
        return False


def resolve_eval_split(config: FKDConfig, data: DataPlan | None = None) -> tuple[str, str]:
    """What the start-up line says about evaluation, and the split to evaluate on: ``config.eval_split``, else the
    validation split of ``data`` (default: the config's dataset) if it has one, else ``""`` (none)."""
    data = config if data is None else data
    if config.eval_split is None:
        found = data.train_split != VALIDATION and _has_validation_split(data)
        if not found:
            return "no evaluation: the dataset has no validation split (--eval_split NAME names one)", ""
        return f"evaluating on split {VALIDATION!r} (--eval_split none to skip)", VALIDATION
    if config.eval_split:
        return f"evaluating on split {config.eval_split!r}", config.eval_split
    return "no evaluation (--eval_split none)", ""


def _start_line(config: FKDConfig, setup: FKDSetup, evaluation: str) -> str:
    meta, images = setup.labels.metadata, len(setup.train_set)
    steps_per_pass = math.ceil(images / (config.per_device_train_batch_size * config.world_size))
    steps_per_pass = math.ceil(steps_per_pass / config.gradient_accumulation_steps)
    passes = config.max_steps / steps_per_pass if config.max_steps > 0 else config.num_train_epochs
    processes = f"{config.world_size} process{'es' if config.world_size > 1 else ''}"
    layout = setup.resolved.layout
    tail = " (the last pass: one crop per photo per FKD epoch)" if layout.single_crop_tail else ""
    return (
        f"FKD on {processes}: {images} images x {config.num_crops} of {meta.stored_crops} stored crops ({meta.kind}, "
        f"k={meta.k}), {layout.name} crops; {config.crops_per_step} crops per optimizer step; {passes:.4g} "
        f"passes = {passes * config.num_crops:.4g} FKD epochs{tail}; {evaluation}."
    )


def _fit(setup: FKDSetup, config: FKDConfig, resume: str | None) -> dict[str, float]:
    trainer = setup.trainer
    metrics = dict(trainer.train(resume_from_checkpoint=resume).metrics)
    metrics["train_crops_per_second"] = round(metrics["train_samples_per_second"] * config.num_crops, 3)
    trainer.log_metrics("train", metrics)
    if setup.eval_set is not None:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    return metrics


def train(config: FKDConfig) -> dict[str, float]:
    """Trains ``config.student`` on ``config.label_set``; returns the final metrics (train and, if any, eval).

    The dataset, split, columns and revision default to the ones the label set was made from, evaluation to the
    dataset's validation split. The resolved config is written to ``output_dir/train_config.yaml`` (``--config``
    reads it back), the student to ``output_dir``. ``hub_token`` is used for the final push only: the Trainer runs
    on a copy of ``config`` without it, so no checkpoint's ``training_args.bin`` holds it.
    """
    resume = _resume_path(config)
    check_output_dir(config, resume)
    labels = load_labels(config)
    data = resolve_data(config, labels.metadata)
    evaluation, eval_split = resolve_eval_split(config, data)
    # The Trainer's own push would upload its checkpoint format and training_args.bin: the finished student is
    # pushed once at the end instead, in the format timm and transformers both load, with its card.
    trainer_config = config_with(config, push_to_hub=False, hub_token=None)
    setup = build_trainer(trainer_config, labels=labels, data=dataclasses.replace(data, eval_split=eval_split))
    trainer = setup.trainer
    card = StudentCardCallback(run=setup.resolved)
    trainer.add_callback(card)
    if trainer.is_world_process_zero():
        resolved_config = config_with(trainer_config, **setup.resolved.config_values())
        save_config(resolved_config, Path(config.output_dir) / CONFIG_FILE)
    trainer.accelerator.print(_start_line(config, setup, evaluation))
    metrics = _fit(setup, config, resume)
    if trainer.is_world_process_zero():
        trainer.save_metrics("all", metrics)
        student = trainer.accelerator.unwrap_model(trainer.model)
        if setup.labels.metadata.target.label_free:  # the backbone as an ordinary model, its projection head beside
            save_backbone_and_head(student, config.output_dir, setup.data_config)
        else:
            save_student(student, config.output_dir, setup.data_config)
        card.write(config.output_dir)
        if config.push_to_hub:
            repo_id = config.hub_model_id or Path(config.output_dir).name
            url = push_student(
                config.output_dir,
                repo_id,
                private=config.hub_private_repo,
                token=config.hub_token,
                revision=config.hub_revision,
            )
            trainer.accelerator.print(f"Student pushed to {url}")
    return metrics
