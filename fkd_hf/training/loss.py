"""FKD's loss: soft cross-entropy against reconstructed soft labels, and Mixup/CutMix of crops with their targets.

Pure functions on tensors; :class:`~fkd_hf.training.trainer.FKDTrainer` calls them on the device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["soft_cross_entropy", "sample_mix", "mix_crops"]


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """``-sum(targets * log_softmax(logits / temperature))`` per crop, reduced by ``mean``, ``sum`` or ``none``.

    As in FKD, the temperature divides the student's logits and the loss is not rescaled by ``temperature**2``.

    >>> logits = torch.tensor([[2.0, 0.0]])
    >>> soft_cross_entropy(logits, torch.tensor([[1.0, 0.0]])).allclose(F.cross_entropy(logits, torch.tensor([0])))
    True
    """
    loss = -(targets * F.log_softmax(logits.float() / temperature, dim=-1)).sum(-1)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")


def sample_mix(
    rng: np.random.Generator, mixup_alpha: float, cutmix_alpha: float, prob: float, height: int, width: int
) -> tuple[float, tuple[int, int, int, int] | None] | None:
    """Draws one batch's mixing: ``None`` (no mixing), ``(lam, None)`` for Mixup or ``(lam, box)`` for CutMix.

    ``lam`` ~ Beta(alpha, alpha) is the weight of the crop itself. When both alphas are positive, Mixup and CutMix
    are equally likely. A CutMix ``box`` is ``(top, left, bottom, right)`` in pixels, clipped to the crop, and
    ``lam`` is corrected to the share of the crop left unpasted.
    """
    if (mixup_alpha <= 0 and cutmix_alpha <= 0) or rng.random() >= prob:
        return None
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    if not use_cutmix:
        return float(rng.beta(mixup_alpha, mixup_alpha)), None
    lam = rng.beta(cutmix_alpha, cutmix_alpha)
    cut_h, cut_w = int(height * math.sqrt(1 - lam)), int(width * math.sqrt(1 - lam))
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    lam = 1.0 - (bottom - top) * (right - left) / (height * width)
    return float(lam), (top, left, bottom, right)


def mix_crops(
    pixels: torch.Tensor, targets: torch.Tensor, lam: float, box: tuple[int, int, int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixes each crop with its partner in the reversed batch (crop ``j`` with ``N - 1 - j``, as timm's Mixup),
    pixels ``[N, C, H, W]`` and dense targets ``[N, classes]`` alike: ``lam * own + (1 - lam) * partner``.

    Mixup blends whole crops; CutMix (``box`` given) pastes the partner's box. Targets stay distributions.
    """
    partner_targets = targets.flip(0)
    if box is None:
        pixels = pixels * lam + pixels.flip(0) * (1.0 - lam)
    else:
        top, left, bottom, right = box
        pixels = pixels.clone()
        pixels[:, :, top:bottom, left:right] = pixels.flip(0)[:, :, top:bottom, left:right]
    return pixels, targets * lam + partner_targets * (1.0 - lam)
