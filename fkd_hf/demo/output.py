"""The demo's output folder as a transaction: the result is built in a hidden sibling folder and renamed into place
only when everything is done, so a failed or interrupted run never leaves a result (or half of one) behind.

    >>> with output_transaction(Path("outputs/demo")) as partial:  # doctest: +SKIP
    ...     (partial / SUMMARY_FILE).write_text("...")
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "CONFIG_FILE",
    "CURVES_FILE",
    "LABELS_DIR",
    "OUTPUTS",
    "RESULT_FILE",
    "STUDENT_DIR",
    "SUMMARY_FILE",
    "output_transaction",
    "prepare_output",
    "publish",
]

LABELS_DIR = "labels"
STUDENT_DIR = "student"
SUMMARY_FILE = "summary.md"
CURVES_FILE = "training_curves.png"
CONFIG_FILE = "demo_config.yaml"
RESULT_FILE = "demo_result.json"  # written last: its presence marks a finished demo result
# Everything a finished result holds, in the order the summary lists it.
OUTPUTS = {
    LABELS_DIR: "the label set with its dataset card",
    STUDENT_DIR: "the FKD student (safetensors, loads in timm and transformers) with its model card",
    SUMMARY_FILE: "this summary",
    CURVES_FILE: "training loss and evaluation score per FKD epoch",
    CONFIG_FILE: "the resolved options (`fkd-hf demo --config demo_config.yaml` reruns them)",
    RESULT_FILE: "every figure of the summary, machine-readable",
}
MIN_FREE_BYTES = 200 * 2**20  # labels + one student + temporary files, with margin


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_output(final: Path) -> Path:
    """Checks ``final`` and returns a fresh hidden sibling folder to build the result in."""
    if final.exists() and not final.is_dir():
        raise FileExistsError(f"--output-dir {final} is a file: choose a folder.")
    if final.is_dir() and any(final.iterdir()) and not (final / RESULT_FILE).is_file():
        raise FileExistsError(
            f"--output-dir {final} is not empty and holds no demo result: choose another --output-dir or empty it "
            "(an earlier demo result there would be replaced)."
        )
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(f".{final.name}.partial-*"):  # left by a killed run
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    free = shutil.disk_usage(parent).free
    if free < MIN_FREE_BYTES:
        raise OSError(
            errno.ENOSPC,
            f"only {free / 2**20:.0f} MiB free where {final} goes; the demo needs {MIN_FREE_BYTES / 2**20:.0f} MiB",
        )
    partial = parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    return partial


def publish(partial: Path, final: Path) -> None:
    """Moves the finished result into place, replacing an earlier demo result."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(partial, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def output_transaction(final: Path) -> Iterator[Path]:
    """Yields the hidden folder to build the result in; publishes it as ``final`` when the block succeeds and
    removes it when the block raises (Ctrl-C included)."""
    partial = prepare_output(final)
    try:
        yield partial
        publish(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
