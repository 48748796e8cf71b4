"""The trainer builder: (label set, images, student spec, config) -> a ready :class:`~fkd_hf.FKDTrainer`.

``fkd-hf train``, the demo and every benchmark method build their trainer here, so they train the same way:

    >>> setup = build_trainer(FKDConfig(label_set="labels", student="resnet18", output_dir="out"))  # doctest: +SKIP
    >>> setup.trainer.train()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import datasets
from accelerate import PartialState
from transformers import PreTrainedModel, TrainerCallback, set_seed

from ..labels.attach import join_labels, open_label_set
from ..labels.format import LabelSet, LabelSetMetadata
from ..labels.images import ImageSource, load_images, locate_dataset
from ..models.students import create_student, student_data_config
from .config import FKDConfig
from .data import EvalDataset, FKDCropDataset
from .spread import spread_train_set
from .trainer import FKDTrainer

logger = logging.getLogger(__name__)

__all__ = ["FKDSetup", "build_trainer", "resolve_data_defaults", "eval_label_map"]

# (joined rows, label-set metadata, student data config, config) -> the training dataset
TrainSetFactory = Callable[[datasets.Dataset, LabelSetMetadata, dict, FKDConfig], object]


@dataclasses.dataclass
class FKDSetup:
    """What :func:`build_trainer` assembled."""

    trainer: FKDTrainer
    train_set: object
    eval_set: object | None
    labels: LabelSet
    images: ImageSource
    data_config: dict  # the student's preprocessing: input_size, mean, std, interpolation, crop_pct


def resolve_data_defaults(config: FKDConfig, metadata: LabelSetMetadata) -> None:
    """Fills the dataset, split, columns and revision that ``config`` leaves unset with the label set's (its
    dataset's absolute path when the path it was given by is not found from here)."""
    if config.dataset is None:
        config.dataset = locate_dataset(metadata.dataset, metadata.dataset_absolute)
        config.dataset_config = config.dataset_config or metadata.dataset_config
        config.dataset_revision = config.dataset_revision or metadata.dataset_revision
    config.train_split = config.train_split or metadata.dataset_split
    config.image_column = config.image_column or metadata.image_column
    config.label_column = config.label_column or metadata.label_column or "label"


def eval_label_map(
    source: ImageSource, class_names: list[str], dataset_class_names: list[str] | None = None
) -> list[int] | None:
    """Eval-split label -> label-set class index, matched by class name; None when the orders agree.

    ``dataset_class_names`` are the label set's classes as the dataset names them (its folder names, when the
    teacher's readable names replaced them in ``class_names``); they are matched first."""
    names = source.label_names
    class_names = list(dataset_class_names or class_names)
    if names is None or list(names) == class_names:
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


def _load_eval_images(config: FKDConfig) -> ImageSource | None:
    if not config.eval_split:
        return None
    evaluation = load_images(
        config.dataset, config.dataset_config, config.eval_split, config.dataset_revision,
        image_column=config.image_column, label_column=config.label_column,
    )  # fmt: skip
    if evaluation.label_column is None:
        raise ValueError(f"The eval split {config.eval_split!r} has no {config.label_column!r} column.")
    if config.max_eval_samples is not None:  # a random subset: splits are often sorted by class
        count = min(config.max_eval_samples, evaluation.num_rows)
        evaluation.dataset = evaluation.dataset.shuffle(seed=config.seed).select(range(count))
    return evaluation


def _student(config: FKDConfig, class_names: list[str]) -> tuple[PreTrainedModel, dict]:
    """The student, created after seeding, and its preprocessing written back into ``config``."""
    set_seed(config.seed)
    model = create_student(config.student, class_names, config.student_pretrained, config.student_kwargs)
    data = student_data_config(model, config.input_size, config.mean, config.std, config.interpolation, config.crop_pct)
    height, width = data["input_size"]
    config.input_size = height if height == width else config.input_size
    config.mean, config.std = list(data["mean"]), list(data["std"])
    config.interpolation, config.crop_pct = data["interpolation"], data["crop_pct"]
    return model, data


def fkd_train_set(rows: datasets.Dataset, metadata: LabelSetMetadata, data: dict, config: FKDConfig) -> FKDCropDataset:
    """FKD's multi-crop training set (the default of :func:`build_trainer`), in ``config.crop_layout``."""
    if config.crop_layout == "spread":
        return spread_train_set(rows, metadata, data, config)
    seed = config.data_seed if config.data_seed is not None else config.seed
    return FKDCropDataset(rows, metadata, config.num_crops, data["input_size"], config.train_interpolation, seed,
                          config.image_column)  # fmt: skip


def build_trainer(
    config: FKDConfig,
    *,
    labels: LabelSet | None = None,
    images: ImageSource | None = None,
    train_rows: Sequence[int] | None = None,
    eval_dataset=None,
    callbacks: Sequence[TrainerCallback] = (),
    train_set_factory: TrainSetFactory = fkd_train_set,
    trainer_class: type = FKDTrainer,
    **trainer_kwargs,
) -> FKDSetup:
    """Assembles the trainer of ``config``: label set, images, the check that they line up, student, datasets.

    ``labels`` and ``images`` default to ``config.label_set`` and the dataset it was made from (config fields
    override); ``train_rows`` keeps only those image rows (e.g. a hold-out split); ``eval_dataset`` replaces the
    evaluation set built from ``config.eval_split``. ``train_set_factory`` and ``trainer_class`` swap the training
    set and the trainer (the benchmarks' baselines); ``trainer_kwargs`` go to the trainer. Unset preprocessing
    fields of ``config`` are filled with the student's.
    """
    if labels is None:
        if not config.label_set:
            raise ValueError("Set label_set (a folder from `fkd-hf generate` or a Hub id).")
        labels = open_label_set(config.label_set, config.label_set_revision)
    if not config.student:
        raise ValueError("Set student: a timm architecture, timm/<name>, a transformers Hub id or a folder.")
    metadata = labels.metadata
    resolve_data_defaults(config, metadata)
    with PartialState().main_process_first():
        if images is None:
            images = load_images(config.dataset, config.dataset_config, config.train_split, config.dataset_revision,
                                 image_column=config.image_column, label_column=None)  # fmt: skip
        evaluation = _load_eval_images(config) if eval_dataset is None else None
    config.image_column = images.image_column
    rows = join_labels(images, labels, config.max_train_samples, config.key_check_rows)
    if train_rows is not None:
        skipped = set(metadata.skipped_rows)
        rows = rows.select([row for row in train_rows if row not in skipped])
        metadata = dataclasses.replace(metadata, skipped_rows=[])
    model, data = _student(config, list(metadata.class_names))
    train_set = train_set_factory(rows, metadata, data, config)
    if evaluation is not None:
        eval_dataset = EvalDataset(
            evaluation.dataset, data["input_size"], data["crop_pct"], data["interpolation"],
            evaluation.image_column, evaluation.label_column, eval_label_map(evaluation, list(metadata.class_names), metadata.dataset_class_names),
        )  # fmt: skip
    trainer = trainer_class(model, config, train_set, eval_dataset=eval_dataset, callbacks=list(callbacks),
                            **trainer_kwargs)  # fmt: skip
    return FKDSetup(trainer, train_set, eval_dataset, dataclasses.replace(labels, metadata=metadata), images, data)
