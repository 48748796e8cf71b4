"""What a student's model card says, kept as ``fkd_student.json`` beside its weights.

:class:`StudentInfo` is a plain dataclass, filled from a label set's metadata, a student's ``config.json``, a
Trainer config (``TrainingArguments`` or ``FKDConfig``) and evaluation metrics, or by hand; the file is its fields as
JSON (schema version 1; fields added since are optional, so older files still load). :mod:`fkd_hf.hub.model_card`
renders the card from it. A student of a label-free set (an encoder teacher's targets, ``target_type``
``distribution`` or ``embedding``) is a backbone with a projection head, judged by k-NN and linear-probe top-1.

    >>> info = StudentInfo.from_folder("outputs/student")  # doctest: +SKIP
    >>> info.license = "apache-2.0"; info.save("outputs/student")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..labels.format import LabelSetMetadata
from ..labels.targets import target_type as registered_target_type
from ..labels.targets.embedding import Embedding
from ..repo_ids import hub_repo_id
from ..version import __version__

__all__ = ["STUDENT_FILE", "STUDENT_SCHEMA_VERSION", "StudentInfo"]

STUDENT_FILE = "fkd_student.json"
STUDENT_SCHEMA_VERSION = 1

_TOP1_KEYS = ("top1", "top_1", "acc1", "top1_accuracy", "accuracy")
_TOP5_KEYS = ("top5", "top_5", "acc5", "top5_accuracy")
_KNN_KEYS = ("knn_top1",)
_PROBE_KEYS = ("probe_top1", "linear_probe_top1")


def _metric(metrics: Mapping[str, float], names: tuple[str, ...], prefix: str = "eval_") -> float | None:
    for name in names:
        value = metrics.get(f"{prefix}{name}", metrics.get(name))
        if value is not None:
            value = float(value)
            return value / 100 if value > 1 else value  # a percentage
    return None


def _enum_value(value) -> str | None:
    """``"cosine"`` from ``SchedulerType.COSINE`` or ``"cosine"``; None for None."""
    return None if value is None else str(getattr(value, "value", value))


def timm_architecture(pretrained_cfg: Mapping[str, Any], architecture: str | None = None) -> str | None:
    """``resnet18.a1_in1k`` when ``pretrained_cfg`` names the weights' tag, else the bare architecture (a student
    trained from scratch has no tag)."""
    architecture = architecture or pretrained_cfg.get("architecture")
    tag = pretrained_cfg.get("tag")
    return f"{architecture}.{tag}" if architecture and tag else architecture


@dataclasses.dataclass
class StudentInfo:
    """A student's card information (``fkd_student.json``). Accuracies are fractions in [0, 1]; local paths (label
    set, dataset) are kept as given, only Hub ids become ``datasets:`` links in the card. A student of a label-free set
    (:attr:`label_free`) has no classes: ``num_classes`` and ``class_names`` stay empty, ``embedding_dim`` is D."""

    # User fields.
    model_id: str | None = None  # Hub repo id, e.g. "user/resnet18-fkd" (set by push_student)
    model_name: str | None = None  # pretty name for the card title and model-index
    license: str | None = None  # e.g. "apache-2.0"; "other" in the card when unset
    tags: list[str] = dataclasses.field(default_factory=list)  # extra tags
    # The student.
    architecture: str | None = None  # timm: resnet18 (from scratch) or resnet18.a1_in1k; transformers: model type
    library_name: str = "timm"  # timm or transformers
    base_model: str | None = None  # Hub id of the weights training started from, if any
    num_classes: int | None = None
    class_names: list[str] = dataclasses.field(default_factory=list)
    # Where the soft labels and images came from.
    label_set: str | None = None  # label-set Hub id or folder
    label_set_revision: str | None = None
    teacher: str | None = None
    teacher_revision: str | None = None
    dataset: str | None = None  # training images: Hub id or local spec
    dataset_config: str | None = None
    dataset_split: str | None = None
    dataset_revision: str | None = None
    label_kind: str | None = None  # soft-label kind of the label set
    label_k: int | None = None  # classes stored per crop
    label_temperature: float | None = None  # teacher softmax temperature
    stored_crops: int | None = None  # R: crops stored per image
    target_type: str | None = None  # the label set's (fkd_hf.labels.targets); None: not recorded (older files)
    target_description: str | None = None  # what each stored crop holds, as the label set's target type says
    embedding_dim: int | None = None  # D: the teacher embedding width a label-free student's projection head outputs
    # FKD training hyperparameters.
    num_crops: int | None = None  # m: crops replayed per image and pass
    passes: float | None = None  # Trainer epochs (passes over the data)
    fkd_epochs: float | None = None  # passes x num_crops
    learning_rate: float | None = None
    lr_scheduler: str | None = None
    warmup: float | None = None  # warmup ratio (< 1) or steps
    optimizer: str | None = None
    weight_decay: float | None = None
    per_device_batch_size: int | None = None  # images
    total_batch_size: int | None = None  # images per optimizer step, all devices and accumulation
    crops_per_step: int | None = None
    crop_layout: str | None = None  # where a photo's crops go: grouped (FKD's loader) or spread
    crop_layout_options: dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. {"spread_lanes": 8}
    single_crop_tail: bool | None = None  # the last pass replayed as num_crops passes of one crop per photo
    temperature: float | None = None  # loss temperature
    projection_head: str | None = None  # label-free sets: linear or mlp
    projection_hidden_dim: int | None = None  # the mlp head's hidden width
    embedding_loss: str | None = None  # embedding targets: cosine or smooth_l1
    mixup_alpha: float | None = None
    cutmix_alpha: float | None = None
    input_size: list[int] | None = None
    precision: str | None = None
    seed: int | None = None
    extra_hyperparameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Evaluation.
    eval_dataset: str | None = None  # default: dataset
    eval_dataset_config: str | None = None
    eval_split: str | None = None
    top1: float | None = None
    top5: float | None = None
    knn_top1: float | None = None  # label-free students: DINO's weighted k-NN (cosine, k = 20) on backbone features
    probe_top1: float | None = None  # label-free students: a linear probe on the frozen backbone's features
    eval_loss: float | None = None
    evaluation_notes: str | None = None  # what else was measured, in words (e.g. agreement with the teacher)
    # Provenance.
    fkd_hf_version: str = __version__
    schema_version: int = STUDENT_SCHEMA_VERSION

    @property
    def label_free(self) -> bool:
        """Whether the student learned a label-free set's targets (an encoder teacher's; no class labels used)."""
        return self.target_type is not None and registered_target_type(self.target_type).label_free

    # -- fkd_student.json --

    def to_json_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> StudentInfo:
        """Reads any schema version up to this one; unknown keys are ignored."""
        if data.get("schema_version", STUDENT_SCHEMA_VERSION) > STUDENT_SCHEMA_VERSION:
            raise ValueError(
                f"This {STUDENT_FILE} uses schema version {data['schema_version']}, newer than this fkd_hf reads "
                f"({STUDENT_SCHEMA_VERSION}): upgrade fkd_hf (pip install -U fkd-hf)."
            )
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), indent=2) + "\n"

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes ``fkd_student.json`` into ``directory`` atomically; returns its path."""
        path = Path(directory) / STUDENT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{STUDENT_FILE}.{os.getpid()}.tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> StudentInfo:
        return cls.from_json_dict(json.loads((Path(directory) / STUDENT_FILE).read_text()))

    @classmethod
    def from_folder(cls, directory: str | os.PathLike) -> StudentInfo:
        """The folder's ``fkd_student.json`` (empty without one), with the fields it lacks from ``config.json``."""
        directory = Path(directory)
        info = cls.load(directory) if (directory / STUDENT_FILE).is_file() else cls()
        return info.update_from_folder(directory)

    # -- filling --

    def update_from_folder(self, directory: str | os.PathLike) -> StudentInfo:
        """Fills the fields still unset from the folder's ``config.json``, when it has one."""
        config_path = Path(directory) / "config.json"
        if config_path.is_file():
            self.update_from_config(json.loads(config_path.read_text()))
        return self

    def update_from_label_set(
        self, metadata: LabelSetMetadata, source: str | None = None, revision: str | None = None
    ) -> StudentInfo:
        """Copies the teacher, dataset and soft-label settings of a label set (and where it lives)."""
        if source is not None:
            self.label_set, self.label_set_revision = str(source), revision
        self.teacher, self.teacher_revision = metadata.teacher, metadata.teacher_revision
        self.dataset, self.dataset_config = metadata.dataset, metadata.dataset_config
        self.dataset_split, self.dataset_revision = metadata.dataset_split, metadata.dataset_revision
        self.label_kind, self.label_k, self.label_temperature = metadata.kind, metadata.k, metadata.temperature
        self.stored_crops = metadata.stored_crops
        self.target_type, self.target_description = metadata.target_type, metadata.target.describe(metadata)
        if metadata.target.label_free:  # num_classes is the teacher's embedding width; the student has no classes
            self.embedding_dim, self.num_classes, self.class_names = metadata.num_classes, None, []
        else:
            self.num_classes = self.num_classes or metadata.num_classes
            self.class_names = self.class_names or list(metadata.class_names)
        self._drop_settings_that_do_not_apply()
        return self

    def _drop_settings_that_do_not_apply(self) -> None:
        """Once the label set is known: the projection head's settings apply to a label-free student only, the
        embedding loss to embedding targets only (whichever of the label set and the arguments came first)."""
        if self.target_type is None:
            return
        if not self.label_free:
            self.projection_head = self.projection_hidden_dim = None
        if self.target_type != Embedding.name:
            self.embedding_loss = None

    def update_from_config(self, config: Mapping[str, Any]) -> StudentInfo:
        """Fills the fields still unset from a student's ``config.json`` (timm ``save_for_hf`` or transformers); a
        label-free student's backbone has no classes to take from it."""
        if "architecture" in config:  # timm
            architecture = timm_architecture(config.get("pretrained_cfg") or {}, config["architecture"])
            self.architecture = self.architecture or architecture
            self.library_name = "timm"
            names = config.get("label_names") or []
            num_classes = config.get("num_classes") or len(names) or None
        else:
            architectures = config.get("architectures") or [None]
            self.architecture = self.architecture or config.get("model_type") or architectures[0]
            self.library_name = "transformers"
            id2label = config.get("id2label") or {}
            names = [id2label[key] for key in sorted(id2label, key=int)]
            num_classes = len(names) or None
        if not self.label_free:
            self.num_classes = self.num_classes or num_classes
            self.class_names = self.class_names or list(names)
        return self

    def update_from_args(self, args) -> StudentInfo:
        """Hyperparameters from ``TrainingArguments`` (and the FKD fields of ``FKDConfig`` when present)."""

        def get(name: str, default=None):
            return getattr(args, name, default)

        per_device, num_crops = get("per_device_train_batch_size"), get("num_crops")
        images_per_step = per_device * max(int(get("world_size", 1)), 1) * int(get("gradient_accumulation_steps", 1))
        passes = float(get("num_train_epochs")) if get("max_steps", -1) <= 0 and get("num_train_epochs") else None
        input_size = get("input_size")
        values = dict(
            model_id=self.model_id or get("hub_model_id"),
            label_set=self.label_set or get("label_set"),
            label_set_revision=self.label_set_revision or get("label_set_revision"),
            num_crops=num_crops,
            passes=passes,
            fkd_epochs=passes * num_crops if passes and num_crops else None,
            learning_rate=get("learning_rate"),
            lr_scheduler=_enum_value(get("lr_scheduler_type")),
            warmup=get("warmup_steps") or get("warmup_ratio") or None,
            optimizer=_enum_value(get("optim")),
            weight_decay=get("weight_decay"),
            per_device_batch_size=per_device,
            total_batch_size=images_per_step,
            crops_per_step=images_per_step * num_crops if num_crops else None,
            temperature=get("temperature"),
            projection_head=get("projection_head"),
            projection_hidden_dim=get("projection_hidden_dim") if get("projection_head") == "mlp" else None,
            embedding_loss=get("embedding_loss"),
            mixup_alpha=get("mixup_alpha"),
            cutmix_alpha=get("cutmix_alpha"),
            input_size=[input_size, input_size] if isinstance(input_size, int) else input_size,
            precision="bf16" if get("bf16") else "fp16" if get("fp16") else "fp32",
            seed=get("seed"),
            eval_dataset=self.eval_dataset or get("dataset"),
            eval_dataset_config=self.eval_dataset_config or get("dataset_config"),
            eval_split=self.eval_split or get("eval_split"),
        )
        if get("max_steps", -1) > 0:
            values["extra_hyperparameters"] = {**self.extra_hyperparameters, "max steps": args.max_steps}
        if get("student_pretrained"):
            values["base_model"] = self.base_model or hub_repo_id(get("student"))
        for key, value in values.items():
            if value is not None:
                setattr(self, key, value)
        self._drop_settings_that_do_not_apply()
        return self

    def update_from_metrics(self, metrics: Mapping[str, float]) -> StudentInfo:
        """Top-1/top-5 (``eval_top1``/``eval_top5``, ``eval_accuracy``, or percentages), a label-free student's
        ``eval_knn_top1``/``eval_probe_top1``, and the eval loss."""
        keys = {"top1": _TOP1_KEYS, "top5": _TOP5_KEYS, "knn_top1": _KNN_KEYS, "probe_top1": _PROBE_KEYS}
        for field, names in keys.items():
            value = _metric(metrics, names)
            if value is not None:
                setattr(self, field, value)
        if metrics.get("eval_loss") is not None:
            self.eval_loss = float(metrics["eval_loss"])
        return self
