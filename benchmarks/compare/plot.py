"""The comparison's plot: top-1 against wall time, one line per method."""

from __future__ import annotations

from pathlib import Path

from .settings import MAIN_METHODS, METHOD_NAMES, SAME_CROP_METHODS

__all__ = ["plot"]


def _prep_seconds(results: dict, name: str) -> float | None:
    """Label preparation before a method's training: the FKD generation for FKD's rows, the maps for ReLabel."""
    prep = results["label_prep"]
    if name.startswith("fkd"):
        return prep.get("fkd_seconds")
    return prep.get("relabel_seconds") if name == "relabel" else None


def _panel(ax, results: dict, with_prep: bool) -> None:
    """One panel: training time alone, or (``with_prep``) with the label preparation before it."""
    runs = results["runs"]
    chance = 100 / len(results["class_names"])
    for name in MAIN_METHODS + SAME_CROP_METHODS:
        if name not in runs or not runs[name]["curve"] or (with_prep and name in SAME_CROP_METHODS):
            continue  # the same-crop controls are left out of the cost panel: they borrow FKD's stored crops
        shift = (_prep_seconds(results, name) or 0.0) if with_prep else 0.0
        run = runs[name]  # vanilla KD from stored labels: its teacher's time spread over its steps
        scale = run["train_seconds"] / run["student_seconds"] if run.get("teacher") == "stored" else 1.0
        xs = [shift] + [shift + scale * p["train_seconds"] for p in run["curve"]]
        ys = [chance] + [100 * p["top1"] for p in runs[name]["curve"]]
        ax.plot(xs, ys, "--" if name in SAME_CROP_METHODS else "-", marker="o", markersize=3, label=METHOD_NAMES[name])
    ax.set_xlabel(
        "label preparation + training wall time (s, log scale)"
        if with_prep
        else "training wall time (s, log scale), evaluation excluded"
    )
    ax.set_xscale("symlog", linthresh=10)  # seconds to tens of minutes on one axis
    ax.set_ylabel("val top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot(results: dict, path: Path) -> Path | None:
    """Accuracy against wall time, one line per method: training time alone, and with the label preparation
    (when both label sets were made in the run). None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[compare] matplotlib is not installed: no plot (pip install matplotlib, or pip install -e '.[demo]').")
        return None
    runs = results["runs"]
    with_prep = all(_prep_seconds(results, name) is not None for name in ("fkd", "relabel") if name in runs)
    panels = 2 if with_prep else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    for col in range(panels):
        _panel(axes[0][col], results, with_prep=col == 1)
    s = results["settings"]
    fig.suptitle(
        f"{s['student']} from scratch at {s['input_size']} px, {s['epochs']} epochs, teacher {s['teacher']} "
        f"({results['train_images']} train images of {Path(s['dataset']).name}, {s['mode']} mode)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
