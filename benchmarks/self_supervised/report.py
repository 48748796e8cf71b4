"""The self-supervised benchmark's markdown report and its goals, rendered from its results (finished or not)."""

from __future__ import annotations

from .settings import DATASETS, FKD_ROWS, ROWS

__all__ = ["GOAL_DATASET", "KNN_MARGIN", "CPU_RATIO", "PROBE_MARGIN", "goals", "render_report"]

GOAL_DATASET = DATASETS[0]  # the linear-probe goal's dataset, imagewoof-mini
KNN_MARGIN, CPU_RATIO, PROBE_MARGIN = 1.0, 1 / 3, 10.0  # points, fraction of online's CPU, points

_NAMES = {
    "fkd_distribution": "FKD, distribution (stored)",
    "fkd_embedding": "FKD, embedding (stored)",
    "online": "online teacher",
    "teacher": "teacher (ceiling)",
}


def _points(value: float) -> str:
    return f"{100 * value:.1f}"


def _knn_check(results: dict, row: str) -> dict:
    """``row`` within KNN_MARGIN points of online's k-NN top-1 on every dataset of DATASETS, at most CPU_RATIO of
    its whole-run CPU time."""
    goal = (
        f"{_NAMES[row]}: k-NN top-1 within {KNN_MARGIN:g} point of online on both datasets, at <= 1/3 of "
        "online's whole-run CPU"
    )
    details, passed = [], True
    for name in DATASETS:
        methods = results["datasets"].get(name, {}).get("methods", {})
        if row not in methods or "online" not in methods:
            return {"goal": goal, "status": "NOT RUN", "detail": f"{name} has no {row} and online rows"}
        mine, online = methods[row], methods["online"]
        gap, ratio = 100 * (mine["knn_top1"] - online["knn_top1"]), mine["cpu_s"] / online["cpu_s"]
        passed &= gap >= -KNN_MARGIN and ratio <= CPU_RATIO
        details.append(f"{name}: {gap:+.1f} points, {ratio:.2f}x the CPU")
    return {"goal": goal, "status": "PASS" if passed else "MISS", "detail": "; ".join(details)}


def _probe_check(results: dict, row: str) -> dict:
    goal = f"{_NAMES[row]}: linear probe within {PROBE_MARGIN:g} points of the teacher's on {GOAL_DATASET}"
    methods = results["datasets"].get(GOAL_DATASET, {}).get("methods", {})
    if row not in methods or "teacher" not in methods:
        return {"goal": goal, "status": "NOT RUN", "detail": f"{GOAL_DATASET} has no {row} and teacher rows"}
    gap = 100 * (methods[row]["probe_top1"] - methods["teacher"]["probe_top1"])
    status = "PASS" if gap >= -PROBE_MARGIN else "MISS"
    return {"goal": goal, "status": status, "detail": f"{gap:+.1f} points"}


def goals(results: dict) -> list[dict]:
    """Every goal, ``{"goal", "status": PASS | MISS | NOT RUN, "detail"}``, for each FKD row."""
    return [check(results, row) for check in (_knn_check, _probe_check) for row in FKD_ROWS]


def _table(dataset: dict) -> list[str]:
    methods, n_val = dataset["methods"], dataset.get("val_images", 0)
    online_cpu = methods.get("online", {}).get("cpu_s")
    lines = [
        "| row | k-NN top-1 % | probe top-1 % | whole-run CPU s | CPU / online's | decoded photos / crop "
        "| bytes / stored crop | teacher crops | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        if row not in methods:
            continue
        r = methods[row]
        ratio = f"{r['cpu_s'] / online_cpu:.2f}" if online_cpu else "-"
        lines.append(
            f"| {_NAMES[row]} | {_points(r['knn_top1'])} | {_points(r['probe_top1'])} | {r['cpu_s']:.0f} | {ratio} "
            f"| {r['decodes_per_crop']:.2f} | {r['bytes_per_crop']:.0f} | {r['teacher_crops']} | {r['wall_s']:.0f} |"
        )
    knn = [r["knn_top1"] for r in methods.values()]
    if knn and n_val:
        p = sum(knn) / len(knn)
        lines.append(
            f"\n{dataset.get('train_images')} training photos (labels read only to score), {n_val} validation "
            f"photos: a top-1 near {_points(p)}% has a binomial standard error of "
            f"{100 * (p * (1 - p) / n_val) ** 0.5:.1f} points."
        )
    return lines


def render_report(results: dict) -> str:
    """The report: the protocol, a table per dataset, the goals (PASS, MISS or NOT RUN, never hidden)."""
    s, machine = results["settings"], results["machine"]
    start, end = (machine.get("load_average", {}).get(when, [float("nan")])[0] for when in ("start", "end"))
    lines = [
        f"### Self-supervised distillation ({results['mode']} mode{'' if results.get('finished') else ', unfinished'})",
        "",
        f"`{results['command']}` on {machine.get('cpu')} ({machine.get('cores')} cores; 1-minute load average "
        f"{start:.1f} at the start, {end:.1f} at the end), "
        f"{results.get('wall_seconds', 0) / 60:.1f} minutes.",
        "",
        f"Teacher `{s['teacher']}` at {s['teacher_size']} px (its pooled embedding; its classifier unused), student "
        f"`{s['student']}` from scratch at {s['input_size']} px with a linear projection head, {s['epochs']} epochs of "
        f"N crops, {s['batch_crops']} crops per step, {s['optim']} lr {s['learning_rate']:g}, cosine schedule, "
        f"{s['workers']} loader worker(s), seed {s['seed']}, for every row. FKD stores R = {s['stored_crops']} crops "
        f"per photo and replays m = {s['num_crops']} per decoded photo: distribution = softmax of the embedding at "
        f"T = {s['distribution_temperature']:g}, top-{s['distribution_k']} {s['distribution_kind']}, soft "
        f"cross-entropy; embedding = the float16 vector, {s['embedding_loss']} loss. Online: the teacher on every "
        "training crop (one fresh crop per decoded photo), the embedding's loss. k-NN: cosine, k = 20 (DINO); "
        "probe: linear on the frozen pooled features; both fitted on the labelled training split. Whole-run CPU: "
        "training (loader workers included) + generation for FKD rows; the teacher's feature extraction for its row.",
    ]
    for name, dataset in results["datasets"].items():
        lines += ["", f"#### {name}", "", *_table(dataset)]
    lines += ["", "Goals:", ""]
    lines += [f"- **{g['status']}** {g['goal']} ({g['detail']})" for g in results.get("goals", [])]
    return "\n".join(lines) + "\n"
