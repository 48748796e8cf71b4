"""Start-up time of ``import fkd_hf`` and the ``fkd-hf`` commands' ``--help``, and the heavy modules each imports.

    python -m benchmarks startup                     # 7 fresh processes per command
    python -m benchmarks startup --publish           # also write the table into benchmarks/RESULTS.md

Each command runs in ``--repeats`` fresh processes after one untimed run (which fills the OS file cache and the
bytecode caches); the table shows the median wall time from spawn to exit, and the interpreter's own start-up
(``python -c pass``) for scale. One more run with ``PYTHONPROFILEIMPORTTIME=1`` lists which heavy modules (torch,
transformers, datasets, timm) the command imported. ``fkd-hf`` is the console script installed next to this Python.
Goal: ``fkd-hf --help`` under 0.5 s. Writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ._report import RESULTS_DIR, RESULTS_MD, machine_info, replace_block, write_json

HEAVY = ("torch", "transformers", "datasets", "timm")
# name -> (the command as shown, its arguments after the program: python or the fkd-hf script)
COMMANDS = {
    "python": ('python -c "pass"', ("python", "-c", "pass")),
    "import": ('python -c "import fkd_hf"', ("python", "-c", "import fkd_hf")),
    "help": ("fkd-hf --help", ("fkd-hf", "--help")),
    "generate": ("fkd-hf generate --help", ("fkd-hf", "generate", "--help")),
    "demo": ("fkd-hf demo --help", ("fkd-hf", "demo", "--help")),
    "push-labels": ("fkd-hf push-labels --help", ("fkd-hf", "push-labels", "--help")),
    "train": ("fkd-hf train --help", ("fkd-hf", "train", "--help")),
}
TARGETS = {"help": 0.5}  # seconds


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="Timed fresh processes per command (the median shows).")
    parser.add_argument(
        "--commands", nargs="+", choices=list(COMMANDS), default=list(COMMANDS), help="Which commands to time."
    )
    parser.add_argument("--output", default=str(RESULTS_DIR / "startup.json"), help="Where the JSON results go.")
    parser.add_argument("--publish", action="store_true", help="Also update benchmarks/RESULTS.md.")
    return parser


def fkd_hf_script() -> str:
    """The ``fkd-hf`` console script of this Python's environment (else the first on PATH)."""
    script = Path(sys.executable).with_name("fkd-hf")
    found = str(script) if script.is_file() else shutil.which("fkd-hf")
    if found is None:
        raise SystemExit("No fkd-hf command next to this Python or on PATH: install the package (pip install -e .).")
    return found


def _argv(name: str) -> list[str]:
    program, *rest = COMMANDS[name][1]
    return [sys.executable if program == "python" else fkd_hf_script(), *rest]


def heavy_imports(importtime_log: str) -> list[str]:
    """The heavy top-level packages named in the ``-X importtime`` output ``importtime_log`` (in HEAVY's order)."""
    names = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in importtime_log.splitlines()
        if line.startswith("import time:")
    }
    return [name for name in HEAVY if name in names]


def measure(name: str, repeats: int) -> dict:
    """Wall times of ``repeats`` fresh processes of command ``name`` (after one untimed), and its heavy imports."""
    argv = _argv(name)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPROFILEIMPORTTIME"}
    subprocess.run(argv, env=env, capture_output=True, check=True)  # untimed: caches
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        seconds.append(time.perf_counter() - start)
    profiled = subprocess.run(
        argv, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True, check=True
    )
    return {
        "name": name,
        "command": COMMANDS[name][0],
        "argv": argv,
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "heavy_modules": heavy_imports(profiled.stderr),
        "target_seconds": TARGETS.get(name),
    }


def report(rows: list[dict], machine: dict, repeats: int) -> str:
    lines = [
        "Command: `python -m benchmarks startup`",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores; Python {machine['python']}; fkd_hf "
        f"{machine['versions']['fkd_hf']}. Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Median of "
        f"{repeats} fresh processes per command, after one untimed run; load average {os.getloadavg()[0]:.1f}.",
        "",
        "| command | median wall time (min - max) | heavy modules imported | target |",
        "|---|---|---|---|",
    ]
    for row in rows:
        target = row["target_seconds"]
        met = "" if target is None else f"< {target:g} s: {'met' if row['median_seconds'] < target else 'missed'}"
        lines.append(
            f"| `{row['command']}` | {row['median_seconds']:.2f} s ({min(row['seconds']):.2f} - "
            f"{max(row['seconds']):.2f}) | {', '.join(row['heavy_modules']) or 'none'} | {met} |"
        )
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> dict:
    rows = [measure(name, args.repeats) for name in args.commands]
    machine = machine_info()
    text = report(rows, machine, args.repeats)
    results = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine,
        "repeats": args.repeats,
        "load_average": os.getloadavg()[0],
        "rows": rows,
    }
    write_json(Path(args.output), results)
    print(text)
    if args.publish:
        replace_block(RESULTS_MD, "startup", text)
    return results


if __name__ == "__main__":
    main(make_parser().parse_args())
