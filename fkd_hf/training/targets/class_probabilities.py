"""The loss of ``class_probabilities`` targets: FKD's soft cross-entropy at the student temperature."""

from __future__ import annotations

import torch

from ..loss import soft_cross_entropy

__all__ = ["LOSS", "class_probabilities_loss"]


def class_probabilities_loss(
    outputs: torch.Tensor, targets: torch.Tensor, args, reduction: str = "mean"
) -> torch.Tensor:
    """:func:`~fkd_hf.training.loss.soft_cross_entropy` of the student's logits at ``args.temperature``."""
    return soft_cross_entropy(outputs, targets, args.temperature, reduction)


LOSS = class_probabilities_loss
