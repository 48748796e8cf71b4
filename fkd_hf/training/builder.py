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
from ..labels.images import ImageSource, load_images
from ..models.projection import attach_projection_head
from ..models.students import create_student, student_data_config
from .config import FKDConfig
from .data import EvalDataset, FKDCropDataset
from .layouts import plan_layout
from .resolved import DataPlan, ResolvedRun, resolve_data
from .trainer import FKDTrainer

logger = logging.getLogger(__name__)

__all__ = ["FKDSetup", "build_trainer", "eval_label_map", "fkd_train_set", "load_labels"]

# (joined rows, label-set metadata, the run's resolved values, config) -> the training dataset
TrainSetFactory = Callable[[datasets.Dataset, LabelSetMetadata, ResolvedRun, FKDConfig], object]


@dataclasses.dataclass
class FKDSetup:
    """What :func:`build_trainer` assembled, and the values it resolved the config to."""

    trainer: FKDTrainer
    train_set: object
    eval_set: object | None
    labels: LabelSet
    images: ImageSource
    resolved: ResolvedRun

    @property
    def data_config(self) -> dict:
        """The student's preprocessing: input_size, mean, std, interpolation, crop_pct."""
        return self.resolved.data_config


def load_labels(config: FKDConfig) -> LabelSet:
    """The label set ``config.label_set`` names."""
    if not config.label_set:
        raise ValueError("Set label_set (a folder from `fkd-hf generate` or a Hub id).")
    return open_label_set(config.label_set, config.label_set_revision)


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


def _labelled_split(data: DataPlan, split: str) -> ImageSource:
    """The images of ``split`` with their label column (the one the plan names, if the split has it)."""
    return load_images(
        data.dataset,
        data.dataset_config,
        split,
        data.dataset_revision,
        image_column=data.image_column,
        label_column=data.label_column,
    )


def _load_eval_images(config: FKDConfig, data: DataPlan) -> ImageSource | None:
    if not data.eval_split:
        return None
    evaluation = _labelled_split(data, data.eval_split)
    if evaluation.label_column is None:
        raise ValueError(f"The eval split {data.eval_split!r} has no {data.label_column!r} column.")
    if config.max_eval_samples is not None:  # a random subset: splits are often sorted by class
        count = min(config.max_eval_samples, evaluation.num_rows)
        evaluation.dataset = evaluation.dataset.shuffle(seed=config.seed).select(range(count))
    return evaluation


def _student(config: FKDConfig, metadata: LabelSetMetadata) -> tuple[PreTrainedModel, dict]:
    """The student, created after seeding, and its preprocessing (``config``'s values where it sets them). Of a
    label-free set, its head is the projection to the teacher's D dimensions (``config.projection_head``)."""
    set_seed(config.seed)
    label_free = metadata.target.label_free
    outputs = [f"dim_{i}" for i in range(metadata.num_classes)] if label_free else list(metadata.class_names)
    model = create_student(config.student, outputs, config.student_pretrained, config.student_kwargs)
    if label_free:
        attach_projection_head(model, config.projection_head, config.projection_hidden_dim)
    data = student_data_config(model, config.input_size, config.mean, config.std, config.interpolation, config.crop_pct)
    return model, data


def _eval_set(source: ImageSource, run: ResolvedRun, label_map: list[int] | None) -> EvalDataset:
    """A labelled split at the student's evaluation transform."""
    return EvalDataset(
        source.dataset,
        run.input_size,
        run.crop_pct,
        run.interpolation,
        source.image_column,
        source.label_column,
        label_map,
    )


def _reference_set(config: FKDConfig, data: DataPlan, run: ResolvedRun) -> EvalDataset | None:
    """The labelled training split whose features the k-NN and the linear probe fit (None when it has no labels:
    then neither runs). Labels are read here only, to judge the backbone, never to train it."""
    with PartialState().main_process_first():
        source = _labelled_split(data, data.train_split)
    if source.label_column is None:
        logger.warning("The training split has no label column: no k-NN or linear-probe evaluation.")
        return None
    if config.max_train_samples is not None:
        source.dataset = source.dataset.select(range(min(config.max_train_samples, source.num_rows)))
    return _eval_set(source, run, None)


def fkd_train_set(
    rows: datasets.Dataset, metadata: LabelSetMetadata, run: ResolvedRun, config: FKDConfig
) -> FKDCropDataset:
    """FKD's multi-crop training set in the run's crop layout (the default of :func:`build_trainer`)."""
    layout = run.layout.create(config.train_batch_size, config.process_index, config.world_size)
    return FKDCropDataset(
        rows,
        metadata,
        config.num_crops,
        run.input_size,
        config.train_interpolation,
        run.data_seed,
        run.data.image_column,
        layout=layout,
    )


def build_trainer(
    config: FKDConfig,
    *,
    labels: LabelSet | None = None,
    images: ImageSource | None = None,
    data: DataPlan | None = None,
    train_rows: Sequence[int] | None = None,
    eval_dataset=None,
    callbacks: Sequence[TrainerCallback] = (),
    train_set_factory: TrainSetFactory = fkd_train_set,
    trainer_class: type = FKDTrainer,
    **trainer_kwargs,
) -> FKDSetup:
    """Assembles the trainer of ``config``: label set, images, the check that they line up, student, datasets.

    ``labels`` and ``images`` default to ``config.label_set`` and the dataset it was made from (config fields
    override; ``data``, from :func:`~fkd_hf.training.resolved.resolve_data`, when already resolved); ``train_rows``
    keeps only those image rows (e.g. a hold-out split); ``eval_dataset`` replaces the evaluation set built from the
    eval split. ``train_set_factory`` and ``trainer_class`` swap the training set and the trainer (the benchmarks'
    baselines); ``trainer_kwargs`` go to the trainer. ``config`` is not changed: the values it resolves to (images,
    the student's preprocessing, the crop layout) are in the returned setup's ``resolved``.
    """
    labels = load_labels(config) if labels is None else labels
    if not config.student:
        raise ValueError("Set student: a timm architecture, timm/<name>, a transformers Hub id or a folder.")
    metadata = labels.metadata
    data = resolve_data(config, metadata) if data is None else data
    with PartialState().main_process_first():
        if images is None:
            images = load_images(
                data.dataset,
                data.dataset_config,
                data.train_split,
                data.dataset_revision,
                image_column=data.image_column,
                label_column=None,
            )
        evaluation = _load_eval_images(config, data) if eval_dataset is None else None
    data = dataclasses.replace(data, image_column=images.image_column)
    rows = join_labels(images, labels, config.max_train_samples, config.key_check_rows)
    if train_rows is not None:
        skipped = set(metadata.skipped_rows)
        rows = rows.select([row for row in train_rows if row not in skipped])
        metadata = dataclasses.replace(metadata, skipped_rows=[])
    model, student = _student(config, metadata)
    seed = config.data_seed if config.data_seed is not None else config.seed
    run = ResolvedRun.of(data, student, plan_layout(config, student["input_size"]), seed)
    train_set = train_set_factory(rows, metadata, run, config)
    if evaluation is not None:
        label_free = metadata.target.label_free  # judged by k-NN and a linear probe, in the dataset's own classes
        eval_dataset = _eval_set(
            evaluation,
            run,
            None
            if label_free
            else eval_label_map(evaluation, list(metadata.class_names), metadata.dataset_class_names),
        )
        if label_free:
            trainer_kwargs.setdefault("reference_dataset", _reference_set(config, data, run))
    trainer = trainer_class(
        model, config, train_set, eval_dataset=eval_dataset, callbacks=list(callbacks), **trainer_kwargs
    )
    return FKDSetup(trainer, train_set, eval_dataset, dataclasses.replace(labels, metadata=metadata), images, run)
