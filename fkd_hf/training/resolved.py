"""What a training run resolves its ``FKDConfig`` to, kept apart from the config, which stays as given.

:func:`resolve_data` fills the images a config leaves unset with the label set's (:class:`DataPlan`);
:func:`~fkd_hf.training.build_trainer` adds the student's preprocessing and the crop layout plan and returns them as a
:class:`ResolvedRun`, which the student card and the saved ``train_config.yaml`` read.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ..labels.format import LabelSetMetadata
from ..labels.images import locate_dataset
from .layouts import LayoutPlan

__all__ = ["DataPlan", "ResolvedRun", "config_with", "resolve_data"]


@dataclasses.dataclass(frozen=True)
class DataPlan:
    """The images a run trains and evaluates on: ``FKDConfig``'s data fields with their defaults filled."""

    dataset: str
    dataset_config: str | None
    dataset_revision: str | None
    train_split: str
    image_column: str
    label_column: str
    eval_split: str = ""  # "" = no evaluation


def resolve_data(config, metadata: LabelSetMetadata, eval_split: str | None = None) -> DataPlan:
    """The images of ``config`` (an ``FKDConfig``): what it sets, else the dataset, config, revision, split and
    columns the label set was made from (its dataset's absolute path when the path it was given by is not found from
    here). ``eval_split`` defaults to ``config.eval_split`` (unset: no evaluation)."""
    if config.dataset is None:
        dataset = locate_dataset(metadata.dataset, metadata.dataset_absolute)
        dataset_config = config.dataset_config or metadata.dataset_config
        revision = config.dataset_revision or metadata.dataset_revision
    else:
        dataset, dataset_config, revision = config.dataset, config.dataset_config, config.dataset_revision
    return DataPlan(
        dataset,
        dataset_config,
        revision,
        config.train_split or metadata.dataset_split,
        config.image_column or metadata.image_column,
        config.label_column or metadata.label_column or "label",
        (config.eval_split or "") if eval_split is None else eval_split,
    )


@dataclasses.dataclass(frozen=True)
class ResolvedRun:
    """A run's resolved values: its images, the student's preprocessing, its crop layout and the seed of its
    crops (``data_seed``, else ``seed``)."""

    data: DataPlan
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    crop_pct: float
    layout: LayoutPlan
    data_seed: int

    @classmethod
    def of(cls, data: DataPlan, data_config: dict, layout: LayoutPlan, data_seed: int) -> ResolvedRun:
        """From the student's ``data_config`` (:func:`~fkd_hf.models.students.student_data_config`)."""
        size, mean, std = data_config["input_size"], data_config["mean"], data_config["std"]
        return cls(
            data,
            (int(size[0]), int(size[1])),
            tuple(mean),
            tuple(std),
            data_config["interpolation"],
            float(data_config["crop_pct"]),
            layout,
            int(data_seed),
        )

    @property
    def data_config(self) -> dict[str, Any]:
        """The student's preprocessing as :func:`~fkd_hf.models.students.student_data_config` gives it."""
        return {
            "input_size": self.input_size,
            "mean": self.mean,
            "std": self.std,
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }

    def config_values(self) -> dict[str, Any]:
        """The ``FKDConfig`` fields this run resolved, as the config takes them (``input_size`` only when square)."""
        values = {field.name: getattr(self.data, field.name) for field in dataclasses.fields(DataPlan)}
        values |= {
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
        }
        if self.input_size[0] == self.input_size[1]:
            values["input_size"] = self.input_size[0]
        return values | dict(self.layout.options)  # e.g. the spread lanes that spread_memory sized


def config_with(config, **values):
    """A shallow copy of ``config`` with ``values`` set; ``config`` is left as it is. The copy is not validated
    again: give values that are already valid (resolved ones, or a push turned off)."""
    changed = copy.copy(config)
    vars(changed).update(values)
    return changed
