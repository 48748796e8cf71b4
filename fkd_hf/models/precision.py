"""Which floating-point precision a device runs fastest: ``precision="auto"`` for generation and the demo."""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["AUTO", "PRECISIONS", "native_bf16", "resolve_precision", "torch_dtype"]

PRECISIONS = ("fp32", "bf16", "fp16")
AUTO = "auto"


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no flags, so no claim of bf16 hardware
        return frozenset()
    flags = next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("flags")), "")
    return frozenset(flags.split())


def torch_dtype(precision: str):
    """The torch dtype of a precision name (``fp32``, ``bf16``, ``fp16``)."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def native_bf16(device) -> bool:
    """True where bfloat16 matrix units make bf16 faster than fp32: CUDA GPUs with bf16 support, and x86 CPUs with
    AMX or AVX512-BF16 (measured on a 2-core AMX CPU: 2.1x for a ResNet's training step, 1.7x for an
    EfficientNet's inference). Elsewhere bf16 is emulated and slower."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool({"amx_bf16", "avx512_bf16"} & _cpu_flags()) and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


def resolve_precision(precision: str, device) -> str:
    """``precision`` itself, or for ``"auto"``: ``"bf16"`` where :func:`native_bf16`, else ``"fp32"``."""
    if precision == AUTO:
        return "bf16" if native_bf16(device) else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {precision!r}.")
    return precision
