"""Training's progress bars, labelled ``train`` and ``eval``; plain lines when stderr is not a terminal.

On a terminal these are the Trainer's tqdm bars with a label. In a log file (a Slurm job, ``2> train.log``) redrawn
bars leave carriage returns and, for the evaluation bar nested under the training bar, cursor-up escapes (``\\x1b[A``);
there each bar writes a line such as ``train:  30% 3/10 [00:12<00:29,  4.17s/step]`` at its first step, at most
every :data:`~fkd_hf.progress.LOG_INTERVAL_S` seconds after, and at its end.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import has_length
from transformers.utils import logging as hf_logging

from ..progress import progress_bar

__all__ = ["TrainingProgress", "no_library_bars_off_terminal"]


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


class TrainingProgress(ProgressCallback):
    """``ProgressCallback`` with bars labelled ``train`` (optimizer steps) and ``eval`` (batches); off a terminal,
    :class:`~fkd_hf.progress.LogLines` instead of bars."""

    def _bar(self, desc: str, total: int, unit: str, **kwargs):
        return progress_bar(desc, total, unit, **kwargs)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.training_bar = self._bar("train", state.max_steps, "step")
        self.current_step = 0

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if state.is_world_process_zero and has_length(eval_dataloader):
            if self.prediction_bar is None:
                self.prediction_bar = self._bar("eval", len(eval_dataloader), "batch", leave=self.training_bar is None)
            self.prediction_bar.update(1)
