"""What keeping freed memory (``fkd_hf.cpu_memory.keep_freed_memory``) is worth on this CPU.

    python -m benchmarks cpu_memory
    python -m benchmarks cpu_memory --publish        # also write the table into benchmarks/RESULTS.md

Each case runs in fresh processes that differ only in ``FKD_HF_KEEP_FREED_MEMORY`` (0: the allocator as it is;
1: freed memory kept), the two settings alternating for ``--rounds`` rounds; the table shows each setting's median.
Cases: the teacher's forward pass (efficientnet-lite0 at 224 px, batch 64, the generation default) and a student's
training step (resnet10t at 64 px, 256 crops: the demo's; mobilenetv3_small_050 at 112 px, 120 crops: the
comparison's). Reported: throughput, system CPU seconds and minor page faults per batch, and
the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime, timezone

from ._report import RESULTS_MD, machine_info, replace_block

CASES = {
    "teacher efficientnet-lite0, 224 px, batch 64, inference": ("teacher", "efficientnet-lite0", 224, 64),
    "student resnet10t, 64 px, 256 crops, training step": ("student", "resnet10t", 64, 256),
    "student mobilenetv3_small_050, 112 px, 120 crops, training step": ("student", "mobilenetv3_small_050", 112, 120),
}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="Timed seconds per process.")
    parser.add_argument("--rounds", type=int, default=3, help="Processes per case and setting; the median is shown.")
    parser.add_argument("--publish", action="store_true", help="Also update benchmarks/RESULTS.md.")
    return parser


def measure(kind: str, model_name: str, size: int, batch: int, seconds: float) -> dict:
    """Images or crops per second of one case in this process, with its system time and page faults per batch and
    the process's peak memory."""
    import resource
    import time

    import timm
    import torch

    from fkd_hf.cpu_memory import keep_freed_memory

    kept = keep_freed_memory()
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    if kind == "teacher":
        from fkd_hf import load_teacher

        model = load_teacher(model_name).model.eval()

        def step():
            with torch.inference_mode():
                model(x)
    else:
        model = timm.create_model(model_name, num_classes=10).to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters())
        target = torch.randint(0, 10, (batch,))

        def step():
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), target).backward()
            optimizer.step()

    step()  # warm-up
    before, start, batches = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        batches += 1
    elapsed, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {
        "kept": kept,
        "items_per_s": batches * batch / elapsed,
        "sys_s_per_batch": (after.ru_stime - before.ru_stime) / batches,
        "faults_per_batch": (after.ru_minflt - before.ru_minflt) / batches,
        "peak_rss_mib": after.ru_maxrss / 1024,
    }


def run_fresh(case: tuple, seconds: float, keep: bool) -> dict:
    env = {**os.environ, "FKD_HF_KEEP_FREED_MEMORY": "1" if keep else "0"}
    code = f"import json; from benchmarks.cpu_memory import measure; print(json.dumps(measure(*{case!r}, {seconds})))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(rows: list[tuple[str, dict, dict]], machine: dict, rounds: int) -> str:
    lines = [
        "Command: `python -m benchmarks cpu_memory`",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores; torch {machine['versions']['torch']}. "
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Median of {rounds} fresh processes per cell, the "
        "two settings alternating.",
        "",
        "| case | allocator as it is | freed memory kept | speed-up | system s per batch (as is -> kept) | "
        "page faults per batch (as is -> kept) | peak memory (as is -> kept) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, plain, kept in rows:
        unit = "img/s" if name.startswith("teacher") else "crops/s"
        lines.append(
            f"| {name} | {plain['items_per_s']:.1f} {unit} | {kept['items_per_s']:.1f} {unit} | "
            f"{kept['items_per_s'] / plain['items_per_s']:.2f}x | {plain['sys_s_per_batch']:.3f} -> "
            f"{kept['sys_s_per_batch']:.3f} | {plain['faults_per_batch']:,.0f} -> {kept['faults_per_batch']:,.0f} | "
            f"{plain['peak_rss_mib']:,.0f} -> {kept['peak_rss_mib']:,.0f} MiB |"
        )
    return "\n".join(lines) + "\n"


def _median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda run: run["items_per_s"])[len(runs) // 2]


def main(args: argparse.Namespace) -> None:
    rows = []
    for name, case in CASES.items():
        runs = {False: [], True: []}
        for _ in range(args.rounds):  # interleaved, so a slow spell of a shared machine hits both settings
            for keep in (False, True):
                runs[keep].append(run_fresh(case, args.seconds, keep))
        if any(run["kept"] for run in runs[False]) or not all(run["kept"] for run in runs[True]):
            raise RuntimeError("keep_freed_memory does not apply here (not Linux with glibc, or an accelerator).")
        rows.append((name, _median_run(runs[False]), _median_run(runs[True])))
    text = report(rows, machine_info(), args.rounds)
    print(text)
    if args.publish:
        replace_block(RESULTS_MD, "cpu_memory", text)
