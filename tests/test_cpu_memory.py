"""keep_freed_memory: freed blocks are reused instead of page-faulted back in; the opt-out leaves malloc alone."""

import json
import os
import platform
import subprocess
import sys

import pytest

import fkd_hf.cpu_memory

MODULE = fkd_hf.cpu_memory.__file__

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)

# Allocates, fills and frees a 64 MiB tensor ten times after a warm-up; prints what keep_freed_memory returned and
# the page faults of those ten.
# The module is loaded from its file: importing the fkd_hf package (transformers, datasets) would take seconds.
PROBE = """
import importlib.util, json, resource, sys, torch
spec = importlib.util.spec_from_file_location("cpu_memory", sys.argv[1])
cpu_memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cpu_memory)
kept = cpu_memory.keep_freed_memory()
for _ in range(20):  # until the heap has grown to hold the pattern (its fragmentation takes several rounds)
    torch.empty(16 * 2**20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.empty(16 * 2**20).fill_(1.0)
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _probe(setting: str) -> dict:
    env = {**os.environ, "FKD_HF_KEEP_FREED_MEMORY": setting, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(MODULE)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_freed_memory_is_reused_without_page_faults():
    as_is, kept = _probe("0"), _probe("1")
    assert as_is["kept"] is False and kept["kept"] is True
    pages = 10 * 64 * 2**20 // 4096  # what ten fresh 64 MiB blocks fault in
    assert as_is["faults"] > pages // 2
    assert kept["faults"] < pages // 10  # measured: 0 against 163,840
