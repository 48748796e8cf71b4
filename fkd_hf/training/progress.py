"""Training's progress bars, labelled ``train`` and ``eval``; plain lines when stderr is not a terminal.

On a terminal these are the Trainer's tqdm bars with a label. In a log file (a Slurm job, ``2> train.log``) redrawn
bars leave carriage returns and, for the evaluation bar nested under the training bar, cursor-up escapes (``\\x1b[A``);
there each bar writes a line such as ``train:  30% 3/10 [00:12<00:29,  4.17s/step]`` at its first step, at most
every ``LOG_INTERVAL_S`` seconds after, and at its end.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from tqdm.auto import tqdm
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import has_length
from transformers.utils import logging as hf_logging

LOG_INTERVAL_S = 30.0

__all__ = ["LOG_INTERVAL_S", "LogLines", "TrainingProgress", "no_library_bars_off_terminal"]


@contextlib.contextmanager
def no_library_bars_off_terminal() -> Iterator[None]:
    """Inside, transformers' own bars (``Writing model shards`` at each checkpoint) are off when stderr is not a
    terminal."""
    if sys.stderr.isatty() or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


class LogLines:
    """A progress counter for log files with the part of tqdm's interface that ``ProgressCallback`` uses (``update``,
    ``write``, ``close``): a line at the first update, one per ``interval`` seconds and one at the end; no carriage
    return or escape."""

    def __init__(self, desc: str, total: int, unit: str, interval: float = LOG_INTERVAL_S):
        self.desc, self.total, self.unit, self.interval = desc, total, unit, interval
        self.n = self.shown = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.shown or time.monotonic() - self.last >= self.interval or self.n >= self.total:
            self._show()

    def write(self, text: str) -> None:
        """Prints a message (the Trainer's logs) to stdout, as ``tqdm.write`` does."""
        print(text, flush=True)

    def close(self) -> None:
        if self.n != self.shown:
            self._show()

    def _show(self) -> None:
        self.last, self.shown = time.monotonic(), self.n
        line = tqdm.format_meter(self.n, self.total, self.last - self.start, prefix=self.desc, unit=self.unit, ncols=0)
        print(line, file=sys.stderr, flush=True)


class TrainingProgress(ProgressCallback):
    """``ProgressCallback`` with bars labelled ``train`` (optimizer steps) and ``eval`` (batches); off a terminal,
    :class:`LogLines` instead of bars."""

    def _bar(self, desc: str, total: int, unit: str, **kwargs):
        if sys.stderr.isatty():
            return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, **kwargs)
        return LogLines(desc, total, unit)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.training_bar = self._bar("train", state.max_steps, "step")
        self.current_step = 0

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if state.is_world_process_zero and has_length(eval_dataloader):
            if self.prediction_bar is None:
                self.prediction_bar = self._bar("eval", len(eval_dataloader), "batch", leave=self.training_bar is None)
            self.prediction_bar.update(1)
