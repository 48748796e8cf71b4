"""What a method costs to reach its result: process CPU time (this process and every process it started, such as
the loader workers), and each method's whole-run CPU time, its teacher included.

A method's whole run is its training plus what its targets needed from the teacher:

- plain (and plain on FKD's crops): the training alone;
- FKD's rows: the training plus the one ``fkd-hf generate`` run their labels were cut from;
- ReLabel (and ReLabel on FKD's crops): the training plus making the label maps;
- vanilla KD: the training plus the teacher on every training crop. When its accuracy run trains on stored labels
  (FKD kind full at m = 1), the teacher's part is the online teacher's CPU time per crop, measured in the
  throughput rounds (the median round), times the run's crops: the teacher's forward pass, not the cutting of its
  input crops in the loader.
"""

from __future__ import annotations

import os
import resource
import statistics
from pathlib import Path

__all__ = ["cpu_seconds", "whole_run_cpu"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _live_descendants(root: int) -> float:
    """CPU seconds of the live descendants of process ``root`` (and of their reaped children), from /proc (Linux;
    0 elsewhere)."""
    parent, seconds = {}, {}
    try:
        entries = [entry.name for entry in os.scandir("/proc") if entry.name.isdigit()]
    except OSError:
        return 0.0
    for name in entries:
        try:
            stat = Path("/proc", name, "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ... utime (11) .. cstime (14)
        parent[int(name)] = int(fields[1])
        seconds[int(name)] = sum(int(value) for value in fields[11:15]) / _TICKS
    total = 0.0
    for pid in seconds:
        ancestor = parent.get(pid)
        while ancestor not in (None, 0, root):
            ancestor = parent.get(ancestor)
        total += seconds[pid] if ancestor == root and pid != root else 0.0
    return total


def cpu_seconds() -> tuple[float, float]:
    """(this process's CPU seconds, all its threads; its child processes', finished or running): user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, reaped.ru_utime + reaped.ru_stime + _live_descendants(os.getpid())


def _teacher_cpu_per_crop(results: dict) -> float | None:
    rounds = results.get("throughput", {}).get("teacher_cpu_per_crop", [])
    return statistics.median(rounds) if rounds else None


def whole_run_cpu(results: dict, name: str) -> dict | None:
    """Method ``name``'s whole-run CPU seconds, ``{"total", "training", "labels", "teacher"}`` (see the module doc),
    or None when a part is unknown (labels reused from an earlier run, a run without CPU times)."""
    run, prep = results["runs"].get(name, {}), results.get("label_prep", {})
    training = run.get("cpu_seconds")
    if training is None:
        return None
    labels = teacher = 0.0
    if name.startswith("fkd"):
        labels = prep.get("fkd_cpu_seconds")
    elif name.startswith("relabel"):
        labels = prep.get("relabel_cpu_seconds")
    elif name == "vanilla_kd" and run.get("teacher") == "stored":
        per_crop = _teacher_cpu_per_crop(results)
        teacher = None if per_crop is None else per_crop * run["crops"]
    if labels is None or teacher is None:
        return None
    return {"total": training + labels + teacher, "training": training, "labels": labels, "teacher": teacher}
