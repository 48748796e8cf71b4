"""Projection heads of self-supervised students: from the backbone's pooled features to the teacher's D dimensions.

A student of a label-free set (an encoder teacher's targets) is created as a classifier with D outputs, so its own
head is a linear projection; ``mlp`` replaces that head with Linear-GELU-Linear. :func:`save_backbone_and_head`
saves the backbone as an ordinary model (timm loads it with ``num_classes=0``, transformers with ``AutoModel``) and
the head beside it: ``projection_head.safetensors`` and ``projection_head.json`` (its shape), which
:func:`load_projection_head` reads back.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from torch import nn

from .students import save_student, save_timm_model, weights_saved_as_files

__all__ = [
    "HEAD_CONFIG",
    "HEAD_WEIGHTS",
    "PROJECTION_HEADS",
    "attach_projection_head",
    "load_projection_head",
    "projection_head",
    "save_backbone_and_head",
]

PROJECTION_HEADS = ("linear", "mlp")
HEAD_WEIGHTS, HEAD_CONFIG = "projection_head.safetensors", "projection_head.json"


def _head_name(model: nn.Module) -> str:
    """The qualified name of ``model``'s classifier: timm's ``get_classifier()``; for transformers, the last linear
    layer with ``num_labels`` outputs (or the module that replaced it)."""
    timm_model = getattr(model, "timm_model", None)
    if timm_model is not None:
        head = timm_model.get_classifier()
        return "timm_model." + next(name for name, module in timm_model.named_modules() if module is head)
    recorded = getattr(model, "_projection_head_name", None)
    if recorded:
        return recorded
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == model.num_labels]
    if not linears:
        raise ValueError(f"Cannot find the head of {type(model).__name__}: no linear layer with num_labels outputs.")
    return linears[-1]


def projection_head(model: nn.Module) -> tuple[str, nn.Module]:
    """``(qualified name, module)`` of ``model``'s projection head."""
    name = _head_name(model)
    return name, model.get_submodule(name)


def _mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, out_features))


def attach_projection_head(model: nn.Module, kind: str = "linear", hidden_dim: int = 2048) -> nn.Module:
    """``model`` (a student with D outputs) with a ``kind`` projection head: its own linear head, or an MLP in its
    place (in place; returned)."""
    if kind not in PROJECTION_HEADS:
        raise ValueError(f"projection_head must be one of {', '.join(PROJECTION_HEADS)}, got {kind!r}.")
    if kind == "linear":
        return model
    name, head = projection_head(model)
    if not isinstance(head, nn.Linear):
        raise ValueError(
            f"The head {name} of {type(model).__name__} is not a linear layer: use projection_head linear."
        )
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent), attribute, _mlp(head.in_features, hidden_dim, head.out_features))
    if getattr(model, "timm_model", None) is None:
        model._projection_head_name = name
    return model


def _head_config(head: nn.Module) -> dict:
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if len(linears) == 1:
        return {"type": "linear", "in_features": linears[0].in_features, "out_features": linears[0].out_features}
    return {
        "type": "mlp",
        "in_features": linears[0].in_features,
        "hidden_dim": linears[0].out_features,
        "out_features": linears[-1].out_features,
    }


def save_backbone_and_head(model: nn.Module, directory: str | Path, data_config: dict | None = None) -> Path:
    """Saves ``model``'s backbone as an ordinary model in ``directory`` and its projection head beside it."""
    from safetensors.torch import save_file

    directory = Path(directory)
    name, head = projection_head(model)
    timm_model = getattr(model, "timm_model", None)
    if timm_model is not None:
        backbone = copy.deepcopy(timm_model)
        backbone.reset_classifier(0)
        with weights_saved_as_files(backbone, directory):
            save_timm_model(backbone, directory, data_config)
    else:
        save_student(model.base_model, directory, data_config)
    state = {key: value.detach().contiguous().cpu() for key, value in head.state_dict().items()}
    if isinstance(head, nn.Linear):
        state = {f"0.{key}": value for key, value in state.items()}  # one layout for both kinds: Sequential indices
    save_file(state, directory / HEAD_WEIGHTS)
    (directory / HEAD_CONFIG).write_text(json.dumps({**_head_config(head), "student_module": name}, indent=2) + "\n")
    return directory


def load_projection_head(directory: str | Path) -> nn.Sequential:
    """The projection head saved beside a backbone by :func:`save_backbone_and_head`, in eval mode.

    >>> backbone = timm.create_model("local-dir:student", pretrained=True, num_classes=0)  # doctest: +SKIP
    >>> embedding = load_projection_head("student")(backbone(pixels))  # doctest: +SKIP
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    config = json.loads((directory / HEAD_CONFIG).read_text())
    if config["type"] == "linear":
        head = nn.Sequential(nn.Linear(config["in_features"], config["out_features"]))
    else:
        head = _mlp(config["in_features"], config["hidden_dim"], config["out_features"])
    head.load_state_dict(load_file(directory / HEAD_WEIGHTS))
    return head.eval()
