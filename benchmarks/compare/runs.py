"""The comparison's training runs: every method through :func:`fkd_hf.training.build_trainer`, timed, from one
initial student; the steady-state throughput rounds; the teacher's own accuracy."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from fkd_hf.labels import LabelSet, load_label_set
from fkd_hf.labels.images import ImageSource
from fkd_hf.models.teacher_runner import TeacherRunner
from fkd_hf.models.teachers import Teacher
from fkd_hf.training import EvalDataset, FKDConfig, FKDTrainer, build_trainer
from fkd_hf.training.builder import eval_label_map
from fkd_hf.training.data import collate_crops

from ..methods import PlainTrainer, ReLabelTrainer, VanillaKDTrainer, crop_set_factory
from .settings import Settings

__all__ = ["Context", "FKD_VARIANTS", "timed", "weights_digest", "crops_per_image", "decodes_per_crop", "steps_per_epoch",
           "run_method", "measure_throughput", "teacher_accuracy"]  # fmt: skip

# FKD's rows: method -> FKDConfig fields it sets (every one on the main label set, through FKDTrainer)
FKD_VARIANTS = {"fkd": {}, "fkd_spread": {"crop_layout": "spread"}, "fkd_m1": {"num_crops": 1},
                "fkd_tail": {"single_crop_tail": True}}  # fmt: skip


@dataclasses.dataclass
class Context:
    """What every run shares: the protocol, the images, the main label set, the teacher, the ReLabel maps and the
    evaluation set."""

    settings: Settings
    work: Path
    images: ImageSource
    keys: list[str]  # the image key of every training row
    validation: ImageSource
    class_names: list[str]
    teacher: Teacher
    class_indices: list[int]
    labels: LabelSet  # the main FKD run's; joined to the images by every method
    maps: object  # the ReLabel maps (a datasets.Dataset keyed by image_key)
    map_size: int
    eval_set: EvalDataset
    vanilla_labels: Path | None = None  # kind full, R = epochs: vanilla KD as FKD at m = 1 (None: online teacher)
    vanilla_teacher_seconds: float | None = None  # the generation time of those labels (None: reused labels)


class _Clock(TrainerCallback):
    """Wall-clock times of training: once the Trainer's setup is done (``on_train_begin``: optimizer, Accelerate
    wrapping) and at the end of every optimizer step."""

    def __init__(self):
        self.start, self.steps = None, []

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(time.perf_counter())


def timed(trainer_class: type) -> type:
    """``trainer_class`` that times its training and records, at each evaluation during training, the training
    time so far (evaluation left out) and the metrics.

    ``train_seconds`` runs from the end of the Trainer's setup to the end of the last optimizer step, less the time
    spent in evaluations: steps, data loading (worker start included) and nothing else."""

    class Timed(trainer_class):
        def train(self, *args, **kwargs):
            self.curve, self.evaluations, self.clock = [], [], _Clock()
            self.add_callback(self.clock)
            self._in_train = True
            try:
                result = super().train(*args, **kwargs)
            finally:
                self._in_train = False
            last = self.clock.steps[-1]
            self.eval_seconds = sum(seconds for begun, seconds in self.evaluations if begun < last)
            self.train_seconds = last - self.clock.start - self.eval_seconds
            return result

        def evaluate(self, *args, **kwargs):
            start = time.perf_counter()
            metrics = super().evaluate(*args, **kwargs)
            clock = getattr(self, "clock", None)
            if getattr(self, "_in_train", False) and clock.start is not None:
                spent_before = sum(seconds for _, seconds in self.evaluations)
                self.curve.append(
                    {"step": self.state.global_step, "train_seconds": start - clock.start - spent_before,
                     "top1": metrics["eval_top1"], "top5": metrics["eval_top5"]}
                )  # fmt: skip
                self.evaluations.append((start, time.perf_counter() - start))
            return metrics

    Timed.__name__ = Timed.__qualname__ = f"Timed{trainer_class.__name__}"
    return Timed


def weights_digest(model: torch.nn.Module) -> str:
    """A short digest of the weights (one digest = one initial student for every method)."""
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def crops_per_image(settings: Settings, name: str) -> int:
    """m: FKD and the runs on FKD's crops replay ``num_crops`` per decoded image (FKD m = 1: one); the others one."""
    m = FKD_VARIANTS.get(name, {}).get("num_crops", settings.num_crops)
    return m if name in FKD_VARIANTS or name.endswith("fkd_crops") else 1


def decodes_per_crop(settings: Settings, name: str) -> float:
    """Photos decoded per training crop: 1 / m, except the single-crop tail, whose last pass (m of the E epochs)
    decodes a photo for every crop."""
    m = crops_per_image(settings, name)
    if name != "fkd_tail":
        return 1 / m
    passes = settings.epochs / m
    return ((passes - 1) + m) / settings.epochs


def steps_per_epoch(ctx: Context) -> int:
    """Optimizer steps of one epoch (N crops, N = training images) for every method."""
    n, batch_crops = len(ctx.images.dataset), ctx.settings.batch_crops
    if n % batch_crops:
        raise ValueError(f"The {n} training images must be a multiple of batch_crops ({batch_crops}).")
    return n // batch_crops


def _method_config(ctx: Context, name: str, m: int, max_steps: int | None, curve: bool,
                   fields: dict | None = None) -> FKDConfig:  # fmt: skip
    s, epoch = ctx.settings, steps_per_epoch(ctx)
    fields = {key: value for key, value in {**FKD_VARIANTS.get(name, {}), **(fields or {})}.items()
              if key != "num_crops"}  # fmt: skip
    return FKDConfig(**fields,
        output_dir=str(ctx.work / "runs" / name), student=s.student, input_size=s.input_size, seed=s.seed,
        per_device_train_batch_size=s.batch_crops // m, per_device_eval_batch_size=s.eval_batch_size, num_crops=m,
        max_steps=max_steps or s.epochs * epoch, optim=s.optim, learning_rate=s.learning_rate,
        weight_decay=s.weight_decay, warmup_steps=s.warmup, lr_scheduler_type="cosine", use_cpu=True,
        dataloader_num_workers=s.workers, dataloader_persistent_workers=s.workers > 0,
        eval_strategy="steps" if curve else "no", eval_steps=epoch * (s.eval_every or 1), logging_steps=epoch,
        save_strategy="no", report_to="none", disable_tqdm=True, log_level="warning",
    )  # fmt: skip


def _online_kd(ctx: Context, name: str, timing: bool) -> bool:
    """Whether vanilla KD runs its teacher in the training step: always for timing runs, else only when the label
    sets cannot stand in for it (no kind full set with R >= epochs)."""
    return name == "vanilla_kd" and (timing or ctx.vanilla_labels is None)


def _method_parts(ctx: Context, name: str, timing: bool) -> tuple[type, object, dict]:
    """(trainer class, train_set_factory, trainer kwargs) of a method: only its data and targets differ."""
    if name in FKD_VARIANTS or (name == "vanilla_kd" and not _online_kd(ctx, name, timing)):
        return FKDTrainer, None, {}
    replay = name.endswith("fkd_crops")
    if name.startswith("plain"):
        return PlainTrainer, crop_set_factory(replay=replay), {}
    if name.startswith("relabel"):
        return ReLabelTrainer, crop_set_factory(replay=replay, maps=ctx.maps, map_size=ctx.map_size), {}
    if name == "vanilla_kd":
        meta = ctx.labels.metadata
        return VanillaKDTrainer, crop_set_factory(teacher=ctx.teacher), dict(
            teacher=ctx.teacher, class_indices=ctx.class_indices, label_temperature=meta.temperature,
            precision=meta.precision,
        )  # fmt: skip
    raise ValueError(f"Unknown method {name!r}.")


def _train(ctx: Context, name: str, config: FKDConfig, labels: LabelSet, timing: bool):
    """Builds the method's trainer from the shared student init and trains it; returns the trainer and the
    digest of its initial weights."""
    trainer_class, factory, extra = _method_parts(ctx, name, timing)
    if factory is not None:
        extra["train_set_factory"] = factory
    setup = build_trainer(config, labels=labels, images=ctx.images, eval_dataset=ctx.eval_set,
                          trainer_class=timed(trainer_class), **extra)  # fmt: skip
    trainer = setup.trainer
    digest = weights_digest(trainer.model)
    trainer.remove_callback(PrinterCallback)  # one line per run is printed instead
    trainer.train()
    shutil.rmtree(config.output_dir, ignore_errors=True)
    return trainer, digest


def _final_scores(trainer, eval_set: EvalDataset) -> dict:
    """Top-1, top-5 and the per-image top-1 hits (a '0'/'1' string, for paired differences) on ``eval_set``."""
    output = trainer.predict(eval_set, metric_key_prefix="eval")
    hits = np.asarray(output.predictions)[:, 0] == np.asarray(output.label_ids)
    return {"top1": output.metrics["eval_top1"], "top5": output.metrics["eval_top5"],
            "correct": "".join("1" if hit else "0" for hit in hits)}  # fmt: skip


def run_method(ctx: Context, name: str, labels_dir: Path | None = None, num_crops: int | None = None,
               curve: bool = True, max_steps: int | None = None, fields: dict | None = None) -> dict:  # fmt: skip
    """Trains one method from the shared initial weights (``fields``: more FKDConfig values); returns its timing
    and accuracy.

    ``max_steps`` makes it a short timing run instead (no evaluation): it returns the crops/s of the steps after
    the first one (the first waits for the loader workers to start). Vanilla KD's accuracy run is FKD at m = 1 on
    ``ctx.vanilla_labels`` when there are such labels; its crops/s then count the teacher's generation time."""
    s, timing = ctx.settings, max_steps is not None
    stored_kd = name == "vanilla_kd" and not _online_kd(ctx, name, timing)
    m = num_crops or crops_per_image(s, name)
    config = _method_config(ctx, name, m, max_steps, curve, fields)
    labels = ctx.labels if labels_dir is None and not stored_kd else load_label_set(labels_dir or ctx.vanilla_labels)
    load_before = os.getloadavg()[0]
    trainer, digest = _train(ctx, name, config, labels, timing)
    if timing:
        steps = trainer.clock.steps
        seconds = steps[-1] - steps[0]
        return {"method": name, "steps": len(steps) - 1, "seconds": seconds,
                "crops_per_second": (len(steps) - 1) * s.batch_crops / seconds if seconds > 0 else float("nan")}
    crops, epoch = config.max_steps * s.batch_crops, steps_per_epoch(ctx)
    seconds = trainer.train_seconds
    if stored_kd and ctx.vanilla_teacher_seconds is not None:
        seconds += ctx.vanilla_teacher_seconds
    result = {
        "method": name, "crops_per_image": m, "steps": config.max_steps, "crops": crops,
        "decoded_images": round(crops * (decodes_per_crop(s, name) if num_crops is None else 1 / m)),
        "train_seconds": seconds, "crops_per_second": crops / seconds, "eval_seconds": trainer.eval_seconds,
        **_final_scores(trainer, ctx.eval_set), "initial_weights": digest,
        "curve": [dict(point, epoch=point["step"] / epoch) for point in trainer.curve],
        "load_1min": [load_before, os.getloadavg()[0]],
    }  # fmt: skip
    if name == "vanilla_kd":
        result["teacher"] = "stored" if stored_kd else "online"
        result["teacher_seconds"] = ctx.vanilla_teacher_seconds if stored_kd else trainer.teacher_seconds
        result["student_seconds"] = trainer.train_seconds
    print(f"[compare] {name}: {result['crops_per_second']:.1f} crops/s over {seconds:.1f} s, "
          f"top-1 {100 * result['top1']:.1f}%", flush=True)  # fmt: skip
    return result


def measure_throughput(ctx: Context, methods: list[str]) -> dict:
    """Steady-state training crops/s of each method: ``throughput_rounds`` interleaved rounds (every method once
    per round, in turn) of ``throughput_steps`` timed steps after one untimed step; each method keeps its best
    round, which is the round least disturbed by other jobs on the machine."""
    s = ctx.settings
    methods = [name for name in methods if name != "fkd_tail"]  # its few steps would all be the tail's
    rounds: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(s.throughput_rounds):
        for name in methods:
            result = run_method(ctx, name, curve=False, max_steps=s.throughput_steps + 1)
            rounds[name].append(result["crops_per_second"])
    best = {name: max(values) for name, values in rounds.items()}
    print("[compare] steady crops/s (best of rounds): " + ", ".join(f"{n} {v:.1f}" for n, v in best.items()),
          flush=True)  # fmt: skip
    return {"best": best, "rounds": rounds}


def teacher_accuracy(ctx: Context, batch_size: int = 50) -> float:
    """The teacher's top-1 on the validation images, restricted to the dataset's classes (its own eval transform),
    run by :class:`~fkd_hf.models.TeacherRunner` in the label set's precision."""
    import timm.data

    teacher, validation = ctx.teacher, ctx.validation
    crop_pct = timm.data.resolve_data_config({}, model=teacher.model)["crop_pct"]
    eval_set = EvalDataset(validation.dataset, teacher.input_size, crop_pct, teacher.interpolation,
                           validation.image_column, validation.label_column,
                           eval_label_map(validation, ctx.class_names))  # fmt: skip
    loader = torch.utils.data.DataLoader(eval_set, batch_size=batch_size, collate_fn=collate_crops,
                                         num_workers=ctx.settings.workers)  # fmt: skip
    runner = TeacherRunner(teacher, ctx.labels.metadata.precision, "cpu", ctx.class_indices)
    labels = []

    def pixels():
        for batch in loader:
            labels.append(batch["labels"])
            yield batch["pixel_values"]

    top1, _ = runner.predict(pixels())
    return float(np.mean(top1 == torch.cat(labels).numpy()))
