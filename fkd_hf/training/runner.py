"""FKD training from a config: label set + images -> student -> FKDTrainer -> evaluation -> dual-loadable save.

    >>> train(FKDConfig(label_set="labels", student="resnet18", eval_split="validation",
    ...                 output_dir="outputs/student"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from transformers.trainer_utils import get_last_checkpoint

from ..cli.arguments import save_config
from ..hub.cards import StudentCardCallback
from ..hub.push import push_student
from ..models.students import save_student
from .builder import build_trainer
from .config import FKDConfig

CONFIG_FILE = "train_config.yaml"

logger = logging.getLogger(__name__)

__all__ = ["CONFIG_FILE", "train"]


def _resume_path(config: FKDConfig) -> str | None:
    resume = config.resume_from_checkpoint
    if resume not in ("last", "true", "True"):
        return resume
    last = get_last_checkpoint(config.output_dir) if Path(config.output_dir).is_dir() else None
    if last is None:
        raise FileNotFoundError(f"resume_from_checkpoint={resume!r}, but {config.output_dir} has no checkpoint-*.")
    return last


def train(config: FKDConfig) -> dict[str, float]:
    """Trains ``config.student`` on ``config.label_set``; returns the final metrics (train and, if any, eval).

    The dataset, split, columns and revision default to the ones the label set was made from. The resolved config
    is written to ``output_dir/train_config.yaml`` (``--config`` reads it back), the student to ``output_dir``.
    """
    if not config.label_set or not config.student:
        raise ValueError("Set both label_set (a folder from `fkd-hf generate` or a Hub id) and student.")
    # The Trainer's own push would upload its checkpoint format and training_args.bin: the finished student is
    # pushed once at the end instead, in the format timm and transformers both load, with its card.
    push_at_end, config.push_to_hub = config.push_to_hub, False
    card = StudentCardCallback()
    setup = build_trainer(config, callbacks=[card])
    trainer, train_set, eval_set, meta = setup.trainer, setup.train_set, setup.eval_set, setup.labels.metadata
    if trainer.is_world_process_zero():
        save_config(config, Path(config.output_dir) / CONFIG_FILE)
    steps_per_pass = math.ceil(len(train_set) / (config.per_device_train_batch_size * config.world_size))
    steps_per_pass = math.ceil(steps_per_pass / config.gradient_accumulation_steps)
    passes = config.max_steps / steps_per_pass if config.max_steps > 0 else config.num_train_epochs
    trainer.accelerator.print(
        f"FKD: {len(train_set)} images x {config.num_crops} of {meta.stored_crops} stored crops ({meta.kind}, "
        f"k={meta.k}); {config.crops_per_step} crops per optimizer step; {passes:.4g} passes = "
        f"{passes * config.num_crops:.4g} FKD epochs."
    )

    result = trainer.train(resume_from_checkpoint=_resume_path(config))
    metrics = dict(result.metrics)
    metrics["train_crops_per_second"] = round(metrics["train_samples_per_second"] * config.num_crops, 3)
    trainer.log_metrics("train", metrics)
    if eval_set is not None:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    if trainer.is_world_process_zero():
        trainer.save_metrics("all", metrics)
        save_student(trainer.accelerator.unwrap_model(trainer.model), config.output_dir, setup.data_config)
        card.write(config.output_dir)
        if push_at_end:
            repo_id = config.hub_model_id or Path(config.output_dir).name
            url = push_student(config.output_dir, repo_id, private=config.hub_private_repo, token=config.hub_token,
                               revision=config.hub_revision)
            trainer.accelerator.print(f"Student pushed to {url}")
    return metrics
