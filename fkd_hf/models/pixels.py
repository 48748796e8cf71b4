"""Image normalisation, the one place where uint8 pixels become a model's float input."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["normalize", "to_uint8_batch"]


def to_uint8_batch(images: Sequence) -> torch.Tensor:
    """RGB images (PIL images or ``[H, W, 3]`` uint8 arrays of one size) as a uint8 ``[N, 3, H, W]`` batch in
    channels-last memory."""
    stacked = np.stack([np.asarray(image, dtype=np.uint8) for image in images])
    return torch.from_numpy(stacked).permute(0, 3, 1, 2)


def normalize(
    pixels: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """uint8 ``[N, 3, H, W]`` -> float32 ``(pixels / 255 - mean) / std``, on the pixels' device, keeping their memory
    format. ``mean`` and ``std`` are three numbers each (a sequence or a tensor)."""
    mean = torch.as_tensor(mean, dtype=torch.float32, device=pixels.device)
    std = torch.as_tensor(std, dtype=torch.float32, device=pixels.device)
    scale = 1.0 / (255.0 * std)
    return torch.addcmul((-mean / std).view(1, -1, 1, 1), pixels.float(), scale.view(1, -1, 1, 1))
