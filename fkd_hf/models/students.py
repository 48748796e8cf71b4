"""Students: any timm architecture or transformers image classifier, with the label set's class names as its head.

timm students run inside transformers' ``TimmWrapperForImageClassification`` so that the Trainer sees a
``PreTrainedModel``; :func:`save_student` writes them in the one format both libraries load:

- ``model.safetensors``: timm's own state dict (no ``timm_model.`` prefix);
- ``config.json``: timm's ``save_for_hf`` config (``architecture``, ``num_classes``, ``label_names``,
  ``pretrained_cfg`` with the preprocessing used in training), except that ``model_args`` leaves out
  ``num_classes``: transformers passes the class count itself, and a second copy fails with "got multiple values
  for keyword argument 'num_classes'".

Such a folder loads with ``timm.create_model("local-dir:DIR", pretrained=True)`` (``hf-hub:`` once pushed),
``transformers.AutoModelForImageClassification.from_pretrained(DIR)`` (``id2label`` = class names) and
``AutoImageProcessor.from_pretrained(DIR)``, with identical logits. transformers students are saved with
``save_pretrained`` (plus their image processor) and load with transformers only.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    PreTrainedModel,
    TimmWrapperConfig,
    TimmWrapperForImageClassification,
)

from ..errors import InputNotFoundError, UsageError
from ..hub.student_info import timm_architecture
from ..repo_ids import is_repo_id
from .processors import IMAGENET_DATA_CONFIG, processor_data_config
from .teachers import config_library

__all__ = ["create_student", "student_data_config", "save_student", "save_timm_model", "weights_saved_as_files"]


def _student_library(spec: str) -> str:
    """``timm`` or ``transformers``: which library builds the student named by ``spec``."""
    import timm

    local = Path(spec)
    if local.is_dir():
        config = local / "config.json"
        if not config.is_file():
            raise InputNotFoundError(f"Student folder {spec} has no config.json.")
        return config_library(json.loads(config.read_text()))
    if spec.startswith(("hf-hub:", "timm/")) or timm.is_model(spec.split(".")[0]):
        return "timm"
    if is_repo_id(spec):
        from huggingface_hub import hf_hub_download

        return config_library(json.loads(Path(hf_hub_download(spec, "config.json")).read_text()))
    raise UsageError(
        f"Unknown student {spec!r}: give a timm architecture (resnet50, deit_tiny_patch16_224, ...), "
        "'timm/<name>' or 'hf-hub:<org>/<name>', a transformers Hub id, or a local folder with config.json."
    )


def _timm_student(spec: str, labels: dict, pretrained: bool, model_kwargs: dict) -> TimmWrapperForImageClassification:
    import timm

    if Path(spec).is_dir():
        source = f"local-dir:{spec}"
    else:  # a Hub repo id (timm/<name>, <org>/<name>) needs timm's hf-hub: prefix
        source = f"hf-hub:{spec}" if "/" in spec and not spec.startswith("hf-hub:") else spec
    model = timm.create_model(source, pretrained=pretrained, num_classes=len(labels["id2label"]), **model_kwargs)
    if not pretrained:  # the tag names pretrained weights: a student trained from scratch has none
        model.pretrained_cfg = model.default_cfg = {k: v for k, v in model.pretrained_cfg.items() if k != "tag"}
    config = TimmWrapperConfig(
        architecture=timm_architecture(model.pretrained_cfg), model_args=model_kwargs or None, **labels
    )
    with torch.device("meta"):  # the wrapper's own copy is replaced at once: build it without memory or init
        wrapper = TimmWrapperForImageClassification(config)
    wrapper.timm_model = model
    return wrapper


def create_student(
    spec: str, class_names: Sequence[str], pretrained: bool = False, model_kwargs: dict | None = None
) -> PreTrainedModel:
    """A classifier with one output per class in ``class_names`` (its ``id2label``).

    ``spec``: a timm architecture (``resnet50``), ``timm/<name>`` or ``hf-hub:<org>/<name>``, a transformers Hub id,
    or a local folder (timm or transformers ``config.json``). Random init unless ``pretrained``, in which case the
    weights are loaded and the head is replaced when its class count differs. ``model_kwargs`` go to
    ``timm.create_model`` (``drop_path_rate``, ``img_size``, ...) or to the transformers config.

    >>> model = create_student("resnet18", ["cat", "dog"])  # doctest: +SKIP
    >>> model.config.id2label  # doctest: +SKIP
    {0: 'cat', 1: 'dog'}
    """
    model_kwargs = dict(model_kwargs or {})
    unique = len(set(class_names)) == len(class_names)
    labels = {
        "num_labels": len(class_names),
        "id2label": dict(enumerate(class_names)),
        "label2id": {name: i for i, name in enumerate(class_names)} if unique else None,
    }
    if _student_library(spec) == "timm":
        return _timm_student(spec, labels, pretrained, model_kwargs)
    if pretrained:
        return AutoModelForImageClassification.from_pretrained(
            spec, ignore_mismatched_sizes=True, trust_remote_code=False, **labels, **model_kwargs
        )
    config = AutoConfig.from_pretrained(spec, trust_remote_code=False, **labels, **model_kwargs)
    return AutoModelForImageClassification.from_config(config)


def _image_processor(model: PreTrainedModel):
    source = getattr(model, "name_or_path", "") or ""
    if not source or isinstance(model, TimmWrapperForImageClassification):
        return None
    try:
        return AutoImageProcessor.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError):
        return None


def student_data_config(
    model: nn.Module,
    input_size: int | Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    interpolation: str | None = None,
    crop_pct: float | None = None,
) -> dict:
    """The student's preprocessing: ``input_size`` (h, w), ``mean``, ``std``, ``interpolation``, ``crop_pct``.

    From timm's ``resolve_data_config`` (timm students, honouring an ``img_size`` model argument) or the
    transformers image processor (ImageNet defaults, 224 px, crop_pct 0.875, without one); given values win.
    """
    size = (input_size, input_size) if isinstance(input_size, int) else input_size and tuple(input_size)
    if isinstance(model, TimmWrapperForImageClassification):
        import timm.data

        args = {
            "input_size": (3, *size) if size else None,
            "mean": mean,
            "std": std,
            "interpolation": interpolation,
            "crop_pct": crop_pct,
        }
        img_size = (model.config.model_args or {}).get("img_size")
        if size is None and img_size is not None:
            args["input_size"] = (3, img_size, img_size) if isinstance(img_size, int) else (3, *img_size)
        cfg = timm.data.resolve_data_config(args, model=model.timm_model)
        cfg["input_size"] = tuple(cfg["input_size"][1:])
        return {key: cfg[key] for key in ("input_size", "mean", "std", "interpolation", "crop_pct")}
    processor = _image_processor(model)
    cfg = processor_data_config(processor) if processor is not None else dict(IMAGENET_DATA_CONFIG)
    given = {"input_size": size, "mean": mean, "std": std, "interpolation": interpolation, "crop_pct": crop_pct}
    cfg.update({key: value for key, value in given.items() if value is not None})
    return cfg


@contextlib.contextmanager
def _contiguous_weights(model: torch.nn.Module):
    """Safetensors stores contiguous tensors only: lays out channels-last weights (as trainers keep them) the
    standard way while saving, and restores the layout after."""
    channels_last = any(p.dim() == 4 and not p.is_contiguous() for p in model.parameters())
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    try:
        yield
    finally:
        if channels_last:
            model.to(memory_format=torch.channels_last)


def _umask_file_mode(paths) -> None:
    """Gives ``paths`` the mode the process umask gives new files (the safetensors writer creates them 0600, while
    the folder's other files follow the umask)."""
    umask = os.umask(0o022)  # reading the umask means setting it: restore it at once
    os.umask(umask)
    for path in paths:
        os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def weights_saved_as_files(model: torch.nn.Module, directory: Path):
    """Around saving ``model`` into ``directory``: contiguous weights while saving, and then the folder's
    safetensors files get the mode its other files have."""
    with _contiguous_weights(model):
        yield
    _umask_file_mode(directory.glob("*.safetensors"))


def save_student(model: PreTrainedModel, directory: str | Path, data_config: dict | None = None) -> Path:
    """Saves ``model`` as a safetensors folder in the format described in the module docstring; the weights get
    the same file mode as the folder's other files."""
    directory = Path(directory)
    with weights_saved_as_files(model, directory):
        return _save_student(model, directory, data_config)


def _save_student(model: PreTrainedModel, directory: Path, data_config: dict | None) -> Path:
    if not isinstance(model, TimmWrapperForImageClassification):
        model.save_pretrained(directory)
        processor = _image_processor(model)
        if processor is not None:
            processor.save_pretrained(directory)
        return directory
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return save_timm_model(model.timm_model, directory, data_config, names)


def save_timm_model(
    model: nn.Module, directory: Path, data_config: dict | None, label_names: Sequence[str] | None = None
) -> Path:
    """Saves a timm model with timm's ``save_for_hf`` in the format described in the module docstring (with its
    ``label_names`` when it has classes)."""
    import timm.models

    timm_data = None
    if data_config is not None:
        timm_data = dict(data_config, input_size=(3, *data_config["input_size"]))
    model_config = {"label_names": list(label_names)} if label_names else None
    timm.models.save_for_hf(model, directory, model_config=model_config, safe_serialization=True, data_config=timm_data)
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config.get("model_args", {}).pop("num_classes", None)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return directory
