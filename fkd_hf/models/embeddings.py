"""Image embeddings of encoders: what a teacher without a classifier gives for self-supervised distillation, and
what a student's backbone gives when it is judged by k-NN and linear probes.

:func:`pooled_embedding` reads, by library:

- timm models (and students in transformers' ``TimmWrapper``): the pooled pre-logit features
  (``forward_head(forward_features(x), pre_logits=True)``), whatever head the model has;
- transformers models with ``get_image_features`` (CLIP, SigLIP...): the projected image embedding;
- other transformers models (``AutoModel`` or a classifier's base model): ``image_embeds`` where the output has it,
  else ``pooler_output`` (DINOv2's CLS after its layer norm; a CNN's pooled map), else the first token of a
  sequence (CLS) or the spatial mean of a feature map.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["pooled_embedding"]


def pooled_embedding(model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """The image embedding ``[N, D]`` of ``model`` for normalised ``pixel_values`` (see the module docstring)."""
    timm_model = getattr(model, "timm_model", model)
    if hasattr(timm_model, "forward_features") and hasattr(timm_model, "forward_head"):
        return timm_model.forward_head(timm_model.forward_features(pixel_values), pre_logits=True)
    if hasattr(model, "get_image_features"):
        return _pooled(model.get_image_features(pixel_values=pixel_values))
    return _pooled(model.base_model(pixel_values=pixel_values))


def _pooled(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    for name in ("image_embeds", "pooler_output"):
        value = getattr(output, name, None)
        if value is not None:
            return value.flatten(1)
    hidden = output.last_hidden_state
    return hidden[:, 0] if hidden.dim() == 3 else hidden.mean(dim=(-2, -1))
