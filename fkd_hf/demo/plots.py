"""Training curves as a PNG: training loss and evaluation score against FKD epochs, one line per run.

Uses matplotlib's object API (no pyplot, no global backend switch); without matplotlib it draws nothing.

    >>> plot_training_curves({"FKD": trainer.state.log_history}, "curves.png", "top-1")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["plot_training_curves"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def _series(log_history: Sequence[Mapping], key: str) -> tuple[list[float], list[float]]:
    points = [(log.get("fkd_epoch", log.get("epoch")), log[key]) for log in log_history if key in log]
    points = [(x, y) for x, y in points if x is not None]
    return [x for x, _ in points], [y for _, y in points]


def plot_training_curves(
    runs: Mapping[str, Sequence[Mapping]],
    path: str | Path,
    metric_label: str,
    metric_key: str = "eval_top1",
    reference: float | None = None,
    reference_label: str | None = None,
    title: str | None = None,
) -> Path | None:
    """Draws two panels from Trainer log histories (``trainer.state.log_history``) and saves them to ``path``.

    Left: training loss (``loss``); right: ``metric_key`` in percent, with an optional horizontal ``reference``
    line (a fraction, e.g. the teacher's top-1). The x axis is ``fkd_epoch`` (passes x crops per image).
    Returns ``path``, or None when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=(10, 4), layout="constrained")
    loss_axis, metric_axis = figure.subplots(1, 2)
    for color, (name, history) in zip(_COLORS, runs.items()):
        x, y = _series(history, "loss")
        loss_axis.plot(x, y, color=color, label=name)
        x, y = _series(history, metric_key)
        metric_axis.plot(x, [100 * v for v in y], color=color, marker="o", markersize=3, label=name)
    if reference is not None:
        metric_axis.axhline(100 * reference, color="gray", linestyle="--", label=reference_label or "reference")
    loss_axis.set(xlabel="FKD epochs (passes x crops per image)", ylabel="training loss", title="training loss")
    metric_axis.set(xlabel="FKD epochs (passes x crops per image)", ylabel=f"{metric_label} (%)", title=metric_label)
    metric_axis.set_ylim(0, 100)
    for axis in (loss_axis, metric_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    path = Path(path)
    figure.savefig(path, dpi=110)
    return path
