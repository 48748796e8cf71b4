"""FKD training from a config: label set + images -> student -> FKDTrainer -> evaluation -> dual-loadable save.

    >>> train(FKDConfig(label_set="labels", student="resnet18", eval_split="validation",
    ...                 output_dir="outputs/student"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from accelerate import PartialState
from transformers import set_seed
from transformers.trainer_utils import get_last_checkpoint

from .arguments import save_config
from .image_data import ImageSource, load_images
from .join import join_labels, open_label_set
from .loader import EvalDataset, FKDCropDataset
from .cards import StudentCardCallback
from .hub import push_student
from .students import create_student, save_student, student_data_config
from .trainer import FKDTrainer
from .training_config import FKDConfig

CONFIG_FILE = "train_config.yaml"

logger = logging.getLogger(__name__)

__all__ = ["CONFIG_FILE", "train"]


def _label_map(source: ImageSource, class_names: list[str]) -> list[int] | None:
    """Eval-split label -> label-set class index, matched by class name; None when the orders agree."""
    names = source.label_names
    if names is None or list(names) == list(class_names):
        return None
    if all(name in class_names for name in names):
        return [class_names.index(name) for name in names]
    if len(names) == len(class_names):
        logger.warning("The eval split's class names differ from the label set's; assuming the same class order.")
        return None
    raise ValueError(
        f"The eval split {source.split!r} has {len(names)} classes ({names[:3]}...) that do not match the label "
        f"set's {len(class_names)} ({class_names[:3]}...): evaluate on a split of the labelled dataset."
    )


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
    labels = open_label_set(config.label_set, config.label_set_revision)
    meta = labels.metadata
    if config.dataset is None:
        config.dataset = meta.dataset
        config.dataset_config = config.dataset_config or meta.dataset_config
        config.dataset_revision = config.dataset_revision or meta.dataset_revision
    config.train_split = config.train_split or meta.dataset_split
    config.image_column = config.image_column or meta.image_column
    config.label_column = config.label_column or meta.label_column or "label"

    with PartialState().main_process_first():
        images = load_images(
            config.dataset, config.dataset_config, config.train_split, config.dataset_revision,
            image_column=config.image_column, label_column=None,
        )
        evaluation = None
        if config.eval_split:
            evaluation = load_images(
                config.dataset, config.dataset_config, config.eval_split, config.dataset_revision,
                image_column=config.image_column, label_column=config.label_column,
            )
            if evaluation.label_column is None:
                raise ValueError(f"The eval split {config.eval_split!r} has no {config.label_column!r} column.")
            if config.max_eval_samples is not None:  # a random subset: splits are often sorted by class
                count = min(config.max_eval_samples, evaluation.num_rows)
                evaluation.dataset = evaluation.dataset.shuffle(seed=config.seed).select(range(count))
    rows = join_labels(images, labels, config.max_train_samples, config.key_check_rows)

    set_seed(config.seed)
    model = create_student(config.student, meta.class_names, config.student_pretrained, config.student_kwargs)
    data = student_data_config(model, config.input_size, config.mean, config.std, config.interpolation, config.crop_pct)
    height, width = data["input_size"]
    config.input_size = height if height == width else config.input_size
    config.mean, config.std = list(data["mean"]), list(data["std"])
    config.interpolation, config.crop_pct = data["interpolation"], data["crop_pct"]

    seed = config.data_seed if config.data_seed is not None else config.seed
    train_set = FKDCropDataset(
        rows, meta, config.num_crops, data["input_size"], config.train_interpolation, seed, images.image_column
    )
    eval_set = None
    if evaluation is not None:
        eval_set = EvalDataset(
            evaluation.dataset, data["input_size"], data["crop_pct"], data["interpolation"],
            evaluation.image_column, evaluation.label_column, _label_map(evaluation, meta.class_names),
        )
    # The Trainer's own push would upload its checkpoint format and training_args.bin: the finished student is
    # pushed once at the end instead, in the format timm and transformers both load, with its card.
    push_at_end, config.push_to_hub = config.push_to_hub, False
    card = StudentCardCallback()
    trainer = FKDTrainer(model, config, train_set, eval_dataset=eval_set, callbacks=[card])
    if trainer.is_world_process_zero():
        save_config(config, Path(config.output_dir) / CONFIG_FILE)
    steps_per_pass = math.ceil(len(train_set) / (config.per_device_train_batch_size * config.world_size))
    steps_per_pass = math.ceil(steps_per_pass / config.gradient_accumulation_steps)
    passes = config.max_steps / steps_per_pass if config.max_steps > 0 else config.num_train_epochs
    trainer.accelerator.print(
        f"FKD: {len(train_set)} images x {config.num_crops} of {meta.num_crops} stored crops ({meta.kind}, "
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
        save_student(trainer.accelerator.unwrap_model(trainer.model), config.output_dir, data)
        card.write(config.output_dir)
        if push_at_end:
            repo_id = config.hub_model_id or Path(config.output_dir).name
            url = push_student(config.output_dir, repo_id, private=config.hub_private_repo, token=config.hub_token,
                               revision=config.hub_revision)
            trainer.accelerator.print(f"Student pushed to {url}")
    return metrics
