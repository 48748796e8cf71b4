"""The comparison as a list of steps: data, labels, the shared context, the throughput rounds, the accuracy runs,
the ablation, the report. ``results.json`` is rewritten after every run, so an interrupted run keeps what it
measured."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from fkd_hf.labels import load_label_set
from fkd_hf.labels.images import load_images
from fkd_hf.labels.kinds import resolve_k
from fkd_hf.models import create_student, load_teacher, resolve_class_map, student_data_config
from fkd_hf.training import EvalDataset
from fkd_hf.training.builder import eval_label_map

from .._report import machine_info
from ..relabel import load_label_maps
from .labels import (
    PreparedLabels,
    derive_label_set,
    image_keys,
    label_bytes_per_image,
    prepare_data,
    prepare_labels,
    target_cost,
)
from .runs import Context, measure_throughput, run_method, same_run_as, teacher_accuracy
from .settings import MAIN_METHODS, SAME_CROP_METHODS, Settings, parse_ablation

__all__ = ["run_protocol"]


def _eval_set(settings: Settings, validation, class_names: list[str]) -> EvalDataset:
    """The validation images at the student's eval transform, shared by every method."""
    data = student_data_config(create_student(settings.student, class_names), settings.input_size)
    return EvalDataset(
        validation.dataset,
        data["input_size"],
        data["crop_pct"],
        data["interpolation"],
        validation.image_column,
        validation.label_column,
        eval_label_map(validation, class_names),
    )


def make_context(args: argparse.Namespace, settings: Settings, work: Path) -> tuple[Context, PreparedLabels]:
    """The images, the teacher, every label the runs use, and the evaluation set."""
    spec = prepare_data(settings, work)
    images = load_images(spec, split="train")
    validation = load_images(spec, split="validation")
    keys = image_keys(images)
    teacher = load_teacher(settings.teacher)
    class_indices = resolve_class_map(teacher, "auto", images.label_names)
    class_names = list(images.label_names)
    prepared = prepare_labels(args, settings, work, spec, images, keys, teacher, class_indices)
    maps, _ = load_label_maps(prepared.maps_dir)
    generated = prepared.prep_seconds.get("fkd_seconds")  # the teacher's time for vanilla KD's share of the crops
    ctx = Context(
        settings,
        work,
        images,
        keys,
        validation,
        class_names,
        teacher,
        class_indices,
        load_label_set(prepared.main),
        maps,
        prepared.maps_info.map_size,
        _eval_set(settings, validation, class_names),
        prepared.vanilla,
        generated and generated * settings.epochs / prepared.source_meta.stored_crops,
    )
    return ctx, prepared


def _command() -> str:
    argv = sys.argv[2:] if sys.argv[1:2] == ["compare"] else sys.argv[1:]
    return " ".join(["python -m benchmarks compare", *argv])


def new_results(ctx: Context, prepared: PreparedLabels, teacher_top1: float) -> dict:
    """The results record before any run: protocol, machine, label preparation and storage."""
    s, info = ctx.settings, prepared.maps_info
    return {
        "command": _command(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "settings": dataclasses.asdict(s),
        "train_images": len(ctx.images.dataset),
        "val_images": len(ctx.validation.dataset),
        "class_names": ctx.class_names,
        "teacher_top1": teacher_top1,
        "label_prep": prepared.prep_seconds,
        "relabel": {"input_size": info.input_size, "map_size": info.map_size, "k": info.k},
        "storage": {
            "fkd_main": label_bytes_per_image(prepared.main),
            "fkd": prepared.storage,
            "relabel": info.bytes_per_image,
        },
        "throughput": {},
        "runs": {},
        "ablation": [],
        "finished": False,
        "vanilla_kd": "stored" if ctx.vanilla_labels else "online",
        "replay": ctx.labels.metadata.replay,
        "target_cost": [target_cost(s.batch_crops, info.map_size, info.k, c) for c in (len(ctx.class_names), 1000)],
    }


def ablation_run(ctx: Context, prepared: PreparedLabels, spec: str) -> dict:
    """One FKD ablation run on labels cut from the source label set (or why it was skipped)."""
    choice, meta = parse_ablation(spec, ctx.settings), prepared.source_meta
    try:
        k = resolve_k(choice["kind"], choice["k"], len(ctx.class_names))
        if choice["R"] > meta.stored_crops or k > meta.k:
            raise ValueError(f"the label set stores R={meta.stored_crops}, k={meta.k}")
    except ValueError as err:
        return {**choice, "skipped": str(err)}
    name = f"fkd_R{choice['R']}_m{choice['m']}_{choice['kind']}_k{k}"
    path = derive_label_set(
        prepared.source, ctx.work / "labels" / name, ctx.images, ctx.keys, choice["kind"], k, choice["R"]
    )
    spread = choice["layout"] == "spread"
    lanes = {"spread_lanes": choice["lanes"]} if choice["lanes"] else {}
    name += f"_spread{choice['lanes'] or ''}" if spread else ""
    result = run_method(
        ctx, "fkd_spread" if spread else "fkd", labels_dir=path, num_crops=choice["m"], curve=False, fields=lanes
    )
    return {**choice, "k": k, **result, "method": name}


def _same_run(results: dict, name: str, twin: str, students: Path) -> dict:
    """Row ``name`` as the run of row ``twin``, whose settings it shares (its student copied under its own name)."""
    shutil.copytree(students / twin, students / name, dirs_exist_ok=True)
    print(f"[compare] {name}: the same run as {twin} (the same FKD settings)", flush=True)
    return {**results["runs"][twin], "method": name, "same_run_as": twin, "student": str(Path(students.name, name))}


def run_protocol(args: argparse.Namespace, settings: Settings, work: Path, output: Path, started: float) -> dict:
    """Every step of the comparison; returns the finished results (also in ``output``/results.json)."""
    s, load_start = settings, os.getloadavg()[0]
    torch.set_num_threads(s.prep_threads)
    print(
        f"[compare] {s.mode} mode; {s.prep_threads} torch thread(s) to make labels, then {s.threads} with "
        f"{s.workers} loader worker(s) to train; work dir {work}",
        flush=True,
    )
    ctx, prepared = make_context(args, s, work)
    results = new_results(ctx, prepared, teacher_accuracy(ctx))
    torch.set_num_threads(s.threads)
    output.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every run, so an interrupted run leaves what it measured
        results["wall_seconds"] = time.perf_counter() - started
        results["load"] = [load_start, os.getloadavg()[0]]
        (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    methods = args.methods or list(MAIN_METHODS + (SAME_CROP_METHODS if s.controls else ()))
    # Untimed warm-up (a few plain steps), so the first timed method does not pay for one-off start-up costs.
    run_method(ctx, "plain", curve=False, max_steps=3)
    results["throughput"] = measure_throughput(ctx, methods)
    save()
    students = output / "students"  # each method's final student, a safetensors folder timm loads
    for name in methods:
        twin = same_run_as(ctx, name, [row for row, run in results["runs"].items() if "same_run_as" not in run])
        if twin is None:
            results["runs"][name] = run_method(ctx, name, save_to=students / name)
        else:
            results["runs"][name] = _same_run(results, name, twin, students)
        save()
    for spec in [] if args.no_ablation else s.ablation:
        results["ablation"].append(ablation_run(ctx, prepared, spec))
        save()
    results["finished"] = True
    save()
    return results
