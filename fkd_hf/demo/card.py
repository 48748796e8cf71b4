"""The demo student's model card: the library's card, filled while training, with the scores the demo measured.

On a dataset the card's model-index holds the top-1 on the evaluation images. On the sample photos the score is
agreement with the teacher, which is not accuracy: it goes into the card's text only, never the model-index.
"""

from __future__ import annotations

from pathlib import Path

from ..repo_ids import portable_spec
from ..training import StudentCardCallback
from .config import DemoConfig
from .data import HOLDOUT_EVERY, DemoData
from .summary import pct
from .train_stage import StudentRun

__all__ = ["demo_card_callback", "write_demo_card"]


def demo_card_callback(config: DemoConfig) -> StudentCardCallback:
    """The callback that fills the FKD student's card while it trains."""
    return StudentCardCallback(model_name=f"{config.student} FKD demo student", tags=["fkd-hf-demo"])


def _evaluation_notes(data: DemoData, teacher_name: str, run: StudentRun, eval_items: int) -> str:
    teacher_name = portable_spec(teacher_name)  # a teacher folder by its name: no card holds a local path
    if data.mode == "photos":
        return (
            f"Top-1 agreement with the teacher `{teacher_name}` on {eval_items} held-out crops of the training "
            f"photos (crops no training step used): {pct(run.top1)}. This is agreement with the teacher, not "
            "accuracy: the demo's sample photos are too few to measure accuracy, so this card claims none."
        )
    return f"Top-1 agreement with the teacher `{teacher_name}` on the same {eval_items} images: {pct(run.agreement)}."


def write_demo_card(
    card: StudentCardCallback,
    student_dir: Path,
    label_set: Path,
    data: DemoData,
    teacher_name: str,
    run: StudentRun,
    eval_items: int,
    config: DemoConfig,
) -> Path:
    """Writes the FKD student's card into ``student_dir``; ``label_set`` is where its label set will be."""
    card.card_data.update_from_metrics(run.final_metrics)
    card_data = card.card_data
    card_data.label_set = str(label_set)
    if data.mode == "photos":  # agreement is not accuracy: keep it out of the model-index
        card_data.top1 = card_data.top5 = card_data.eval_loss = None
        card_data.eval_split = card_data.eval_dataset = None
    elif data.mode == "holdout":
        card_data.eval_split = f"{config.train_split} (every {HOLDOUT_EVERY}th image, held out)"
    card_data.evaluation_notes = _evaluation_notes(data, teacher_name, run, eval_items)
    return card.write(student_dir)
