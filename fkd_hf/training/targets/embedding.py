"""The loss of ``embedding`` targets: the student's projected embedding against the teacher's, by cosine
(``1 - cos``, the default) or smooth-L1 (``args.embedding_loss``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LOSS", "embedding_loss"]


def embedding_loss(outputs: torch.Tensor, targets: torch.Tensor, args, reduction: str = "mean") -> torch.Tensor:
    """Per crop ``1 - cosine(outputs, targets)`` or the mean smooth-L1 over the D dimensions, then ``reduction``."""
    outputs, targets = outputs.float(), targets.float()
    if args.embedding_loss == "cosine":
        loss = 1 - F.cosine_similarity(outputs, targets, dim=-1)
    else:
        loss = F.smooth_l1_loss(outputs, targets, reduction="none").mean(-1)
    return {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[reduction]()


LOSS = embedding_loss
