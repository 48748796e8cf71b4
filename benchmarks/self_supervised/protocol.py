"""The benchmark as a list of steps: per dataset, the photos, FKD's two label sets, the three trained rows and the
teacher's; the results (rewritten after every row, so an interrupted run keeps what it measured)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from .._report import machine_info
from .report import goals
from .runs import generate_targets, make_context, teacher_row, train_row
from .settings import DATASETS, FKD_ROWS, Settings

__all__ = ["new_results", "run_dataset", "save_results"]


def _command() -> str:
    argv = sys.argv[2:] if sys.argv[1:2] == ["ssl"] else sys.argv[1:]
    return " ".join(["python -m benchmarks ssl", *argv])


def new_results(settings: Settings) -> dict:
    """The results record before any row: protocol and machine (with the load average at the start)."""
    return {
        "benchmark": "ssl",
        "command": _command(),
        "mode": settings.mode,
        "settings": dataclasses.asdict(settings),
        "machine": {**machine_info(), "load_average": {"start": list(os.getloadavg())}},
        "datasets": {},
        "methods": {},
        "goals": [],
        "finished": False,
    }


def save_results(results: dict, output: Path, started: float) -> None:
    """Updates the derived fields (the top-level ``methods`` are imagewoof-mini's, else the first dataset's; the
    goals; wall time; load at the end) and writes ``output``/ssl.json."""
    datasets = results["datasets"]
    main = datasets.get(DATASETS[0]) or next(iter(datasets.values()), {})
    results["methods"] = main.get("methods", {})
    results["goals"] = goals(results)
    results["wall_seconds"] = time.perf_counter() - started
    results["machine"]["load_average"]["end"] = list(os.getloadavg())
    output.mkdir(parents=True, exist_ok=True)
    (output / "ssl.json").write_text(json.dumps(results, indent=2) + "\n")


def run_dataset(settings: Settings, folder: str, work: Path, output: Path, results: dict, save) -> None:
    """Every row on the photos of ``folder``, in ``results["datasets"][<folder name>]``; ``save()`` after each."""
    ctx = make_context(settings, folder, work, output / Path(folder).name)
    entry = results["datasets"][ctx.name] = {
        "dataset": folder,
        "train_images": len(ctx.images.dataset),
        "val_images": len(ctx.validation.dataset),
        "methods": {},
    }
    print(f"[ssl] {ctx.name}: {entry['train_images']} training, {entry['val_images']} validation photos", flush=True)
    labels = {row: generate_targets(ctx, row) for row in FKD_ROWS}
    entry["labels"] = {
        row: {"seconds": made.seconds, "cpu_seconds": made.cpu_seconds, "crops": made.crops, "bytes": made.bytes}
        for row, made in labels.items()
    }
    for row in FKD_ROWS:
        entry["methods"][row] = train_row(ctx, row, labels[row])
        save()
    embedding = labels["fkd_embedding"]  # online: its target type and crop ranges, never its stored targets
    entry["methods"]["online"] = train_row(ctx, "online", embedding)
    save()
    entry["methods"]["teacher"] = teacher_row(ctx, embedding.precision)
    save()
