"""The self-supervised benchmark's protocol: its rows, the two modes (quick and full), their flags and the resolved
settings."""

from __future__ import annotations

import argparse
import dataclasses
import os

from ..compare.settings import COMMON as COMPARE_COMMON
from ..compare.settings import DATA_ROOT

__all__ = [
    "DATASETS",
    "ROWS",
    "FKD_ROWS",
    "PRESETS",
    "COMMON",
    "Settings",
    "add_protocol_arguments",
    "resolve_settings",
]

DATASETS = ("imagewoof-mini", "imagenette-mini")  # under DATA_ROOT; the results' top-level methods are the first's
FKD_ROWS = {"fkd_distribution": "distribution", "fkd_embedding": "embedding"}  # row -> the target type it stores
ROWS = (*FKD_ROWS, "online", "teacher")

# What changes between the modes; every value can be overridden by its flag. An epoch is N crops for every row.
PRESETS = {
    "quick": dict(
        train_per_class=20,
        val_per_class=10,
        epochs=2,
        batch_crops=40,
        eval_batch_size=100,
        input_size=32,
        teacher_size=96,
    ),
    "full": dict(
        train_per_class=None,  # every training photo
        val_per_class=None,
        epochs=8,
        batch_crops=60,
        eval_batch_size=200,
        input_size=64,
        teacher_size=160,
    ),
}
# One protocol for every row: the student, its optimizer and schedule (the comparison's), the seed, the loader.
# The distribution's teacher temperature 0.2 and k = 32 keep about 98% of the softmax mass of efficientnet-lite0's
# 1280-d pooled embedding in the stored top-k (measured on ten training photos, before any run was scored).
COMMON = dict(
    student="resnet10t",
    teacher="efficientnet-lite0",
    stored_crops=4,
    num_crops=4,
    distribution_kind="marginal_smoothing",
    distribution_k=32,
    distribution_temperature=0.2,
    embedding_loss="cosine",
    **{key: COMPARE_COMMON[key] for key in ("optim", "learning_rate", "weight_decay", "warmup", "workers", "seed")},
    threads=None,
    prep_threads=None,
)


@dataclasses.dataclass
class Settings:
    """The resolved protocol of one run (a mode plus any flags); saved in the results."""

    mode: str
    datasets: list[str]  # folders with train/<class>/ and val/<class>/
    train_per_class: int | None
    val_per_class: int | None
    epochs: int
    batch_crops: int
    eval_batch_size: int
    input_size: int
    teacher_size: int
    student: str
    teacher: str
    stored_crops: int
    num_crops: int
    distribution_kind: str
    distribution_k: int
    distribution_temperature: float
    embedding_loss: str
    optim: str
    learning_rate: float
    weight_decay: float
    warmup: float
    workers: int
    seed: int
    threads: int | None
    prep_threads: int | None


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that override the mode's values."""
    group = parser.add_argument_group("protocol (defaults from the mode; see the docstring)")
    add = group.add_argument
    add("--train-per-class", type=int, help="Training photos per class (quick 20, full: all).")
    add("--val-per-class", type=int, help="Validation photos per class (quick 10, full all).")
    add("--epochs", type=int, help="Epochs of N crops each, every row (quick 2, full 8).")
    add("--batch-crops", type=int, help="Crops per optimizer step, every row (quick 40, full 60).")
    add("--eval-batch-size", type=int, help="Photos per feature-extraction batch.")
    add("--input-size", type=int, help="Student input size (quick 32, full 64).")
    add("--teacher-size", type=int, help="Teacher input size, generation and online alike (quick 96, full 160).")
    add("--student", help="timm student, trained from scratch (resnet10t).")
    add("--teacher", help="Encoder teacher: efficientnet-lite0, or any fkd-hf teacher spec (a local folder too).")
    add("--stored-crops", type=int, help="R: crops stored per photo by fkd-hf generate (4).")
    add("--num-crops", type=int, help="m: crops FKD replays per decoded photo (4).")
    add("--distribution-k", type=int, help="Dimensions the distribution stores per crop, top-k (32).")
    add("--distribution-temperature", type=float, help="Teacher temperature of the distribution's softmax (0.2).")
    add("--workers", type=int, help="DataLoader workers, every row (1).")
    add("--threads", type=int, help="torch threads while training (default: the cores less the loader workers).")
    add("--prep-threads", type=int, help="torch threads while labels are generated (default: every core).")
    add("--seed", type=int, help="Seed of the student init, data order and crops (0).")


def resolve_settings(args: argparse.Namespace) -> Settings:
    """The mode of ``--quick`` (or full) with the flags given on top; checks that the crop counts fit."""
    mode = "quick" if args.quick else "full"
    values = {**COMMON, **PRESETS[mode]}
    for field in dataclasses.fields(Settings):
        given = getattr(args, field.name, None)
        if given is not None and field.name not in ("mode", "datasets"):
            values[field.name] = given
    folders = [args.dataset] if getattr(args, "dataset", None) else [str(DATA_ROOT / name) for name in DATASETS]
    settings = Settings(mode=mode, datasets=[os.path.abspath(folder) for folder in folders], **values)
    if settings.threads is None:  # one core per loader worker, the rest for compute
        settings.threads = max(1, (os.cpu_count() or 1) - settings.workers)
    if settings.prep_threads is None:
        settings.prep_threads = os.cpu_count() or 1
    if settings.batch_crops % settings.num_crops or settings.num_crops > settings.stored_crops:
        raise ValueError(
            f"batch_crops ({settings.batch_crops}) must be a multiple of num_crops ({settings.num_crops}), and "
            f"num_crops at most the stored crops R ({settings.stored_crops})."
        )
    return settings
