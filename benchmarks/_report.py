"""What every benchmark shares to publish its figures: the machine it ran on, and its block of RESULTS.md.

A benchmark's published section sits between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in
benchmarks/RESULTS.md; :func:`replace_block` rewrites it in place (the prose around it is kept) and machine-readable
results go to benchmarks/results/NAME.json.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

__all__ = ["BENCH_DIR", "RESULTS_MD", "RESULTS_DIR", "machine_info", "replace_block", "publish", "write_json"]

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"
RESULTS_DIR = BENCH_DIR / "results"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU, cores, torch threads, OS, Python and the versions of the libraries the benchmarks measure."""
    import accelerate
    import datasets
    import timm
    import torch
    import torchvision
    import transformers

    import fkd_hf

    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "fkd_hf": fkd_hf.__version__,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "timm": timm.__version__,
            "transformers": transformers.__version__,
            "datasets": datasets.__version__,
            "accelerate": accelerate.__version__,
        },
    }


def replace_block(results_md: Path, name: str, block: str) -> None:
    """Writes ``block`` between the markers ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` of ``results_md``
    (appended with new markers when they are missing)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = results_md.read_text() if results_md.exists() else ""
    block = f"{begin}\n{block}{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + f"\n\n{block}\n"
    results_md.write_text(text)


def publish(
    name: str,
    block: str,
    image: Path | None = None,
    image_name: str | None = None,
    alt: str = "",
    results_md: Path | None = None,
) -> None:
    """Replaces block ``name`` of RESULTS.md (or ``results_md``); with ``image``, copies it next to the file as
    ``image_name`` and shows it below the block (``alt``: its alternative text)."""
    results_md = RESULTS_MD if results_md is None else results_md
    if image is not None:
        target = results_md.parent / (image_name or image.name)
        shutil.copyfile(image, target)
        block += f"\n![{alt or name}]({target.name})\n"
    replace_block(results_md, name, block)


def write_json(path: Path, data: dict) -> Path:
    """Writes ``data`` as indented JSON (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
