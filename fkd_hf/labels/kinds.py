"""FKD soft-label quantization: teacher probabilities -> stored top-k, and stored top-k -> dense targets.

The five kinds come from FKD (Shen & Xing, ECCV 2022, Sec. 3.3):

- ``hard``: the argmax class only (k = 1); reconstructed as a one-hot target.
- ``smoothing``: the top-1 probability ``p``; the other C-1 classes share ``1 - p`` uniformly.
- ``marginal_smoothing``: the top-k probabilities; the other C-k classes share the remaining mass uniformly.
- ``marginal_renorm``: the top-k probabilities renormalised to sum to 1; every other class gets 0.
- ``full``: every class (k = C), for small label spaces.

Every reconstructed target is a probability distribution over C classes (it sums to 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

KINDS = ("hard", "smoothing", "marginal_smoothing", "marginal_renorm", "full")
DEFAULT_K = {"hard": 1, "smoothing": 1, "marginal_smoothing": 5, "marginal_renorm": 5}

__all__ = ["KINDS", "DEFAULT_K", "check_kind", "resolve_k", "quantize", "reconstruct"]


def check_kind(kind: str) -> str:
    """Returns ``kind`` if it is a known quantization kind, else raises a ValueError naming the known ones."""
    if kind not in KINDS:
        raise ValueError(f"Unknown soft-label kind {kind!r}; choose one of {', '.join(KINDS)}.")
    return kind


def resolve_k(kind: str, k: int | None, num_classes: int) -> int:
    """The number of stored classes per crop for ``kind``, checked against ``num_classes``."""
    check_kind(kind)
    if kind == "full":
        if k not in (None, num_classes):
            raise ValueError(f"kind 'full' stores every class: k must be {num_classes} (the class count) or unset.")
        return num_classes
    if kind in ("hard", "smoothing"):
        if k not in (None, 1):
            raise ValueError(f"kind {kind!r} stores only the top-1 class: k must be 1 or unset, got {k}.")
        return 1
    k = DEFAULT_K[kind] if k is None else int(k)
    if not 1 <= k <= num_classes:
        raise ValueError(f"k must be between 1 and the class count ({num_classes}), got {k}.")
    return k


def quantize(probs: torch.Tensor, kind: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k class indices and probabilities of ``probs`` (``[..., C]``) to store for ``kind``.

    Returns ``(indices, values)``, each ``[..., k]``, sorted by decreasing probability. ``values`` are the
    teacher's probabilities as they are; the kind only changes how :func:`reconstruct` reads them back.
    """
    check_kind(kind)
    values, indices = probs.topk(k, dim=-1, sorted=True)
    return indices, values


def reconstruct(indices: torch.Tensor, values: torch.Tensor, kind: str, num_classes: int) -> torch.Tensor:
    """Dense float32 targets ``[..., C]`` from stored top-k ``indices`` and ``values`` (each ``[..., k]``).

    Runs batched on the device of ``indices``; any number of leading dimensions.

    >>> idx, val = torch.tensor([[0, 2]]), torch.tensor([[0.6, 0.2]])
    >>> reconstruct(idx, val, "marginal_smoothing", 4)
    tensor([[0.6000, 0.1000, 0.2000, 0.1000]])
    """
    import torch

    check_kind(kind)
    indices = indices.long()
    values = values.float()
    k = indices.shape[-1]
    shape = (*indices.shape[:-1], num_classes)
    if kind == "hard":
        return torch.zeros(shape, device=indices.device).scatter_(-1, indices[..., :1], 1.0)
    if kind == "marginal_renorm":
        values = values / values.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
        return torch.zeros(shape, device=indices.device).scatter_(-1, indices, values)
    if kind == "full":
        dense = torch.zeros(shape, device=indices.device).scatter_(-1, indices, values)
        return dense / dense.sum(-1, keepdim=True)
    # smoothing (k = 1) and marginal_smoothing: the remaining mass spread over the C - k other classes.
    # float16 storage can push the kept mass a hair past 1: scale it back so the target stays a distribution.
    values = values.clamp_min(0.0)
    values = values / values.sum(-1, keepdim=True).clamp_min(1.0)
    kept = values.sum(-1, keepdim=True)
    if k == num_classes:
        values = values / kept
        rest = torch.zeros_like(kept)
    else:
        rest = (1.0 - kept) / (num_classes - k)
    dense = rest.expand(shape).clone()
    return dense.scatter_(-1, indices, values)
