"""The demo's summary: timed stages, the paired FKD-minus-plain difference, and the Markdown of ``summary.md``."""

from __future__ import annotations

import dataclasses
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..version import __version__
from .config import DemoConfig
from .output import CURVES_FILE, LABELS_DIR, OUTPUTS, STUDENT_DIR

__all__ = ["Stage", "device_name", "paired_difference", "summary_markdown"]

RUN_LABELS = {"fkd": "FKD student", "plain": "plain student"}


@dataclasses.dataclass
class Stage:
    """One timed stage of the demo."""

    name: str
    seconds: float
    work: float = 0.0  # items processed
    unit: str = ""  # what an item is ("crops", "images")
    detail: str = ""
    busy_seconds: float | None = None  # the part of ``seconds`` the throughput counts (default: all)

    @property
    def throughput(self) -> float | None:
        seconds = self.busy_seconds if self.busy_seconds is not None else self.seconds
        return self.work / seconds if self.work and seconds > 0 else None


def paired_difference(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> tuple[float, float]:
    """Top-1 of A minus top-1 of B on the same items, and the standard error of that difference: both models see
    the same items, so only the items where exactly one is right count (b, c: A alone right, B alone right;
    var = (b + c - (b - c)^2 / n) / n^2)."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n = len(a)
    if n == 0 or len(b) != n:
        raise ValueError("paired_difference needs two equally long, non-empty lists of per-item results.")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    return (only_a - only_b) / n, math.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n


def device_name(device: str) -> str:
    """The accelerator's name, or the CPU's with its core count."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    if device != "cpu":
        return device
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _rate(stage: Stage) -> str:
    rate = stage.throughput
    return "" if rate is None else f"{rate:,.1f} {stage.unit}/s"


def _setting_lines(config: DemoConfig, description: str, eval_name: str, metrics: Mapping) -> list[str]:
    classes = metrics["num_classes"]
    restricted = (
        f", restricted to the {classes} classes of the data" if metrics["restricted"] else f", all {classes} classes"
    )
    lines = [f"# fkd-hf demo ({__version__})", "", f"- Data: {description}."]
    lines.append(
        f"- Teacher: `{metrics['teacher_name']}`{restricted}. Student: `{config.student}` at "
        f"{config.input_size} px, from scratch; R = {config.stored_crops} stored crops per image (teacher "
        f"temperature {config.temperature:g}), m = {config.num_crops} per pass, {config.fkd_epochs:g} FKD "
        f"epochs, {config.batch_size} images per step, {config.precision}."
    )
    lines.append(f"- Evaluated on: {eval_name}.")
    if metrics["mode"] == "photos":
        lines += [
            "- **What this measures**: 20 photos are far too few to measure accuracy on new photos. The score is the "
            "student's top-1 *agreement with the teacher* on crops of the same photos that no training step used "
            "(another crop seed): how well FKD transfers the teacher's predictions to new views of seen photos. It "
            "is not accuracy. For accuracy, run with `--dataset` (e.g. `imagefolder:PATH` with train/ and val/).",
            f"- The teacher's top-1 on the centre crop of each photo, against the photo's ImageNet label: "
            f"{pct(metrics['teacher_top1'])} over the {classes} classes"
            + (
                f" ({pct(metrics['teacher_top1_all'])} over all {metrics['teacher_classes']})"
                if metrics.get("teacher_top1_all") is not None
                else ""
            )
            + f". On the held-out crops its top-1 is the photo's label for {pct(metrics['teacher_crop_top1'])}: "
            "the most agreement a student trained on the photos' labels alone can reach.",
        ]
    if metrics.get("plain_source"):
        lines.append(
            f"- Plain student: the same student, initialisation, optimizer, crops per step and crops in all "
            f"as FKD's (which replays m = {config.num_crops} crops of each decoded image), trained on "
            f"{metrics['plain_source']}."
        )
    return lines


def _score_lines(student: str, metrics: Mapping, runs: Mapping) -> list[str]:
    photos, teacher = metrics["mode"] == "photos", f"teacher `{metrics['teacher_name']}`"
    if photos:
        lines = [
            "",
            "| model | agreement with the teacher (held-out crops) |",
            "|---|---|",
            f"| {teacher} | 100 % (reference) |",
        ]
        lines += [f"| {RUN_LABELS[key]} `{student}` | {pct(run['top1'])} |" for key, run in runs.items()]
    else:
        lines = [
            "",
            "| model | top-1 | agreement with the teacher (top-1) |",
            "|---|---|---|",
            f"| {teacher} | {pct(metrics['teacher_top1'])} | 100 % (reference) |",
        ]
        lines += [
            f"| {RUN_LABELS[key]} `{student}` | {pct(run['top1'])} | {pct(run['agreement'])} |"
            for key, run in runs.items()
        ]
    if "fkd_minus_plain" in metrics:
        difference, error = 100 * metrics["fkd_minus_plain"], 100 * metrics["fkd_minus_plain_se"]
        lines += [
            "",
            f"FKD minus plain: {difference:+.1f} points, {difference / error if error else float('inf'):.1f} "
            f"standard errors ({error:.1f} points, paired: the same {metrics['eval_items']} "
            f"{'crops' if photos else 'images'}, counting those where exactly one student is right).",
        ]
    return lines


def _stage_lines(stages: Sequence[Stage], metrics: Mapping, evals_per_run: int) -> list[str]:
    lines = ["", "| stage | time | throughput |", "|---|---|---|"]
    for stage in stages:
        detail = f": {stage.detail}" if stage.detail else ""
        lines.append(f"| {stage.name}{detail} | {_duration(stage.seconds)} | {_rate(stage)} |")
    lines.append(f"| **total** | **{_duration(metrics['total_seconds'])}** | |")
    load = f", load average {metrics['load_average']:.1f} at the end" if metrics.get("load_average") is not None else ""
    return lines + [
        "",
        f"Device: {metrics['device']}, {metrics['threads']} threads{load}. Training times include "
        f"{evals_per_run} evaluations each; training throughput leaves them out.",
    ]


def _output_lines(final: Path, curves: bool) -> list[str]:
    lines = ["", "Outputs:", ""]
    for name, description in OUTPUTS.items():
        if name == CURVES_FILE and not curves:
            lines.append(f"- no `{final / name}`: matplotlib is not installed (pip install 'fkd-hf[demo]')")
        else:
            lines.append(f"- `{final / name}`: {description}")
    return lines + [
        "",
        "Push them to the Hub (HF_TOKEN or `hf auth login`):",
        "",
        "```bash",
        f"fkd-hf push-labels {final / LABELS_DIR} --repo-id <user>/fkd-demo-labels",
        f"fkd-hf push-student {final / STUDENT_DIR} --repo-id <user>/fkd-demo-student --label-set "
        "<user>/fkd-demo-labels",
        "```",
    ]


def summary_markdown(
    config: DemoConfig,
    description: str,
    eval_name: str,
    metrics: Mapping,
    stages: Sequence[Stage],
    final: Path,
    curves: bool,
    evals_per_run: int,
) -> str:
    """The Markdown of ``summary.md`` from the figures in ``metrics`` (``demo_result.json``)."""
    lines = _setting_lines(config, description, eval_name, metrics)
    lines += _score_lines(config.student, metrics, metrics["runs"])
    lines += _stage_lines(stages, metrics, evals_per_run)
    lines += _output_lines(final, curves)
    return "\n".join(lines) + "\n"
