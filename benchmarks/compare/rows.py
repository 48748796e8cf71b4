"""The comparison's rows: which FKD settings each FKD row sets (FKD as shipped: FKDConfig's defaults, read when
the run starts), and what each row replays per decoded photo."""

from __future__ import annotations

import dataclasses

from transformers import TrainingArguments

from fkd_hf.training import FKDConfig

from .settings import Settings

__all__ = ["FKD_VARIANTS", "fkd_settings", "shipped_fkd", "row_fields", "crops_per_image", "decodes_per_crop"]

# FKD's rows: method -> the FKDConfig fields it sets (every one on the main label set, through FKDTrainer).
# fkd_default sets none: FKD as `fkd-hf train` ships it, whatever FKDConfig's defaults are when the run starts.
FKD_VARIANTS = {
    "fkd": {"crop_layout": "grouped"},
    "fkd_spread": {"crop_layout": "spread"},
    "fkd_m1": {"crop_layout": "grouped", "num_crops": 1},
    "fkd_tail": {"crop_layout": "grouped", "single_crop_tail": True},
    "fkd_default": {},
}
# FKDConfig fields that are not FKD settings: the data, the student and its preprocessing, the length (the
# protocol gives max_steps) and the output folder
_NOT_FKD = {
    "label_set",
    "label_set_revision",
    "dataset",
    "dataset_config",
    "dataset_revision",
    "train_split",
    "eval_split",
    "image_column",
    "label_column",
    "max_train_samples",
    "max_eval_samples",
    "key_check_rows",
    "student",
    "student_pretrained",
    "student_kwargs",
    "input_size",
    "mean",
    "std",
    "interpolation",
    "crop_pct",
    "fkd_epochs",
    "overwrite_output_dir",
}


def _fkd_fields() -> list[dataclasses.Field]:
    """The FKD settings among FKDConfig's fields: those it adds to the Trainer's arguments (layout, m, loss, ...),
    less the data, the student and the length."""
    trainer_fields = {field.name for field in dataclasses.fields(TrainingArguments)}
    return [field for field in dataclasses.fields(FKDConfig) if field.name not in trainer_fields | _NOT_FKD]


def fkd_settings(config: FKDConfig) -> dict:
    """The FKD settings of ``config``."""
    return {field.name: getattr(config, field.name) for field in _fkd_fields()}


def shipped_fkd() -> dict:
    """FKD's settings as ``fkd-hf train`` ships them: FKDConfig's defaults, read now."""
    return {
        field.name: field.default_factory() if field.default is dataclasses.MISSING else field.default
        for field in _fkd_fields()
    }


def row_fields(name: str) -> dict:
    """The FKD settings a row sets (every shipped one for fkd_default); empty for the baselines."""
    return shipped_fkd() if name == "fkd_default" else FKD_VARIANTS.get(name, {})


def crops_per_image(settings: Settings, name: str) -> int:
    """m: FKD and the runs on FKD's crops replay ``num_crops`` per decoded image (FKD m = 1: one; FKD as shipped:
    FKDConfig's default); the others one."""
    m = row_fields(name).get("num_crops", settings.num_crops)
    return m if name in FKD_VARIANTS or name.endswith("fkd_crops") else 1


def decodes_per_crop(settings: Settings, name: str) -> float:
    """Photos decoded per training crop: 1 / m, except with the single-crop tail, whose last pass (m of the E
    epochs) decodes a photo for every crop."""
    m = crops_per_image(settings, name)
    if not row_fields(name).get("single_crop_tail"):
        return 1 / m
    passes = settings.epochs / m
    return ((passes - 1) + m) / settings.epochs
