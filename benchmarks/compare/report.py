"""The comparison's markdown report, rendered from a results.json (finished or not), and the issue's targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fkd_hf.demo.summary import paired_difference

from .cost import whole_run_cpu
from .settings import DATASET_PRESETS, MAIN_METHODS, METHOD_NAMES, SAME_CROP_METHODS, Settings

__all__ = ["reference", "render_report", "targets_check", "paired", "summary_json"]


def reference(results: dict) -> str:
    """The method every other is paired with and the targets judge: FKD as shipped (FKD spread in runs made before
    that row existed)."""
    return "fkd_default" if "fkd_default" in results["runs"] else "fkd_spread"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _binomial_se(p: float, n: int) -> float:
    """The standard error of a top-1 ``p`` measured on ``n`` images."""
    return (p * (1 - p) / max(n, 1)) ** 0.5


def _std_error(runs: dict, n_val: int) -> str:
    """The binomial standard error, in points, of a top-1 measured on ``n_val`` images, at the runs' mean top-1."""
    if not runs:
        return "-"
    p = float(np.mean([run["top1"] for run in runs.values()]))
    return f"{100 * _binomial_se(p, n_val):.1f}"


def _speeds(results: dict) -> tuple[dict, dict]:
    """crops/s per method: steady state (best interleaved round) and over the whole accuracy run."""
    steady = results.get("throughput", {}).get("best", {})
    whole = {name: run["crops_per_second"] for name, run in results["runs"].items()}
    return steady, whole


def paired(results: dict, name: str, against: str | None = None) -> tuple[float, float] | None:
    """``against`` (default: :func:`reference`) minus ``name`` in top-1 on the same validation images, and its
    paired standard error (None when either run lacks per-image results)."""
    runs, against = results["runs"], against or reference(results)
    if name == against or "correct" not in runs.get(name, {}) or "correct" not in runs.get(against, {}):
        return None
    hits = [[c == "1" for c in runs[key]["correct"]] for key in (against, name)]
    return paired_difference(*hits)


def _speed_checks(results: dict) -> list[tuple[str, bool, str]]:
    steady, whole = _speeds(results)
    speed = steady if all(name in steady for name in ("fkd", "vanilla_kd", "relabel", "plain")) else whole
    checks = []
    for other, label, factor in (
        ("vanilla_kd", "vanilla KD", 3.0),
        ("relabel", "ReLabel", 1.2),
        ("plain", "plain", 1.0),
    ):
        ratio = speed["fkd"] / speed[other]
        checks.append(
            (
                f"FKD >= {factor:g}x the crops/s of {label}",
                ratio >= factor,
                f"{ratio:.2f}x (whole run {whole['fkd'] / whole[other]:.2f}x)",
            )
        )
    return checks


def targets_check(results: dict) -> list[tuple[str, bool, str]]:
    """The targets: (target, met, the measured figure). Speed (FKD's loader against the baselines) is judged on
    the steady-state crops/s (best of the interleaved rounds), the whole-run ratio shown next to it; accuracy and
    whole-run CPU time on FKD as shipped (:func:`reference`), against the others with paired standard errors; on
    data whose preset sets a ``kd_margin``, the regime check: vanilla KD above plain by that many points."""
    runs, ref = results["runs"], reference(results)
    if not all(name in runs for name in ("plain", "vanilla_kd", "relabel", "fkd", "fkd_m1", ref)):
        return []
    checks, top1, label = _speed_checks(results), {name: run["top1"] for name, run in runs.items()}, METHOD_NAMES[ref]
    margin = DATASET_PRESETS.get(results["settings"].get("preset") or "imagenette", {}).get("kd_margin")
    if margin is not None:
        lead = top1["vanilla_kd"] - top1["plain"]
        checks.append(
            (
                f"vanilla KD top-1 >= plain + {margin:g} points (the regime check)",
                lead >= margin / 100 - 1e-9,
                f"{_pct(lead)} points",
            )
        )
    checks += [
        (
            f"{label} top-1 >= FKD m = 1 minus 0.5 points",
            top1[ref] >= top1["fkd_m1"] - 0.005,
            f"{_pct(top1[ref] - top1['fkd_m1'])} points",
        ),
        (
            f"{label} top-1 >= vanilla KD minus 1 point",
            top1[ref] >= top1["vanilla_kd"] - 0.01,
            f"{_pct(top1[ref] - top1['vanilla_kd'])} points",
        ),
    ]
    for other, name in (("plain", "plain"), ("relabel", "ReLabel")):
        difference = paired(results, other)
        if difference is not None:
            diff, se = difference
            checks.append(
                (
                    f"{label} above {name} by > 2 paired standard errors",
                    diff > 2 * se,
                    f"{_pct(diff)} points, SE {_pct(se)}" + (f" ({diff / se:.1f} SE)" if se else ""),
                )
            )
    m, decodes = runs[ref]["crops_per_image"], runs[ref]["decoded_images"] / runs[ref]["crops"]
    checks.append((f"{label} decodes <= 1/m = {1 / m:.2f} photos per crop", decodes <= 1 / m + 1e-9, f"{decodes:.3f}"))
    fkd_cpu, kd_cpu = whole_run_cpu(results, ref), whole_run_cpu(results, "vanilla_kd")
    if fkd_cpu is not None and kd_cpu is not None:
        ratio = fkd_cpu["total"] / kd_cpu["total"]
        checks.append(
            (
                f"{label} whole-run CPU time <= 1/3 of vanilla KD's",
                ratio <= 1 / 3,
                f"{ratio:.2f}x ({fkd_cpu['total']:.0f} s vs {kd_cpu['total']:.0f} s)",
            )
        )
    return checks


def summary_json(results: dict) -> dict:
    """The machine-readable result: per method top-1 with its standard error, crops/s, decodes per crop, whole-run
    CPU seconds (and their parts), the paired differences to FKD spread and to FKD as shipped, its FKD settings and
    saved student; the settings, the label preparation and the targets."""
    n_val, steady = results["val_images"], results.get("throughput", {}).get("best", {})
    methods = {}
    for name, run in results["runs"].items():
        p, cpu = run["top1"], whole_run_cpu(results, name)
        methods[name] = {
            "top1": p,
            "top1_se": _binomial_se(p, n_val),
            "top5": run["top5"],
            "crops_per_s": run["crops_per_second"],
            "steady_crops_per_s": steady.get(name),
            "decodes_per_crop": run["decoded_images"] / run["crops"],
            "train_seconds": run["train_seconds"],
            "cpu_seconds": None if cpu is None else cpu["total"],
            "cpu_parts": cpu,
            **{key: run[key] for key in ("fkd_settings", "same_run_as", "student") if key in run},
        }
        for against in ("fkd_spread", "fkd_default"):
            difference = paired(results, name, against)
            methods[name][f"{against}_minus_this"] = (
                None if difference is None else {"points": 100 * difference[0], "paired_se": 100 * difference[1]}
            )
    return {
        "methods": methods,
        "settings": results["settings"],
        "date": results["date"],
        "machine": results["machine"],
        "teacher_top1": results["teacher_top1"],
        "val_images": n_val,
        "wall_seconds": results.get("wall_seconds"),
        "finished": results.get("finished", True),
        "vanilla_kd": results.get("vanilla_kd", "online"),
        "label_prep": results.get("label_prep", {}),
        "reference": reference(results),
        "targets": [{"target": t, "met": met, "measured": figure} for t, met, figure in targets_check(results)],
    }


def _header(results: dict, s: Settings) -> list[str]:
    info, runs = results["machine"], results["runs"]
    n, n_val, relabel = results["train_images"], results["val_images"], results["relabel"]
    busy = max(results["load"]) > info["cores"]
    return [
        f"Command: `{results['command']}`",
        "",
        *(
            []
            if results.get("finished", True)
            else ["**Unfinished run**: the run stopped before its end; the tables hold what it had measured.", ""]
        ),
        f"Machine: {info['cpu']}, {info['cores']} cores; {info['os']}; "
        f"Python {info['python']}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        f"Date: {results['date']}; wall time of the whole run {results['wall_seconds'] / 60:.1f} min; 1-minute load "
        f"average {results['load'][0]:.1f} at the start, {results['load'][1]:.1f} at the end"
        + (f" (above {info['cores']}: other jobs were sharing the cores)." if busy else "."),
        "",
        f"Protocol: `{Path(s.dataset).name}` (preset {s.preset}): {n} training images ({s.train_per_class or 'all'} "
        f"per class), {n_val} validation images; student "
        f"`{s.student}` from scratch at {s.input_size} px; teacher `{s.teacher}` restricted to the "
        f"{len(results['class_names'])} classes (class_map auto; its val top-1 {_pct(results['teacher_top1'])}%); "
        f"{s.epochs} epochs of {n} crops = {s.epochs * n // s.batch_crops} optimizer steps of {s.batch_crops} crops "
        f"for every method; {s.optim}, lr {s.learning_rate:g}, weight decay {s.weight_decay:g}, warmup "
        f"{s.warmup:g} of the steps, cosine; seed {s.seed}; {s.workers} loader worker(s) and {s.threads} torch "
        f"thread(s) for every method, {s.prep_threads or s.threads} torch thread(s) to make the labels; initial "
        f"weights {', '.join(sorted({r['initial_weights'] for r in runs.values()}))} "
        "(one digest = one init for all). FKD: "
        f"R = {s.stored_crops} stored crops, m = {s.num_crops} per decoded image, {s.kind} k = {s.k}, so "
        f"{s.epochs} epochs = {s.epochs / s.num_crops:g} passes; replay `{results.get('replay', 'pil')}` (every method "
        "decodes and cuts with its ops). FKD rows: the paper's loader (a photo's m crops in one batch); spread "
        "(`--crop_layout spread`: one decode per photo and pass, its m crops in different batches); m = 1 (a decode "
        "per crop); the single-crop tail (`--single_crop_tail`: the last pass as m passes of one crop per photo)."
        + _shipped_text(results)
        + f" ReLabel: map from the whole image at {relabel['input_size']} px = "
        f"{relabel['map_size']}x{relabel['map_size']} positions, top-{relabel['k']} logits per position. "
        + _vanilla_text(results),
        "",
        f"Steady crops/s: best of {s.throughput_rounds} interleaved rounds of {s.throughput_steps} steps per method "
        "(the ratios and speed targets use it; vanilla KD runs its teacher online there; the tail has none, its few "
        "steps would all be single-crop); whole run: all the steps of the accuracy run, loader start-up included, "
        "evaluation excluded. Whole-run CPU: process CPU seconds (user + system) of the training process and its "
        "loader workers over the accuracy run, evaluation excluded, plus what the method's targets cost: the `fkd-hf "
        "generate` run for FKD's rows, the label maps for ReLabel, the teacher on every training crop for vanilla KD. "
        f"Top-1 on {n_val} images has a binomial standard error of about {_std_error(runs, n_val)} points; "
        f"differences to {METHOD_NAMES[reference(results)]} are paired (the same images), with the paired standard "
        "error; one seed.",
        "",
    ]


def _shipped_text(results: dict) -> str:
    run = results["runs"].get("fkd_default")
    if run is None:
        return ""
    settings = ", ".join(f"{key} {value}" for key, value in run.get("fkd_settings", {}).items())
    twin = run.get("same_run_as")
    twin = f"; the same settings as {METHOD_NAMES[twin]}, so one run gives both rows" if twin else ""
    return f" FKD as shipped: `fkd-hf train`'s defaults, read when the run started ({settings}){twin}."


def _vanilla_text(results: dict) -> str:
    if results.get("vanilla_kd") != "stored":
        return "Vanilla KD: the teacher runs on every training crop in the training step."
    return (
        "Vanilla KD's accuracy run: FKD with kind full (every class), m = 1 and R = epochs stored crops, so each "
        "crop is used once with the teacher's whole softmax: vanilla KD up to float16 storage "
        "(`tests/test_benchmarks.py` checks that the online teacher reproduces those labels); its crops/s count the "
        "generation time of those labels as its teacher time, its whole-run CPU the online teacher's CPU time per "
        "crop (the median of the throughput rounds, the teacher's forward pass alone) times its training crops."
    )


def _methods_table(results: dict) -> list[str]:
    runs, prep, storage, n_val = results["runs"], results["label_prep"], results["storage"], results["val_images"]
    steady, whole = _speeds(results)
    lines = [
        "| method | crops per decoded image | decoded photos per crop | steady crops/s | whole-run crops/s (train s) "
        f"| whole-run CPU s (targets + training) | top-1 % (SE) | {METHOD_NAMES[reference(results)]} minus it, "
        "points (paired SE) | top-5 % | label prep s | label bytes per image |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in MAIN_METHODS + SAME_CROP_METHODS:
        if name not in runs:
            continue
        r, speed, p = runs[name], steady.get(name), runs[name]["top1"]
        prep_key = {"fkd": "fkd_seconds", "relabel": "relabel_seconds"}.get(name)
        prep_text = "-" if prep_key is None else ("reused" if prep.get(prep_key) is None else f"{prep[prep_key]:.0f}")
        size = {"fkd": storage.get("fkd_main"), "relabel": storage.get("relabel")}.get(name)
        size_text = "-" if size is None else f"{size:,.0f}"
        note = ""
        if r.get("teacher_seconds") is not None:
            note = f", teacher {r['teacher_seconds']:.0f} s" + (
                " in generation" if r.get("teacher") == "stored" else ""
            )
        difference, cpu = paired(results, name), whole_run_cpu(results, name)
        diff_text = "-" if difference is None else f"{100 * difference[0]:+.1f} ({100 * difference[1]:.1f})"
        cpu_text = (
            "-"
            if cpu is None
            else f"{cpu['total']:,.0f} ({cpu['labels'] + cpu['teacher']:,.0f} + {cpu['training']:,.0f})"
        )
        lines.append(
            f"| {METHOD_NAMES[name]} | {r['crops_per_image']} | {r['decoded_images'] / r['crops']:.3f} "
            f"| {'-' if speed is None else f'{speed:.1f}'} | {whole[name]:.1f} ({r['train_seconds']:.0f} s{note}) "
            f"| {cpu_text} | {_pct(p)} ({100 * _binomial_se(p, n_val):.1f}) | {diff_text} | {_pct(r['top5'])} "
            f"| {prep_text} | {size_text} |"
        )
    return lines


def _storage_tables(results: dict, s: Settings) -> list[str]:
    storage, relabel = results["storage"], results["relabel"]
    lines = [
        "",
        "Label storage on disk (zstd parquet, one file), per training image:",
        "",
        "| labels | per image | bytes per image |",
        "|---|---|---|",
    ]
    if storage.get("relabel") is not None:
        lines.append(
            f"| ReLabel map | {relabel['map_size']}x{relabel['map_size']} positions x top-{relabel['k']} "
            f"| {storage['relabel']:,.0f} |"
        )
    for row in storage.get("fkd", []):
        lines.append(f"| FKD {row['kind']} k={row['k']} | R = {row['R']} crops | {row['bytes_per_image']:,.0f} |")
    if results.get("target_cost"):
        side = f"{relabel['map_size']}x{relabel['map_size']}"
        lines += [
            "",
            f"Building one batch's targets ({s.batch_crops} crops) from stored labels, ms (median): ReLabel "
            f"expands {s.batch_crops} {side} top-{relabel['k']} maps to dense C-channel maps, RoIAligns and "
            "softmaxes them; FKD expands top-k to C:",
            "",
            "| classes C | ReLabel | FKD |",
            "|---|---|---|",
        ]
        lines += [
            f"| {row['num_classes']} | {row['relabel_ms']:.2f} | {row['fkd_ms']:.2f} |"
            for row in results["target_cost"]
        ]
    return lines


def _ablation_table(results: dict, s: Settings) -> list[str]:
    ablation, main = results.get("ablation", []), results["runs"].get("fkd")
    if not ablation:
        return []
    lines = [
        "",
        f"FKD ablation (same protocol; labels cut from one generation; R stored crops, m replayed per decoded "
        f"image; {s.epochs} epochs = {s.epochs} x {results['train_images']} crops):",
        "",
        "| R | m | kind | k | layout | crops/s | top-1 % | top-5 % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [dict(R=s.stored_crops, m=s.num_crops, kind=s.kind, k=s.k, **main, main=True)] if main else []
    for row in rows + ablation:
        layout = row.get("layout", "grouped") + (f", {row['lanes']} lanes" if row.get("lanes") else "")
        if "skipped" in row:
            lines.append(
                f"| {row['R']} | {row['m']} | {row['kind']} | {row['k']} | {layout} | skipped: {row['skipped']} | | |"
            )
            continue
        mark = " (main run)" if row.get("main") else ""
        lines.append(
            f"| {row['R']} | {row['m']} | {row['kind']}{mark} | {row['k']} | {layout} | "
            f"{row['crops_per_second']:.1f} | {_pct(row['top1'])} | {_pct(row['top5'])} |"
        )
    return lines


def _checks_and_curves(results: dict) -> list[str]:
    lines, runs = [], results["runs"]
    checks = targets_check(results)
    if checks:
        lines += ["", "Targets (this run):", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {target} | {figure} | {'yes' if met else 'no'} |" for target, met, figure in checks]
    every = results["settings"].get("eval_every") or 1
    lines += [
        "",
        f"Top-1 % after every {'' if every == 1 else f'{every} '}epoch{'s' * (every > 1)} (training seconds so far):",
        "",
    ]
    for name in MAIN_METHODS + SAME_CROP_METHODS:
        if runs.get(name, {}).get("same_run_as"):
            lines.append(f"- {METHOD_NAMES[name]}: the run of {METHOD_NAMES[runs[name]['same_run_as']]}")
        elif name in runs and runs[name]["curve"]:
            points = ", ".join(f"{_pct(p['top1'])} ({p['train_seconds']:.0f} s)" for p in runs[name]["curve"])
            lines.append(f"- {METHOD_NAMES[name]}: {points}")
    return lines


def render_report(results: dict) -> str:
    """The markdown report of a results.json: protocol, the methods, storage, ablation, targets, curves."""
    s = Settings.from_results(results)
    lines = _header(results, s) + _methods_table(results) + _storage_tables(results, s)
    lines += _ablation_table(results, s) + _checks_and_curves(results)
    return "\n".join(lines) + "\n"
