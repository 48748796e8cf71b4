"""Progress bars that suit where they are written: tqdm's bars on a terminal; in a log file (a Slurm job,
``2> run.log``) plain lines such as ``generate [0/1]:  30% 900/3000 [00:20<00:47, 45.0img/s]``, written at the first
update, at most every ``LOG_INTERVAL_S`` seconds after and at the end, with no carriage return or cursor escape."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator

from tqdm.auto import tqdm

LOG_INTERVAL_S = 30.0
# The switches of datasets' and huggingface_hub's own bars, read when they are imported.
LIBRARY_BAR_SWITCHES = ("HF_DATASETS_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_PROGRESS_BARS")

__all__ = ["LOG_INTERVAL_S", "LogLines", "library_bars_off_terminal", "progress_bar"]


def progress_bar(desc: str, total: int | None, unit: str, disable: bool = False, **tqdm_options):
    """A tqdm bar labelled ``desc`` on a terminal, :class:`LogLines` off one (``disable`` hides either)."""
    if sys.stderr.isatty() or disable:
        return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, **tqdm_options)
    return LogLines(desc, total, unit)


class LogLines:
    """A progress counter for log files with the part of tqdm's interface that fkd-hf and the Trainer's
    ``ProgressCallback`` use (``update``, ``set_postfix``, ``write``, ``close``, ``with``): a line at the first
    update, one per ``interval`` seconds and one at the end (when ``total`` is known, or at ``close``)."""

    def __init__(self, desc: str, total: int | None, unit: str, interval: float = LOG_INTERVAL_S):
        self.desc, self.total, self.unit, self.interval = desc, total, unit, interval
        self.n = self.shown = 0
        self.postfix: dict[str, str] = {}
        self.start = self.last = time.monotonic()

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        due = time.monotonic() - self.last >= self.interval
        if not self.shown or due or (self.total is not None and self.n >= self.total):
            self._show()

    def set_postfix(self, refresh: bool = True, **values) -> None:
        """Values shown after the counts in the next line (``crops_per_s=180``)."""
        self.postfix = {key: str(value) for key, value in values.items()}

    def write(self, text: str) -> None:
        """Prints a message (the Trainer's logs) to stdout, as ``tqdm.write`` does."""
        print(text, flush=True)

    def close(self) -> None:
        if self.n != self.shown:
            self._show()

    def _show(self) -> None:
        self.last, self.shown = time.monotonic(), self.n
        postfix = ", ".join(f"{key}={value}" for key, value in self.postfix.items()) or None
        elapsed = self.last - self.start
        line = tqdm.format_meter(
            self.n, self.total, elapsed, prefix=self.desc, unit=self.unit, ncols=0, postfix=postfix
        )
        print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def library_bars_off_terminal() -> Iterator[None]:
    """Inside, when stderr is not a terminal, the bars of datasets ("Generating train split") and huggingface_hub
    (downloads) are off: they redraw with carriage returns. Restored on the way out."""
    if sys.stderr.isatty():
        yield
        return
    saved = {name: os.environ.get(name) for name in LIBRARY_BAR_SWITCHES}
    os.environ.update(dict.fromkeys(LIBRARY_BAR_SWITCHES, "1"))  # for the libraries imported inside
    switched = []  # and for those already imported
    if "datasets" in sys.modules:
        from datasets.utils import logging as datasets_logging

        if datasets_logging.is_progress_bar_enabled():
            datasets_logging.disable_progress_bar()
            switched.append(datasets_logging.enable_progress_bar)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import utils as hub_utils

        if not hub_utils.are_progress_bars_disabled():
            hub_utils.disable_progress_bars()
            switched.append(hub_utils.enable_progress_bars)
    try:
        yield
    finally:
        for enable in switched:
            enable()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
