"""Hub cards for label sets and students, rendered from the Jinja templates in ``hub_cards/``.

- Label sets: :func:`label_set_card` builds the dataset card (``README.md``) from a label set's
  :class:`~fkd_hf.label_set.LabelSetMetadata`; its YAML (``configs`` -> ``data/*.parquet``, ``dataset_info``
  features) makes ``datasets.load_dataset(repo_id)`` read exactly the label rows, with their dtypes.
- Students: :class:`StudentCardData` is both the card data of a student's model card and the schema of
  ``fkd_student.json`` saved beside its weights; :class:`StudentCardCallback` fills it during training
  (``on_train_begin``, ``on_evaluate``) and writes ``fkd_student.json`` + ``README.md`` (``on_save``,
  ``on_train_end``); :func:`write_student_card` renders the card with one ``ModelCard.from_template`` call.

Cards never hold a token: they are built from metadata fields only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import CardData, DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData
from transformers import TrainerCallback

from ..version import __version__
from ..labels.format import DATA_DIR, LabelSetMetadata
from .ids import hub_repo_id

logger = logging.getLogger(__name__)

FKD_CITATION = """@inproceedings{shen2022fast,
  title     = {A Fast Knowledge Distillation Framework for Visual Recognition},
  author    = {Shen, Zhiqiang and Xing, Eric},
  booktitle = {European Conference on Computer Vision (ECCV)},
  year      = {2022}
}"""
FKD_PAPER_URL = "https://arxiv.org/abs/2112.01528"
STUDENT_FILE = "fkd_student.json"
STUDENT_SCHEMA_VERSION = 1
CARD_TAGS = ["fkd", "knowledge-distillation", "image-classification"]
LABEL_SET_CARD_TEMPLATE = "label_set_card.md"
STUDENT_CARD_TEMPLATE = "student_card.md"

__all__ = [
    "FKD_CITATION",
    "STUDENT_FILE",
    "StudentCardData",
    "StudentCardCallback",
    "templates_dir",
    "label_set_card",
    "write_label_set_card",
    "student_card",
    "write_student_card",
]



def templates_dir() -> Path:
    """The ``hub_cards`` folder of Jinja templates: ``fkd_hf/hub_cards`` in an installed wheel (the pyproject maps the
    top-level folder there), or ``hub_cards/`` beside the package in a checkout."""
    package = Path(__file__).resolve().parents[1]  # fkd_hf/
    for candidate in (package / "hub_cards", package.parent / "hub_cards"):
        if (candidate / LABEL_SET_CARD_TEMPLATE).is_file():
            return candidate
    raise FileNotFoundError(
        f"The card templates (hub_cards/{LABEL_SET_CARD_TEMPLATE}) are neither in {package} nor beside it: "
        "reinstall fkd-hf (pip install --force-reinstall fkd-hf)."
    )


def _hub_link(repo_id: str | None, repo_type: str = "model") -> str | None:
    if repo_id is None:
        return None
    from huggingface_hub import constants

    prefix = "datasets/" if repo_type == "dataset" else ""
    return f"{constants.ENDPOINT.rstrip('/')}/{prefix}{repo_id}"


# --- label sets ------------------------------------------------------------------------------------------------------


def _size_category(rows: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]  # fmt: skip
    return next((name for bound, name in bounds if rows < bound), "n>1T" if rows >= 10**12 else "1B<n<10B")


def _label_set_card_data(metadata: LabelSetMetadata, license: str) -> DatasetCardData:
    import datasets
    from datasets.info import DatasetInfosDict

    source = hub_repo_id(metadata.dataset)
    card_data = DatasetCardData(
        license=license,
        task_categories=["image-classification"],
        tags=["fkd", "knowledge-distillation", "soft-labels"],
        size_categories=[_size_category(metadata.num_rows)],
        source_datasets=[source] if source else None,
        pretty_name=f"FKD soft labels: {metadata.dataset} ({metadata.dataset_split}) from {metadata.teacher}",
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": f"{DATA_DIR}/*.parquet"}]}],
    )
    info = datasets.DatasetInfo(
        features=metadata.features(),
        splits=datasets.SplitDict({"train": datasets.SplitInfo(name="train", num_examples=metadata.num_rows)}),
    )
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)
    return card_data


def label_set_card(
    metadata: LabelSetMetadata, repo_id: str | None = None, license: str = "other", revision: str | None = None
) -> DatasetCard:
    """The dataset card of a label set.

    Its YAML makes ``load_dataset`` read ``data/*.parquet`` only, with the label-set features; its text gives the
    teacher and revision, the source dataset and revision, R, kind, k, temperature, crop ranges, class names, bytes
    per crop, a usage snippet that loads ``repo_id`` (at ``revision``, when it is pushed to a branch) and joins it
    with the images, and the FKD citation.
    """
    values = metadata.to_dict()
    values.update(
        skipped_count=len(metadata.skipped_rows),
        bytes_per_crop=f"{metadata.bytes_per_crop:.1f}" if metadata.bytes_per_crop is not None else "n/a",
        repo_id=repo_id or "<user>/<label-set>",
        repo_revision=revision if revision not in (None, "main") else None,
        dataset_repo_id=hub_repo_id(metadata.dataset),
        dataset_link=_hub_link(hub_repo_id(metadata.dataset), "dataset"),
        teacher_link=_hub_link(hub_repo_id(metadata.teacher)),
        citation=FKD_CITATION,
        paper_url=FKD_PAPER_URL,
    )
    return DatasetCard.from_template(
        _label_set_card_data(metadata, license), template_path=str(templates_dir() / LABEL_SET_CARD_TEMPLATE), **values
    )


def write_label_set_card(
    directory: str | Path, metadata: LabelSetMetadata, repo_id: str | None = None, license: str = "other"
) -> Path:
    path = Path(directory) / "README.md"
    label_set_card(metadata, repo_id, license).save(path)
    return path


# --- students --------------------------------------------------------------------------------------------------------

# Keys of the FKD hyperparameter table, in order, with their display names.
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
    "temperature": "loss temperature",
    "mixup_alpha": "Mixup alpha",
    "cutmix_alpha": "CutMix alpha",
    "input_size": "input size",
    "precision": "precision",
    "seed": "seed",
}


@dataclasses.dataclass
class StudentCardData(CardData):
    """A student's card data, saved as ``fkd_student.json`` next to its weights (schema version 1).

    User fields come first; the rest is filled by :class:`StudentCardCallback` (from the Trainer's arguments, the
    label set's metadata and the evaluation metrics) or by hand. Accuracies are fractions in [0, 1]. Local paths
    (label set, dataset) are kept as given; only Hub ids become ``datasets:`` links in the card.
    """

    # User fields.
    model_id: str | None = None  # Hub repo id, e.g. "user/resnet18-fkd" (set by push_student)
    model_name: str | None = None  # pretty name for the card title and model-index
    license: str | None = None  # e.g. "apache-2.0"; "other" in the card when unset
    tags: list[str] = dataclasses.field(default_factory=list)  # extra tags
    # The student.
    architecture: str | None = None  # timm architecture (resnet18.a1_in1k) or transformers model type
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
    temperature: float | None = None  # loss temperature
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
    eval_loss: float | None = None
    # Provenance.
    fkd_hf_version: str = __version__
    schema_version: int = STUDENT_SCHEMA_VERSION

    # -- fkd_student.json --

    def to_json_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> StudentCardData:
        if data.get("schema_version", STUDENT_SCHEMA_VERSION) > STUDENT_SCHEMA_VERSION:
            raise ValueError(
                f"This {STUDENT_FILE} uses schema version {data['schema_version']}, newer than this fkd_hf reads "
                f"({STUDENT_SCHEMA_VERSION}): upgrade fkd_hf (pip install -U fkd-hf)."
            )
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes ``fkd_student.json`` into ``directory`` atomically."""
        path = Path(directory) / STUDENT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{STUDENT_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> StudentCardData:
        return cls.from_json_dict(json.loads((Path(directory) / STUDENT_FILE).read_text()))

    # -- filling --

    def update_from_label_set(self, metadata: LabelSetMetadata, source: str | None = None,
                              revision: str | None = None) -> StudentCardData:  # fmt: skip
        """Copies the teacher, dataset and soft-label settings of a label set (and where it lives)."""
        if source is not None:
            self.label_set, self.label_set_revision = str(source), revision
        self.teacher, self.teacher_revision = metadata.teacher, metadata.teacher_revision
        self.dataset, self.dataset_config = metadata.dataset, metadata.dataset_config
        self.dataset_split, self.dataset_revision = metadata.dataset_split, metadata.dataset_revision
        self.label_kind, self.label_k, self.label_temperature = metadata.kind, metadata.k, metadata.temperature
        self.stored_crops = metadata.stored_crops
        self.num_classes = self.num_classes or metadata.num_classes
        self.class_names = self.class_names or list(metadata.class_names)
        return self

    def update_from_config(self, config: Mapping[str, Any]) -> StudentCardData:
        """Fills fields from a student's ``config.json`` (timm ``save_for_hf`` or transformers format)."""
        if "architecture" in config:  # timm
            self.architecture = self.architecture or config["architecture"]
            self.library_name = "timm"
            names = config.get("label_names") or []
            self.num_classes = self.num_classes or config.get("num_classes") or len(names) or None
        else:
            architectures = config.get("architectures") or [None]
            self.architecture = self.architecture or config.get("model_type") or architectures[0]
            self.library_name = "transformers"
            id2label = config.get("id2label") or {}
            names = [id2label[key] for key in sorted(id2label, key=int)]
            self.num_classes = self.num_classes or len(names) or None
        self.class_names = self.class_names or list(names)
        return self

    # -- card --

    @property
    def title(self) -> str:
        if self.model_name:
            return self.model_name
        if self.model_id:
            return self.model_id.split("/")[-1]
        return f"{self.architecture or 'student'}-fkd"

    def hyperparameters(self) -> dict[str, Any]:
        """The FKD hyperparameters that are set, as display name -> value, in a fixed order."""
        table = {name: getattr(self, key) for key, name in _HYPERPARAMETERS.items() if getattr(self, key) is not None}
        table.update(self.extra_hyperparameters)
        return table

    def _eval_config(self) -> str | None:
        """The eval dataset's config: its own, or the training dataset's when both are the same dataset."""
        same = self.eval_dataset in (None, self.dataset)
        return self.eval_dataset_config or (self.dataset_config if same else None)

    def eval_results(self) -> list[EvalResult]:
        dataset = self.eval_dataset or self.dataset
        if dataset is None:
            return []
        repo = hub_repo_id(dataset)
        common = dict(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=repo or "imagefolder",
            dataset_name=repo or Path(str(dataset).split(":", 1)[-1]).name or str(dataset),
            dataset_config=self._eval_config(),
            dataset_split=self.eval_split,
        )
        results = []
        if self.top1 is not None:
            results.append(EvalResult(**common, metric_type="accuracy", metric_name="top-1 accuracy",
                                      metric_value=round(float(self.top1), 6)))  # fmt: skip
        if self.top5 is not None:
            results.append(EvalResult(**common, metric_type="top_5_accuracy", metric_name="top-5 accuracy",
                                      metric_value=round(float(self.top5), 6)))  # fmt: skip
        return results

    def model_card_data(self) -> ModelCardData:
        """The card's YAML metadata as ``huggingface_hub.ModelCardData`` (model-index from :meth:`eval_results`)."""
        linked = [hub_repo_id(self.label_set), hub_repo_id(self.dataset), hub_repo_id(self.eval_dataset)]
        datasets = list(dict.fromkeys(repo for repo in linked if repo))
        results = self.eval_results()
        tags = list(dict.fromkeys([*CARD_TAGS, self.library_name, *self.tags]))
        return ModelCardData(
            license=self.license or "other",
            library_name=self.library_name,
            pipeline_tag="image-classification",
            tags=tags,
            datasets=datasets or None,
            base_model=hub_repo_id(self.base_model),
            metrics=["accuracy"] if results else None,
            eval_results=results or None,
            model_name=self.title if results else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """Template values: every field plus what the template derives from them."""
        values = self.to_json_dict()
        label_repo = hub_repo_id(self.label_set)
        values.update(
            title=self.title,
            repo_id=self.model_id or "<user>/<model>",
            hyperparameter_table=self.hyperparameters(),
            label_set_repo=label_repo,
            label_set_link=_hub_link(label_repo, "dataset"),
            teacher_link=_hub_link(hub_repo_id(self.teacher)),
            dataset_link=_hub_link(hub_repo_id(self.dataset), "dataset"),
            eval_dataset_name=self.eval_dataset or self.dataset,
            eval_config=self._eval_config(),
            top1_percent=f"{100 * self.top1:.2f}" if self.top1 is not None else None,
            top5_percent=f"{100 * self.top5:.2f}" if self.top5 is not None else None,
            citation=FKD_CITATION,
            paper_url=FKD_PAPER_URL,
        )
        return values

    def to_yaml(self, line_break=None, original_order: list[str] | None = None) -> str:
        return self.model_card_data().to_yaml(line_break=line_break, original_order=original_order)


def student_card(card_data: StudentCardData) -> ModelCard:
    """The student's model card, rendered from ``hub_cards/student_card.md``."""
    return ModelCard.from_template(card_data, template_path=str(templates_dir() / STUDENT_CARD_TEMPLATE))


def write_student_card(student_dir: str | os.PathLike, info: StudentCardData | None = None) -> Path:
    """Writes ``fkd_student.json`` and ``README.md`` into ``student_dir``; returns the README path.

    ``info`` defaults to the folder's ``fkd_student.json``; fields it lacks are filled from ``config.json``.
    """
    student_dir = Path(student_dir)
    if info is None:
        info = StudentCardData.load(student_dir) if (student_dir / STUDENT_FILE).is_file() else StudentCardData()
    config_path = student_dir / "config.json"
    if config_path.is_file():
        info.update_from_config(json.loads(config_path.read_text()))
    info.save(student_dir)
    path = student_dir / "README.md"
    student_card(info).save(path)
    return path


# --- training --------------------------------------------------------------------------------------------------------

_TOP1_KEYS = ("top1", "top_1", "acc1", "top1_accuracy", "accuracy")
_TOP5_KEYS = ("top5", "top_5", "acc5", "top5_accuracy")


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


def _model_info(model) -> dict[str, Any]:
    """Architecture, library and classes of a timm model, transformers' TimmWrapper or a transformers model."""
    config = getattr(model, "config", None)
    if hasattr(model, "pretrained_cfg") and config is None:  # a bare timm model
        cfg = model.pretrained_cfg
        arch = cfg.get("architecture") and cfg["architecture"] + (f".{cfg['tag']}" if cfg.get("tag") else "")
        return {"architecture": arch, "library_name": "timm", "num_classes": getattr(model, "num_classes", None)}
    if config is None:
        return {}
    id2label = getattr(config, "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label)]
    info = {"num_classes": getattr(config, "num_labels", None) or len(names) or None}
    if names and not all(re.fullmatch(r"LABEL_\d+", str(n)) for n in names):
        info["class_names"] = names
    if getattr(config, "model_type", None) == "timm_wrapper":
        info |= {"architecture": config.architecture, "library_name": "timm"}
    else:
        info |= {"architecture": config.model_type, "library_name": "transformers"}
    return info


class StudentCardCallback(TrainerCallback):
    """Fills a :class:`StudentCardData` during training and writes the student's card into ``args.output_dir``.

    - ``on_train_begin``: hyperparameters from the Trainer's arguments (``FKDConfig`` fields when present: label
      set, ``num_crops``, ``temperature``, Mixup/CutMix, ...), the student from the model, and the label set's
      metadata (the training dataset's ``metadata``, else ``args.label_set``, else the ``label_set`` given here).
    - ``on_evaluate``: top-1/top-5 (``eval_top1``/``eval_top5``, or ``eval_accuracy``) and the eval loss.
    - ``on_save`` and ``on_train_end``: ``fkd_student.json`` + ``README.md`` in ``args.output_dir`` (and in the new
      checkpoint folder on save); after training ends, each evaluation rewrites them.

    >>> callback = StudentCardCallback(license="apache-2.0")  # doctest: +SKIP
    >>> trainer = Trainer(model, args, callbacks=[callback], ...)  # doctest: +SKIP
    >>> callback.write("outputs/student")  # e.g. from Trainer.create_model_card  # doctest: +SKIP
    """

    def __init__(self, card_data: StudentCardData | None = None, label_set: LabelSetMetadata | None = None,
                 **fields):  # fmt: skip
        self.card_data = card_data if card_data is not None else StudentCardData()
        for key, value in fields.items():
            if not hasattr(self.card_data, key):
                raise TypeError(f"StudentCardData has no field {key!r}.")
            setattr(self.card_data, key, value)
        self.label_set = label_set
        self._train_ended = False

    # -- filling --

    def _label_set_metadata(self, args, train_dataloader) -> LabelSetMetadata | None:
        dataset = getattr(train_dataloader, "dataset", None)
        metadata = getattr(dataset, "metadata", None)
        if isinstance(metadata, LabelSetMetadata):
            return metadata
        if self.label_set is not None:
            return self.label_set
        source = getattr(args, "label_set", None)
        if source:
            from ..labels.format import read_metadata

            try:
                return read_metadata(source, getattr(args, "label_set_revision", None))
            except Exception as err:  # the card is informative: never stop training for it
                logger.warning("Could not read the label set's metadata for the model card: %s", type(err).__name__)
        return None

    def fill_from_args(self, args) -> None:
        """Hyperparameters from ``TrainingArguments`` (and the FKD fields of ``FKDConfig`` when present)."""
        data, get = self.card_data, lambda name, default=None: getattr(args, name, default)
        per_device, num_crops = get("per_device_train_batch_size"), get("num_crops")
        images_per_step = per_device * max(int(get("world_size", 1)), 1) * int(get("gradient_accumulation_steps", 1))
        passes = float(get("num_train_epochs")) if get("max_steps", -1) <= 0 and get("num_train_epochs") else None
        input_size = get("input_size")
        values = dict(
            model_id=data.model_id or get("hub_model_id"),
            label_set=data.label_set or get("label_set"),
            label_set_revision=data.label_set_revision or get("label_set_revision"),
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
            mixup_alpha=get("mixup_alpha"),
            cutmix_alpha=get("cutmix_alpha"),
            input_size=[input_size, input_size] if isinstance(input_size, int) else input_size,
            precision="bf16" if get("bf16") else "fp16" if get("fp16") else "fp32",
            seed=get("seed"),
            eval_dataset=data.eval_dataset or get("dataset"),
            eval_dataset_config=data.eval_dataset_config or get("dataset_config"),
            eval_split=data.eval_split or get("eval_split"),
        )
        if get("max_steps", -1) > 0:
            values["extra_hyperparameters"] = {**data.extra_hyperparameters, "max steps": args.max_steps}
        if get("student_pretrained"):
            values["base_model"] = data.base_model or hub_repo_id(get("student"))
        for key, value in values.items():
            if value is not None:
                setattr(data, key, value)

    def fill_from_model(self, model) -> None:
        for key, value in _model_info(model).items():
            if value is not None and (key in ("architecture", "library_name") or not getattr(self.card_data, key)):
                setattr(self.card_data, key, value)

    def fill_from_metrics(self, metrics: Mapping[str, float]) -> None:
        top1, top5 = _metric(metrics, _TOP1_KEYS), _metric(metrics, _TOP5_KEYS)
        if top1 is not None:
            self.card_data.top1 = top1
        if top5 is not None:
            self.card_data.top5 = top5
        if metrics.get("eval_loss") is not None:
            self.card_data.eval_loss = float(metrics["eval_loss"])

    # -- writing --

    def write(self, output_dir: str | os.PathLike) -> Path:
        """Writes ``fkd_student.json`` and ``README.md`` into ``output_dir``; returns the README path."""
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        self.card_data.save(output_dir)
        path = Path(output_dir) / "README.md"
        student_card(self.card_data).save(path)
        return path

    # -- TrainerCallback events --

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        self._train_ended = False
        self.fill_from_args(args)
        if model is not None:
            self.fill_from_model(model)
        metadata = self._label_set_metadata(args, train_dataloader)
        if metadata is not None:
            self.card_data.update_from_label_set(metadata)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics:
            self.fill_from_metrics(metrics)
        if self._train_ended and state.is_world_process_zero:
            self.write(args.output_dir)

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.write(args.output_dir)
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if checkpoint.is_dir():
            self.write(checkpoint)

    def on_train_end(self, args, state, control, **kwargs):
        self._train_ended = True
        if state.is_world_process_zero:
            self.write(args.output_dir)
