"""The teacher runner: batched teacher forward passes on uint8 crops, in the chosen precision, on the chosen device.

Generation (soft labels), the demo's teacher evaluation and the benchmarks' online teacher all run the teacher
through :class:`TeacherRunner`, so a teacher scores and labels the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .pixels import normalize
from .precision import resolve_precision, torch_dtype
from .teachers import Teacher

__all__ = ["TeacherRunner"]


class TeacherRunner:
    """Runs ``teacher`` on uint8 pixels: ``[N, H, W, 3]`` numpy arrays or ``[N, 3, H, W]`` tensors.

    ``precision`` (``fp32``, ``bf16``, ``fp16`` or ``auto``) sets the autocast dtype on ``device``; ``class_indices``
    restricts the probabilities to those teacher classes (in that order); ``temperature`` divides the logits
    before the softmax. Moves the teacher to ``device`` (in place) and keeps it in eval mode.
    """

    def __init__(
        self,
        teacher: Teacher,
        precision: str = "fp32",
        device: torch.device | str = "cpu",
        class_indices: Sequence[int] | None = None,
        temperature: float = 1.0,
    ):
        self.teacher = teacher
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.dtype = torch_dtype(self.precision)
        self.temperature = float(temperature)
        teacher.model.to(self.device).eval().requires_grad_(False)
        self.class_indices = None if class_indices is None else torch.as_tensor(list(class_indices), device=self.device)

    def _pixels(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(pixels, np.ndarray):
            pixels = torch.from_numpy(pixels).permute(0, 3, 1, 2)
        x = normalize(pixels.to(self.device, non_blocking=True), self.teacher.mean, self.teacher.std)
        return x.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def outputs(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """float32 logits ``[N, C]`` over every teacher class (an encoder's embeddings ``[N, D]``), on the runner's
        device."""
        x = self._pixels(pixels)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            return self.teacher.outputs(x).float()

    def restrict(self, logits: torch.Tensor) -> torch.Tensor:
        """The columns of ``logits`` of the runner's classes (all when it has no ``class_indices``)."""
        return logits if self.class_indices is None else logits.index_select(-1, self.class_indices)

    def probs(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The teacher's softmax ``[N, classes]`` over the runner's classes, after the temperature."""
        return torch.softmax(self.restrict(self.outputs(pixels)) / self.temperature, dim=-1)

    def predict(self, batches: Iterator[np.ndarray | torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """Top-1 classes of every image in ``batches``: ``(over the runner's classes, over all teacher classes)``."""
        restricted, full = [], []
        for pixels in batches:
            logits = self.outputs(pixels)
            full.append(logits.argmax(-1).cpu())
            restricted.append(self.restrict(logits).argmax(-1).cpu())
        return torch.cat(restricted).numpy(), torch.cat(full).numpy()
