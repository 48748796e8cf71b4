"""Wall time of ``fkd-hf demo`` as a newcomer runs it: a fresh process with cold caches, one run per case.

    python -m benchmarks demo_time                     # the default run and the imagenette-mini --compare run
    python -m benchmarks demo_time --cases imagewoof   # the imagewoof-mini (dog breeds) --compare run
    python -m benchmarks demo_time --cases default     # the default run only (about a minute)
    python -m benchmarks demo_time --publish           # also write the table into benchmarks/RESULTS.md

Cases: ``default`` (`fkd-hf demo`: the sample photos; target under 5 minutes on 2 CPU cores), ``imagenette`` and
``imagewoof`` (`fkd-hf demo --dataset imagefolder:FOLDER --teacher efficientnet-lite0 --compare` on imagenette-mini
or imagewoof-mini; target under 20 minutes, FKD's top-1 above plain training's by more than two paired standard
errors). Each run gets empty ``FKD_HF_CACHE`` and ``HF_HOME`` folders, so the
photo folder and the datasets cache are built from scratch as after a fresh install.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from ._report import RESULTS_MD, machine_info, replace_block

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS = {"imagenette": SHARED_DATA / "imagenette-mini", "imagewoof": SHARED_DATA / "imagewoof-mini"}
TARGET_MINUTES = {"default": 5, "imagenette": 20, "imagewoof": 20}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=sorted(TARGET_MINUTES), default=["default", "imagenette"])
    for name, folder in DATASETS.items():
        parser.add_argument(f"--{name}", default=str(folder), help=f"The {folder.name} folder (train/ and val/).")
    parser.add_argument(
        "--extra-args",
        default="",
        help="More `fkd-hf demo` options for every case, e.g. '--precision fp32' (later options override the case's).",
    )
    parser.add_argument("--publish", action="store_true", help="Also update benchmarks/RESULTS.md.")
    return parser


def demo_arguments(case: str, folder: str | None, extra: str = "") -> list[str]:
    """The `fkd-hf demo` options of ``case``: none for the default run, else ``--compare`` on ``folder``."""
    arguments = (
        []
        if case == "default"
        else ["--dataset", f"imagefolder:{folder}", "--teacher", "efficientnet-lite0", "--compare"]
    )
    return arguments + shlex.split(extra)


def run_case(case: str, arguments: list[str], work: Path) -> dict:
    """Runs one case in a fresh process with cold caches; returns its wall time and the demo's results."""
    output = work / case
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "FKD_HF_CACHE": str(work / f"{case}-fkd-cache"),
        "HF_HOME": str(work / f"{case}-hf-home"),
    }
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "fkd_hf", "demo", *arguments, "--output_dir", str(output)], env=env, check=True
    )
    seconds = time.perf_counter() - start
    result = json.loads((output / "demo_result.json").read_text())
    runs = result["runs"]
    return {
        "case": case,
        "command": " ".join(["fkd-hf", "demo", *arguments]),
        "seconds": seconds,
        "target_minutes": TARGET_MINUTES[case],
        "mode": result["mode"],
        "teacher_top1": result["teacher_top1"],
        "fkd_top1": runs["fkd"]["top1"],
        "plain_top1": runs["plain"]["top1"] if "plain" in runs else None,
        "difference": result.get("fkd_minus_plain"),
        "difference_se": result.get("fkd_minus_plain_se"),
        "load_average": result.get("load_average"),
    }


def report(rows: list[dict], machine: dict) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    lines = [
        f"Command: `python -m benchmarks demo_time --cases {' '.join(row['case'] for row in rows)}`",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}; {versions}.",
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Each run: a fresh process, cold caches.",
        "",
        "| run | wall time | target | FKD student | plain student | FKD - plain (paired standard error) | teacher "
        "| load average at the end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        score = "agreement with the teacher" if row["mode"] == "photos" else "top-1"
        plain = f"{100 * row['plain_top1']:.1f} %" if row["plain_top1"] is not None else "-"
        teacher = "reference" if row["mode"] == "photos" else f"{100 * row['teacher_top1']:.1f} % top-1"
        load = f"{row['load_average']:.1f}" if row["load_average"] is not None else "-"
        difference = (
            "-"
            if row.get("difference") is None
            else f"{100 * row['difference']:+.1f} points ({100 * row['difference_se']:.1f})"
        )
        lines.append(
            f"| `{row['command']}` | {row['seconds'] / 60:.1f} min | < {row['target_minutes']} min | "
            f"{100 * row['fkd_top1']:.1f} % {score} | {plain} | {difference} | {teacher} | {load} |"
        )
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="fkd-demo-time-") as work:
        rows = [
            run_case(case, demo_arguments(case, getattr(args, case, None), args.extra_args), Path(work))
            for case in args.cases
        ]
    text = report(rows, machine_info())
    print(text)
    if args.publish:
        replace_block(RESULTS_MD, "demo_time", text)
