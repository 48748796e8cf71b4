"""Faster CPU runs: keep freed memory in the process instead of handing it back to the OS after every batch.

glibc serves each large block (a batch of activations) with fresh pages from the OS and returns them on free, so
every forward and backward pass page-faults its memory back in, zeroed by the kernel. On a 2-core CPU that kernel
work took about half the time of efficientnet-lite0's forward pass at batch 64 (24.2 -> 51.3 images/s with freed
memory kept) and a sixth of a small student's training step (1.2x faster; ``python -m benchmarks cpu_memory``).
The cost: the process keeps the memory it once used until it exits, and the heap's fragmentation adds to the
peak (measured: +3-14%, benchmarks/RESULTS.md).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform

__all__ = ["DISABLE_ENV", "keep_freed_memory"]

DISABLE_ENV = "FKD_HF_KEEP_FREED_MEMORY"  # set to 0 to leave the allocator as it is
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h
_NEVER = -1  # M_TRIM_THRESHOLD -1: never hand the top of the heap back (mallopt(3))


@functools.cache
def keep_freed_memory() -> bool:
    """Makes glibc's ``malloc`` serve large blocks from its heap and keep freed memory there for reuse.

    Process-wide and once per process; a no-op (returning False) where an accelerator does the compute, outside
    Linux with glibc, or with ``FKD_HF_KEEP_FREED_MEMORY=0``. The ``fkd-hf`` commands call it on start.
    """
    if os.environ.get(DISABLE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    import torch

    if torch.accelerator.is_available():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the running process's symbols: glibc is linked in already
    except AttributeError:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER))
