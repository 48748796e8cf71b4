"""``FKDConfig``: the Trainer's arguments plus what FKD training needs; every field is a ``fkd-hf train`` flag."""

from __future__ import annotations

import dataclasses
import json
import math
import os

from transformers import TrainingArguments

from ..labels.crops import resample_filter
from ..models.projection import PROJECTION_HEADS
from .layouts import LAYOUTS, layout_class

__all__ = ["FKDConfig", "default_loader_workers"]

_field = dataclasses.field
EMBEDDING_LOSSES = ("cosine", "smooth_l1")
NO_EVAL = ("none", "no", "")  # --eval_split values that turn evaluation off (stored as "")


def default_loader_workers() -> int:
    """Loader workers that fit the machine: the cores of each training process on it less one, at most 4, rounded
    down to 1, 2 or 4 (a divisor of the default ``spread_lanes``, so the spread layout decodes each photo once)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))  # set by torchrun and accelerate launch
    spare = min(4, cores // processes - 1)
    return 0 if spare < 1 else 1 << (spare.bit_length() - 1)


@dataclasses.dataclass
class FKDConfig(TrainingArguments):
    """Arguments of :class:`~fkd_hf.training.trainer.FKDTrainer` and :func:`~fkd_hf.training.runner.train`.

    Batches and epochs, as in FKD: ``per_device_train_batch_size`` counts *images*; each yields ``num_crops`` crops,
    so a step on P devices with gradient accumulation G sees ``images x P x G x num_crops`` crops (FKD's
    ``-b 1024 --num_crops 4`` = 256 images). One pass over the data counts as ``num_crops`` FKD epochs: FKD's
    "300 epochs" with ``num_crops = 4`` are 75 passes. ``num_train_epochs`` counts passes, as the Trainer does;
    ``fkd_epochs`` sets it in FKD epochs. Logs show ``epoch`` (passes) and ``fkd_epoch``.

    ``crop_layout = "spread"`` (the default) keeps these numbers (a batch still holds ``per_device_train_batch_size x
    num_crops`` crops) but fills it with crops of that many different photos (:mod:`fkd_hf.training.layouts.spread`);
    ``"grouped"`` is the paper's loader, a photo's crops in one batch. Each layout checks its options here.
    ``single_crop_tail`` replays the last pass as ``num_crops`` passes of one crop per photo, each one FKD epoch,
    with as many crops per step: the pass still counts ``num_crops`` FKD epochs, so ``fkd_epoch`` stays
    ``epoch x num_crops`` throughout (with ``max_steps``, the tail is the last pass the run reaches, maybe cut).
    """

    # Data: the label set, and the images it labels (by default the dataset it was made from).
    label_set: str | None = _field(default=None, metadata={"help": "Label set folder (fkd-hf generate) or Hub id."})
    label_set_revision: str | None = _field(default=None, metadata={"help": "Label set revision on the Hub."})
    dataset: str | None = _field(
        default=None,
        metadata={
            "help": "Images: Hub id, imagefolder:PATH, folder or parquet:GLOB (default: the "
            "dataset the label set was made from)."
        },
    )
    dataset_config: str | None = _field(default=None, metadata={"help": "Dataset config (default: the label set's)."})
    dataset_revision: str | None = _field(
        default=None, metadata={"help": "Dataset revision (default: the label set's)."}
    )
    train_split: str | None = _field(default=None, metadata={"help": "Training split (default: the label set's)."})
    eval_split: str | None = _field(
        default=None,
        metadata={
            "help": "Labelled split for top-1/top-5 evaluation (default: the dataset's "
            "validation split, if it has one); none to skip."
        },
    )
    image_column: str | None = _field(default=None, metadata={"help": "Image column (default: the label set's)."})
    label_column: str | None = _field(
        default=None, metadata={"help": "Class column of the eval split (default: the label set's)."}
    )
    max_train_samples: int | None = _field(default=None, metadata={"help": "Train on the first N rows only."})
    max_eval_samples: int | None = _field(default=None, metadata={"help": "Evaluate on N random rows only."})
    key_check_rows: int = _field(
        default=1024,
        metadata={
            "help": "Rows whose image_key is checked before training (evenly spaced; -1 = all). "
            "Every row is also checked as it is loaded."
        },
    )
    # Student.
    student: str | None = _field(
        default=None, metadata={"help": "timm architecture, timm/<name>, hf-hub:<id>, transformers Hub id or folder."}
    )
    student_pretrained: bool = _field(default=False, metadata={"help": "Start from the student's pretrained weights."})
    student_kwargs: dict | str | None = _field(
        default=None,
        metadata={
            "help": "JSON dict for timm.create_model or the transformers config, e.g. '{\"drop_path_rate\": 0.1}'."
        },
    )
    input_size: int | None = _field(default=None, metadata={"help": "Student input size (default: the student's)."})
    mean: list[float] | None = _field(default=None, metadata={"help": "Normalisation mean (default: the student's)."})
    std: list[float] | None = _field(default=None, metadata={"help": "Normalisation std (default: the student's)."})
    interpolation: str | None = _field(default=None, metadata={"help": "Eval resize filter (default: the student's)."})
    crop_pct: float | None = _field(
        default=None, metadata={"help": "Eval centre-crop fraction (default: the student's)."}
    )
    train_interpolation: str = _field(
        default="bilinear", metadata={"help": "Resize filter of training crops (FKD: bilinear)."}
    )
    # FKD.
    num_crops: int = _field(
        default=4, metadata={"help": "Crops replayed per image and pass (m); at most the stored R."}
    )
    fkd_epochs: float | None = _field(
        default=None, metadata={"help": "Training length in FKD epochs (passes x num_crops); sets num_train_epochs."}
    )
    temperature: float = _field(
        default=1.0, metadata={"help": "Loss temperature: the student's logits are divided by it."}
    )
    mixup_alpha: float = _field(
        default=0.0, metadata={"help": "Mixup Beta(alpha, alpha) on crops and soft targets; 0 = off."}
    )
    cutmix_alpha: float = _field(
        default=0.0, metadata={"help": "CutMix Beta(alpha, alpha) on crops and soft targets; 0 = off."}
    )
    mix_prob: float = _field(default=1.0, metadata={"help": "Probability of mixing a batch when Mixup/CutMix is on."})
    crop_layout: str = _field(
        default="spread",
        metadata={
            "help": "Where a photo's num_crops crops go: spread (num_crops batches of "
            "different photos, still one decode per photo and pass; higher top-1) or "
            "grouped (one batch, the FKD paper's loader).",
            "choices": tuple(LAYOUTS),
        },
    )
    spread_lanes: int = _field(
        default=8,
        metadata={
            "help": "spread: interleaved batch streams; a photo's crops are spread_lanes steps "
            "apart. One decode per photo when dataloader_num_workers divides it; memory "
            "spread_lanes x batch crops x (num_crops - 1) crops per process."
        },
    )
    spread_memory: float | None = _field(
        default=None,
        metadata={
            "help": "spread: size the lanes from this budget instead of spread_lanes: GiB per process for the crops "
            "waiting in the loader workers; the most lanes that fit (at most 64, a multiple of "
            "dataloader_num_workers)."
        },
    )
    single_crop_tail: bool = _field(
        default=False,
        metadata={
            "help": "Train the last pass (num_crops FKD epochs) on one crop per photo and FKD "
            "epoch, same crops per step (FKD's train_FKD.py)."
        },
    )
    # Self-supervised distillation (label sets of an encoder's targets: distribution, embedding).
    projection_head: str = _field(
        default="linear",
        metadata={
            "help": "Head from the student's pooled features to the teacher's D dimensions, trained with them and "
            "saved beside the backbone: linear or mlp (Linear-GELU-Linear).",
            "choices": PROJECTION_HEADS,
        },
    )
    projection_hidden_dim: int = _field(default=2048, metadata={"help": "Hidden width of the mlp projection head."})
    embedding_loss: str = _field(
        default="cosine",
        metadata={
            "help": "Loss on embedding targets: cosine (1 - cosine similarity) or smooth_l1.",
            "choices": EMBEDDING_LOSSES,
        },
    )
    # Trainer defaults FKD needs.
    remove_unused_columns: bool = _field(
        default=False, metadata={"help": "Keep the label columns: the FKD collator needs them."}
    )
    lr_scheduler_type: str = _field(default="cosine", metadata={"help": "Learning-rate schedule (FKD: cosine)."})
    dataloader_num_workers: int = _field(
        default_factory=default_loader_workers,
        metadata={
            "help": "Loader worker processes (decode and crop); default: this machine's cores per training "
            "process less one, at most 4."
        },
    )
    overwrite_output_dir: bool = _field(
        default=False,
        metadata={
            "help": "Write into a non-empty output_dir that holds no fkd-hf training run "
            "(files of the same names are replaced)."
        },
    )
    max_grad_norm: float = _field(default=0.0, metadata={"help": "Gradient clipping norm; 0 = none (FKD, timm)."})

    def __post_init__(self):
        super().__post_init__()
        if self.eval_split is not None and self.eval_split.strip().lower() in NO_EVAL:
            self.eval_split = ""
        if isinstance(self.student_kwargs, str):
            self.student_kwargs = json.loads(self.student_kwargs)
        if self.num_crops < 1:
            raise ValueError(f"num_crops must be at least 1, got {self.num_crops}.")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive number, got {self.temperature}.")
        if self.projection_head not in PROJECTION_HEADS or self.embedding_loss not in EMBEDDING_LOSSES:
            raise ValueError(
                f"projection_head must be one of {', '.join(PROJECTION_HEADS)} and embedding_loss one of "
                f"{', '.join(EMBEDDING_LOSSES)}; got {self.projection_head!r} and {self.embedding_loss!r}."
            )
        if self.projection_hidden_dim < 1:
            raise ValueError(f"projection_hidden_dim must be at least 1, got {self.projection_hidden_dim}.")
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0 or not 0 <= self.mix_prob <= 1:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0, and mix_prob between 0 and 1.")
        for name in ("train_interpolation", "interpolation"):
            if getattr(self, name) is not None:
                resample_filter(getattr(self, name))
        if self.fkd_epochs is not None:
            if self.fkd_epochs <= 0:
                raise ValueError(f"fkd_epochs must be positive, got {self.fkd_epochs}.")
            self.num_train_epochs = self.fkd_epochs / self.num_crops
        self._check_crop_layout()

    def _check_crop_layout(self) -> None:
        layout_class(self.crop_layout).check(self)
        if self.single_crop_tail and self.max_steps <= 0 and not float(self.num_train_epochs).is_integer():
            raise ValueError(
                f"single_crop_tail replays the last whole pass, but num_train_epochs is "
                f"{self.num_train_epochs}: set fkd_epochs to a multiple of num_crops."
            )

    @property
    def crops_per_step(self) -> int:
        """Crops per optimizer step over all processes (FKD's batch size)."""
        return self.per_device_train_batch_size * self.world_size * self.gradient_accumulation_steps * self.num_crops
