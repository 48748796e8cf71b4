"""A student's model card (``README.md``), rendered from a :class:`~fkd_hf.hub.student_info.StudentInfo` and
``hub_cards/student_card.md`` with one ``ModelCard.from_template`` call.

The YAML names the library, licence, tags, the label set and datasets (Hub ids only), the initial weights and the
evaluation results as a model-index, so the Hub shows them: top-1/top-5 of an image classifier, or the k-NN and
linear-probe top-1 of a label-free student (self-supervised distillation: an ``image-feature-extraction`` backbone,
loaded without a classifier, its projection head beside the weights). The card never holds a token (it is built
from the info's fields only) nor a local absolute path (see :func:`portable_info`).

    >>> write_student_card("outputs/student")  # from its fkd_student.json and config.json  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..repo_ids import hub_repo_id, portable_spec
from .student_info import StudentInfo
from .templates import (
    FKD_CITATION,
    FKD_PAPER_URL,
    STUDENT_TEMPLATE,
    derived_license_text,
    hub_link,
    license_fields,
    templates_dir,
)

__all__ = ["CARD_TAGS", "SELF_SUPERVISED_TAGS", "portable_info", "student_card", "write_student_card"]

CARD_TAGS = ["fkd", "knowledge-distillation", "image-classification"]
SELF_SUPERVISED_TAGS = ["fkd", "knowledge-distillation", "self-supervised", "feature-extraction"]

# Fields that may hold a local path (a label-set folder, a teacher folder, imagefolder:PATH).
_PATH_FIELDS = ("label_set", "teacher", "dataset", "eval_dataset", "base_model")
# Fields of the FKD hyperparameter table, in order, with their display names.
_HYPERPARAMETERS = {
    "num_crops": "crops per image and pass (m)",
    "passes": "passes over the data",
    "fkd_epochs": "FKD epochs (passes x m)",
    "learning_rate": "learning rate",
    "lr_scheduler": "learning-rate schedule",
    "warmup": "warmup",
    "optimizer": "optimizer",
    "weight_decay": "weight decay",
    "per_device_batch_size": "images per device and step",
    "total_batch_size": "images per optimizer step",
    "crops_per_step": "crops per optimizer step",
    "crop_layout": "crop layout",
    "single_crop_tail": "single-crop tail (last pass)",
    "temperature": "loss temperature",
    "mixup_alpha": "Mixup alpha",
    "cutmix_alpha": "CutMix alpha",
    "input_size": "input size",
    "precision": "precision",
    "seed": "seed",
}
# Fields of a label-free student, at the head of its table.
_LABEL_FREE_HYPERPARAMETERS = {
    "target_type": "target type",
    "projection_head": "projection head",
    "projection_hidden_dim": "projection hidden width",
    "embedding_loss": "embedding loss",
}
# The task (pipeline tag and name), tags and model-index metrics ((StudentInfo field, metric type, metric name)) of
# an image classifier, and of a label-free student, judged by the features of its backbone.
_CLASSIFIER = dict(
    task=("image-classification", "Image Classification"),
    tags=CARD_TAGS,
    metrics=[("top1", "accuracy", "top-1 accuracy"), ("top5", "top_5_accuracy", "top-5 accuracy")],
)
_LABEL_FREE = dict(
    task=("image-feature-extraction", "Image Feature Extraction"),
    tags=SELF_SUPERVISED_TAGS,
    metrics=[("knn_top1", "knn_top1", "k-NN top-1 (k=20)"), ("probe_top1", "probe_top1", "linear-probe top-1")],
)


def _title(info: StudentInfo) -> str:
    if info.model_name:
        return info.model_name
    if info.model_id:
        return info.model_id.split("/")[-1]
    return f"{info.architecture or 'student'}-fkd"


def _hyperparameters(info: StudentInfo) -> dict[str, Any]:
    """The FKD hyperparameters that are set, as display name -> value, in a fixed order."""
    fields = {**_LABEL_FREE_HYPERPARAMETERS, **_HYPERPARAMETERS} if info.label_free else _HYPERPARAMETERS
    table = {name: getattr(info, key) for key, name in fields.items() if getattr(info, key) is not None}
    table.update(info.crop_layout_options)
    table.update(info.extra_hyperparameters)
    return table


def _eval_config(info: StudentInfo) -> str | None:
    """The eval dataset's config: its own, or the training dataset's when both are the same dataset."""
    same = info.eval_dataset in (None, info.dataset)
    return info.eval_dataset_config or (info.dataset_config if same else None)


def _eval_dataset(info: StudentInfo) -> dict[str, Any]:
    """The model-index dataset: the evaluation dataset when it is a Hub repo, else the Hub dataset the label set
    records as its source (a local copy of it was evaluated), else the local folder by its name."""
    evaluated = info.eval_dataset or info.dataset
    same = info.eval_dataset in (None, info.dataset)
    repo = hub_repo_id(evaluated)
    if repo is not None:
        return dict(
            dataset_type=repo,
            dataset_name=repo,
            dataset_config=_eval_config(info),
            dataset_revision=info.dataset_revision if same else None,
        )
    source = hub_repo_id(info.dataset)
    if source is not None:
        return dict(
            dataset_type=source,
            dataset_name=source,
            dataset_config=info.dataset_config,
            dataset_revision=info.dataset_revision,
        )
    spec = portable_spec(evaluated)
    kind = "parquet" if str(spec).startswith("parquet:") else "imagefolder"
    return dict(dataset_type=kind, dataset_name=Path(str(spec).split(":", 1)[-1]).name or str(spec))


def _eval_results(info: StudentInfo) -> list[EvalResult]:
    if (info.eval_dataset or info.dataset) is None:
        return []
    kind = _LABEL_FREE if info.label_free else _CLASSIFIER
    task_type, task_name = kind["task"]
    common = dict(task_type=task_type, task_name=task_name, dataset_split=info.eval_split, **_eval_dataset(info))
    return [
        EvalResult(**common, metric_type=metric, metric_name=name, metric_value=round(float(getattr(info, field)), 6))
        for field, metric, name in kind["metrics"]
        if getattr(info, field) is not None
    ]


def _card_data(info: StudentInfo) -> ModelCardData:
    """The card's YAML metadata (a model-index from the evaluation results)."""
    linked = [hub_repo_id(info.label_set), hub_repo_id(info.dataset), hub_repo_id(info.eval_dataset)]
    datasets = list(dict.fromkeys(repo for repo in linked if repo))
    results = _eval_results(info)
    license = info.license or "other"
    kind = _LABEL_FREE if info.label_free else _CLASSIFIER
    return ModelCardData(
        license=license,
        **license_fields(license),
        library_name=info.library_name,
        pipeline_tag=kind["task"][0],
        tags=list(dict.fromkeys([*kind["tags"], info.library_name, *info.tags])),
        datasets=datasets or None,
        base_model=hub_repo_id(info.base_model),
        metrics=["accuracy"] if results else None,
        eval_results=results or None,
        model_name=_title(info) if results else None,
    )


def _template_values(info: StudentInfo) -> dict[str, Any]:
    """Every field of ``info`` plus what the template derives from them."""
    label_repo = hub_repo_id(info.label_set)
    return {
        **info.to_json_dict(),
        "title": _title(info),
        "repo_id": info.model_id or "<user>/<model>",
        "hyperparameter_table": _hyperparameters(info),
        "label_set_repo": label_repo,
        "label_set_link": hub_link(label_repo, "dataset"),
        "teacher_link": hub_link(hub_repo_id(info.teacher)),
        "dataset_link": hub_link(hub_repo_id(info.dataset), "dataset"),
        "eval_dataset_name": info.eval_dataset or info.dataset,
        "license_text": (
            derived_license_text("These weights", info.teacher, info.dataset)
            if info.license in (None, "other")
            else None
        ),
        "eval_config": _eval_config(info),
        "top1_percent": f"{100 * info.top1:.2f}" if info.top1 is not None else None,
        "top5_percent": f"{100 * info.top5:.2f}" if info.top5 is not None else None,
        "label_free": info.label_free,
        "knn_percent": f"{100 * info.knn_top1:.2f}" if info.knn_top1 is not None else None,
        "probe_percent": f"{100 * info.probe_top1:.2f}" if info.probe_top1 is not None else None,
        "citation": FKD_CITATION,
        "paper_url": FKD_PAPER_URL,
    }


def portable_info(info: StudentInfo) -> StudentInfo:
    """A copy of ``info`` whose local paths are shown as :func:`~fkd_hf.repo_ids.portable_spec` gives them (the
    ``fkd_student.json`` a push uploads; the local file keeps the paths)."""
    return dataclasses.replace(info, **{name: portable_spec(getattr(info, name)) for name in _PATH_FIELDS})


def student_card(info: StudentInfo) -> ModelCard:
    """The student's model card (no local absolute path: it is rendered from :func:`portable_info`)."""
    info = portable_info(info)
    template = str(templates_dir() / STUDENT_TEMPLATE)
    return ModelCard.from_template(_card_data(info), template_path=template, **_template_values(info))


def write_student_card(student_dir: str | os.PathLike, info: StudentInfo | None = None) -> Path:
    """Writes ``fkd_student.json`` and ``README.md`` into ``student_dir``; returns the README path.

    ``info`` defaults to the folder's ``fkd_student.json``; fields it lacks come from the folder's ``config.json``.
    """
    student_dir = Path(student_dir)
    info = StudentInfo.from_folder(student_dir) if info is None else info.update_from_folder(student_dir)
    info.save(student_dir)
    path = student_dir / "README.md"
    student_card(info).save(path)
    return path
