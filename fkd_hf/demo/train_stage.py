"""The demo's training stage: one student on one label set, assembled by :func:`fkd_hf.training.build_trainer`
from the :class:`~fkd_hf.training.FKDConfig` that :func:`fkd_config` makes, so it trains exactly as
``fkd-hf train`` with that config does; then scored on the demo's cached evaluation set."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from ..labels.format import load_label_set
from ..models.students import save_student
from ..training.builder import build_trainer
from ..training.config import FKDConfig
from ..training.progress import TrainingProgress
from .config import DemoConfig, device_type
from .data import DemoData
from .eval_set import CachedEval
from .summary import Stage

__all__ = ["EVALS_PER_RUN", "StudentRun", "fkd_config", "train_student", "training_stage"]

EVALS_PER_RUN = 6


@dataclasses.dataclass
class StudentRun:
    """What one student's training and evaluation measured."""

    name: str
    top1: float  # against the eval labels (agreement with the teacher for the sample photos)
    agreement: float | None
    log_history: list
    seconds: float
    train_seconds: float  # without the evaluations during training
    crops: int
    steps: int
    correct: list[bool] = dataclasses.field(default_factory=list, repr=False)  # per evaluation item
    final_metrics: dict = dataclasses.field(default_factory=dict, repr=False)  # of the final evaluation


class QuietProgress(TrainingProgress):
    """Training's labelled progress bars (plain lines off a terminal) without a printed dict per log line."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def fkd_config(config: DemoConfig, output_dir: Path, labels_dir: Path, data: DemoData, num_rows: int) -> FKDConfig:
    """The ``fkd-hf train`` options of one demo student trained on ``num_rows`` images of ``labels_dir``."""
    total_steps = math.ceil(config.fkd_epochs / config.num_crops * math.ceil(num_rows / config.batch_size))
    device = device_type()
    return FKDConfig(
        output_dir=str(output_dir),
        label_set=str(labels_dir),
        dataset=data.spec,
        dataset_config=config.dataset_config,
        train_split=config.train_split,
        eval_split=data.eval.split if data.eval is not None else None,
        student=config.student,
        input_size=config.input_size,
        num_crops=config.num_crops,
        fkd_epochs=config.fkd_epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=128,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        optim="adamw_torch",
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        eval_strategy="steps",
        eval_steps=max(1, total_steps // EVALS_PER_RUN),
        logging_steps=max(1, total_steps // 50),
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        dataloader_pin_memory=device == "cuda",
        bf16=config.precision == "bf16",
        use_cpu=device == "cpu",
        seed=config.seed,
    )


def train_student(
    name: str,
    config: DemoConfig,
    labels_dir: Path,
    data: DemoData,
    eval_set: CachedEval,
    teacher_preds: np.ndarray | None,
    work: Path,
    callbacks: Sequence[TrainerCallback] = (),
    save_to: Path | None = None,
) -> StudentRun:
    """Trains one student on ``labels_dir`` (FKD soft labels or hard labels), scores it on ``eval_set`` (and its
    agreement with ``teacher_preds``), and saves it to ``save_to`` if given."""
    labels = load_label_set(labels_dir)
    train_rows = data.train_rows()
    skipped = set(labels.metadata.skipped_rows)
    num_rows = sum(
        row not in skipped for row in (range(labels.metadata.num_rows) if train_rows is None else train_rows)
    )
    args = fkd_config(config, work / name, labels_dir, data, num_rows)
    setup = build_trainer(
        args, labels=labels, images=data.train, train_rows=train_rows, eval_dataset=eval_set, callbacks=callbacks
    )
    trainer = setup.trainer
    if not args.disable_tqdm:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(QuietProgress())
    start = time.perf_counter()
    result = trainer.train()
    output = trainer.predict(eval_set, metric_key_prefix="eval")
    seconds = time.perf_counter() - start
    if save_to is not None:
        save_student(trainer.accelerator.unwrap_model(trainer.model), save_to, setup.data_config)
    preds = np.asarray(output.predictions)[:, 0]
    history = [
        *trainer.state.log_history,
        {**output.metrics, "fkd_epoch": config.fkd_epochs, "step": trainer.state.global_step},
    ]
    eval_seconds = sum(log.get("eval_runtime", 0.0) for log in trainer.state.log_history)
    return StudentRun(
        name=name,
        top1=float(output.metrics["eval_top1"]),
        agreement=float(np.mean(preds == teacher_preds)) if teacher_preds is not None else None,
        log_history=history,
        seconds=seconds,
        train_seconds=max(result.metrics["train_runtime"] - eval_seconds, 1e-9),
        crops=round(config.fkd_epochs * len(setup.train_set)),
        steps=trainer.state.global_step,
        correct=(preds == eval_set.labels).tolist(),
        final_metrics=dict(output.metrics),
    )


def training_stage(name: str, run: StudentRun) -> Stage:
    """The summary's row of one training run."""
    return Stage(name, run.seconds, run.crops, "crops", f"{run.steps} steps, {run.crops:,} crops", run.train_seconds)
