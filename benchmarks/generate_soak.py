"""Generation survives SIGKILL: kill `fkd-hf generate` at random moments, resume it, compare with an uninterrupted run.

    python -m benchmarks.generate_soak --kills 5 --output benchmarks/results/generate_soak.md
    python -m benchmarks.generate_soak --dataset imagefolder:photos --teacher path/to/teacher --kills 2

One uninterrupted run in a fresh folder gives the reference and its wall time T. The same command then runs in a
second fresh folder and is killed with SIGKILL at `--kills` moments, each drawn uniformly from (0, T) after that
attempt starts (an attempt that finishes first ends the series), and is rerun after each kill; a last rerun
finishes it. After each kill the folder must not pass for finished (`load_label_set` refuses it). The result must
be byte-identical to the reference, file by file. The figures are written as a markdown section.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "imagenette-mini" / "train"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=f"imagefolder:{DEFAULT_DATA}")
    parser.add_argument("--teacher", default="efficientnet-lite0")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs at random moments.")
    parser.add_argument("--stored-crops", type=int, default=8)
    parser.add_argument("--num-shards", type=int, default=24, help="More shards: more resumable points.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill moments.")
    parser.add_argument("--work-dir", default=None, help="Where the two label sets go (default: a temporary folder).")
    parser.add_argument("--output", default=None, help="Markdown file to write the figures to.")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="More `fkd-hf generate` options.")
    return parser


def generate_command(args: argparse.Namespace, output_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fkd_hf",
        "generate",
        "--dataset",
        args.dataset,
        "--teacher",
        args.teacher,
        "--output_dir",
        str(output_dir),
        "--stored_crops",
        str(args.stored_crops),
        "--num_shards",
        str(args.num_shards),
        "--batch_size",
        str(args.batch_size),
        "--num_workers",
        str(args.num_workers),
        *args.extra,
    ]


def run(command: list[str], kill_after: float | None = None) -> tuple[float, bool]:
    """Runs ``command``; with ``kill_after``, SIGKILLs it that many seconds in. ``(seconds, killed)``."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = process.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.kill()  # SIGKILL: no handler, no cleanup
        process.wait()
        return time.perf_counter() - start, True
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{err[-3000:]}")
    return time.perf_counter() - start, False


def differing_files(reference: Path, other: Path) -> list[str]:
    """The files (relative paths) that differ between two folders, or that only one of them has."""

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    a, b = files(reference), files(other)
    return sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))


def _state(output_dir: Path) -> dict:
    """What a kill left: shards, temporary files, and whether loading refuses the folder as unfinished."""
    from fkd_hf import load_label_set

    data = output_dir / "data"
    shards = len(list(data.glob("shard-*.parquet"))) if data.is_dir() else 0
    temporary = len(list(data.glob(".*.tmp"))) if data.is_dir() else 0
    try:
        load_label_set(output_dir)
        refused = False
    except (FileNotFoundError, ValueError):
        refused = True
    return {"shards": shards, "temporary": temporary, "refused": refused}


def soak(args: argparse.Namespace, work: Path) -> dict:
    """The reference run, the killed and resumed one, and their comparison (see the module docstring)."""
    rng = np.random.default_rng(args.seed)
    reference_s, _ = run(generate_command(args, work / "reference"))
    command = generate_command(args, work / "killed")
    kills, total_s = [], 0.0
    for _ in range(args.kills):
        moment = float(rng.uniform(0, reference_s))
        seconds, killed = run(command, kill_after=moment)
        total_s += seconds
        if not killed:
            break
        kills.append({"moment_s": moment, **_state(work / "killed")})
    seconds, _ = run(command)
    total_s += seconds
    return {
        "reference_s": reference_s,
        "kills": kills,
        "resumed_total_s": total_s,
        "last_run_s": seconds,
        "shards": _state(work / "reference")["shards"],
        "differing": differing_files(work / "reference", work / "killed"),
    }


def report(args: argparse.Namespace, figures: dict) -> str:
    identical = "yes" if not figures["differing"] else f"**no**: {', '.join(figures['differing'])}"
    refused = all(kill["refused"] for kill in figures["kills"])
    machine = (
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}. `fkd-hf "
        f"generate` on {args.dataset} with {args.teacher}, R = {args.stored_crops}, {figures['shards']} shards, "
        f"batch {args.batch_size} crops, {args.num_workers} decoding threads; kill moments uniform in (0, T) after "
        f"each start, seed {args.seed}."
    )
    lines = [
        "### Generation killed with SIGKILL and resumed",
        "",
        machine,
        "",
        "| kill | moment (s) | shards on disk after it | temporary files left | unfinished set refused |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {i + 1} | {kill['moment_s']:.1f} | {kill['shards']} | {kill['temporary']} | "
        f"{'yes' if kill['refused'] else '**no**'} |"
        for i, kill in enumerate(figures["kills"])
    ]
    overhead = figures["resumed_total_s"] - figures["reference_s"]
    timing = (
        f"- uninterrupted run T: {figures['reference_s']:.1f} s; killed and resumed, all attempts: "
        f"{figures['resumed_total_s']:.1f} s ({overhead:+.1f} s, {len(figures['kills'])} kills); the last "
        f"rerun: {figures['last_run_s']:.1f} s"
    )
    lines += [
        "",
        timing,
        f"- every unfinished folder refused as unfinished by `load_label_set`: {'yes' if refused else '**no**'}",
        f"- result byte-identical to the uninterrupted run (every file): {identical}",
    ]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        args.work_dir = args.work_dir or tmp
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        text = report(args, soak(args, work))
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    return text


if __name__ == "__main__":
    main(make_parser().parse_args())
