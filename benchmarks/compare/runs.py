"""The comparison's training runs: every method through :func:`fkd_hf.training.build_trainer`, timed (wall and
CPU), from one initial student, its final student saved; the steady-state throughput rounds; the teacher's own
accuracy."""

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
from fkd_hf.models import save_student
from fkd_hf.models.teacher_runner import TeacherRunner
from fkd_hf.models.teachers import Teacher
from fkd_hf.training import EvalDataset, FKDConfig, FKDSetup, FKDTrainer, build_trainer
from fkd_hf.training.builder import eval_label_map
from fkd_hf.training.data import collate_crops

from ..methods import PlainTrainer, ReLabelTrainer, VanillaKDTrainer, crop_set_factory
from .cost import cpu_seconds
from .rows import FKD_VARIANTS, crops_per_image, decodes_per_crop, fkd_settings
from .settings import Settings
from .trainer_config import protocol_config, steps_per_epoch

__all__ = [
    "Context",
    "timed",
    "weights_digest",
    "same_run_as",
    "save_final_student",
    "run_method",
    "measure_throughput",
    "teacher_accuracy",
]


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
    """Wall-clock and CPU times of training (:func:`~benchmarks.compare.cost.cpu_seconds`: this process and its
    loader workers): once the Trainer's setup is done (``on_train_begin``: optimizer, Accelerate wrapping), wall
    time at the end of every optimizer step, CPU time at the end of the first and the last."""

    def __init__(self):
        self.start, self.steps, self.cpu = None, [], {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.start, self.cpu["start"] = time.perf_counter(), cpu_seconds()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(time.perf_counter())
        now = None
        if len(self.steps) == 1:
            self.cpu["first"] = now = cpu_seconds()
        if state.global_step >= state.max_steps:
            self.cpu["last"] = now or cpu_seconds()


def timed(trainer_class: type) -> type:
    """``trainer_class`` that times its training and records, at each evaluation during training, the training
    time so far (evaluation left out) and the metrics.

    ``train_seconds`` runs from the end of the Trainer's setup to the end of the last optimizer step, less the time
    spent in evaluations: steps, data loading (worker start included) and nothing else. ``train_cpu`` is the CPU
    time of the same span, evaluations left out: ``(this process, its children)``."""

    class Timed(trainer_class):
        def train(self, *args, **kwargs):
            self.curve, self.evaluations, self.clock = [], [], _Clock()
            self.add_callback(self.clock)
            self._in_train = True
            try:
                result = super().train(*args, **kwargs)
            finally:
                self._in_train = False
            last, cpu = self.clock.steps[-1], self.clock.cpu
            during = [evaluation for evaluation in self.evaluations if evaluation[0] < last]
            self.eval_seconds = sum(seconds for _, seconds, _ in during)
            self.train_seconds = last - self.clock.start - self.eval_seconds
            self.train_cpu = tuple(
                cpu["last"][i] - cpu["start"][i] - sum(used[i] for *_, used in during) for i in range(2)
            )
            return result

        def evaluate(self, *args, **kwargs):
            start, cpu = time.perf_counter(), cpu_seconds()
            metrics = super().evaluate(*args, **kwargs)
            clock = getattr(self, "clock", None)
            if getattr(self, "_in_train", False) and clock.start is not None:
                spent_before = sum(seconds for _, seconds, _ in self.evaluations)
                self.curve.append(
                    {
                        "step": self.state.global_step,
                        "train_seconds": start - clock.start - spent_before,
                        "top1": metrics["eval_top1"],
                        "top5": metrics["eval_top5"],
                    }
                )
                used = tuple(after - before for after, before in zip(cpu_seconds(), cpu))
                self.evaluations.append((start, time.perf_counter() - start, used))
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


def _method_config(
    ctx: Context, name: str, m: int, max_steps: int | None, curve: bool, fields: dict | None = None
) -> FKDConfig:
    fields = {
        key: value for key, value in {**FKD_VARIANTS.get(name, {}), **(fields or {})}.items() if key != "num_crops"
    }
    return protocol_config(ctx, name, m, max_steps, curve, **fields)


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
        return (
            VanillaKDTrainer,
            crop_set_factory(teacher=ctx.teacher),
            dict(
                teacher=ctx.teacher,
                class_indices=ctx.class_indices,
                label_temperature=meta.temperature,
                precision=meta.precision,
            ),
        )
    raise ValueError(f"Unknown method {name!r}.")


def same_run_as(ctx: Context, name: str, others) -> str | None:
    """The first of ``others`` (FKD rows) whose run would be ``name``'s run: the same FKD settings on the same
    labels (FKD as shipped is often one of the variants); None if there is none."""
    if name not in FKD_VARIANTS:
        return None

    def key(row: str) -> dict:
        return fkd_settings(_method_config(ctx, row, crops_per_image(ctx.settings, row), None, True))

    mine = key(name)
    return next((row for row in others if row != name and row in FKD_VARIANTS and key(row) == mine), None)


def save_final_student(setup: FKDSetup, directory: Path) -> Path:
    """Saves the trained student of ``setup`` as ``fkd-hf train`` does: a safetensors folder that
    ``timm.create_model("local-dir:DIR", pretrained=True)`` loads, with the student's eval transform."""
    trainer = setup.trainer
    return save_student(trainer.accelerator.unwrap_model(trainer.model), directory, setup.data_config)


def _train(ctx: Context, name: str, config: FKDConfig, labels: LabelSet, timing: bool, save_to: Path | None = None):
    """Builds the method's trainer from the shared student init and trains it, saving the final student to
    ``save_to`` (a safetensors folder timm loads); returns the trainer and the digest of its initial weights."""
    trainer_class, factory, extra = _method_parts(ctx, name, timing)
    if factory is not None:
        extra["train_set_factory"] = factory
    setup = build_trainer(
        config, labels=labels, images=ctx.images, eval_dataset=ctx.eval_set, trainer_class=timed(trainer_class), **extra
    )
    trainer = setup.trainer
    digest = weights_digest(trainer.model)
    trainer.remove_callback(PrinterCallback)  # one line per run is printed instead
    trainer.train()
    if save_to is not None:
        save_final_student(setup, save_to)
    shutil.rmtree(config.output_dir, ignore_errors=True)
    return trainer, digest


def _final_scores(trainer, eval_set: EvalDataset) -> dict:
    """Top-1, top-5 and the per-image top-1 hits (a '0'/'1' string, for paired differences) on ``eval_set``."""
    output = trainer.predict(eval_set, metric_key_prefix="eval")
    hits = np.asarray(output.predictions)[:, 0] == np.asarray(output.label_ids)
    return {
        "top1": output.metrics["eval_top1"],
        "top5": output.metrics["eval_top5"],
        "correct": "".join("1" if hit else "0" for hit in hits),
    }


def _timing_result(name: str, trainer, batch_crops: int) -> dict:
    """A timing run's crops/s and CPU ms per crop (all processes, and the training process alone) over the steps
    after the first; vanilla KD's teacher CPU seconds per crop."""
    steps, cpu = trainer.clock.steps, trainer.clock.cpu
    seconds, crops = steps[-1] - steps[0], (len(steps) - 1) * batch_crops
    main, children = (cpu["last"][i] - cpu["first"][i] for i in range(2))
    result = {
        "method": name,
        "steps": len(steps) - 1,
        "seconds": seconds,
        "crops_per_second": crops / seconds if seconds > 0 else float("nan"),
        "cpu_ms_per_crop": 1000 * (main + children) / crops if crops else float("nan"),
        "main_cpu_ms_per_crop": 1000 * main / crops if crops else float("nan"),
    }
    if getattr(trainer, "teacher_crops", 0):
        result["teacher_cpu_per_crop"] = trainer.teacher_cpu_seconds / trainer.teacher_crops
    return result


def run_method(
    ctx: Context,
    name: str,
    labels_dir: Path | None = None,
    num_crops: int | None = None,
    curve: bool = True,
    max_steps: int | None = None,
    fields: dict | None = None,
    save_to: Path | None = None,
) -> dict:
    """Trains one method from the shared initial weights (``fields``: more FKDConfig values; ``save_to``: where
    its final student goes); returns its timing, CPU time and accuracy.

    ``max_steps`` makes it a short timing run instead (no evaluation): it returns the crops/s and CPU per crop of
    the steps after the first one (the first waits for the loader workers to start). Vanilla KD's accuracy run is
    FKD at m = 1 on ``ctx.vanilla_labels`` when there are such labels; its crops/s then count the teacher's
    generation time, and its whole-run CPU time the online teacher's (:mod:`~benchmarks.compare.cost`)."""
    s, timing = ctx.settings, max_steps is not None
    stored_kd = name == "vanilla_kd" and not _online_kd(ctx, name, timing)
    m = num_crops or crops_per_image(s, name)
    labels = ctx.labels if labels_dir is None and not stored_kd else load_label_set(labels_dir or ctx.vanilla_labels)
    if s.batch_crops % m or m > labels.metadata.stored_crops:
        raise ValueError(
            f"{name} replays m = {m} crops per photo: batch_crops ({s.batch_crops}) must be a multiple "
            f"of it, and the label set's stored crops ({labels.metadata.stored_crops}) at least m."
        )
    config = _method_config(ctx, name, m, max_steps, curve, fields)
    load_before = os.getloadavg()[0]
    trainer, digest = _train(ctx, name, config, labels, timing, save_to)
    if timing:
        return _timing_result(name, trainer, s.batch_crops)
    crops, epoch = config.max_steps * s.batch_crops, steps_per_epoch(ctx)
    seconds = trainer.train_seconds
    if stored_kd and ctx.vanilla_teacher_seconds is not None:
        seconds += ctx.vanilla_teacher_seconds
    result = {
        "method": name,
        "crops_per_image": m,
        "steps": config.max_steps,
        "crops": crops,
        "decoded_images": round(crops * (decodes_per_crop(s, name) if num_crops is None else 1 / m)),
        "train_seconds": seconds,
        "crops_per_second": crops / seconds,
        "eval_seconds": trainer.eval_seconds,
        **_final_scores(trainer, ctx.eval_set),
        "initial_weights": digest,
        "curve": [dict(point, epoch=point["step"] / epoch) for point in trainer.curve],
        "load_1min": [load_before, os.getloadavg()[0]],
        "cpu_seconds": sum(trainer.train_cpu),
        "main_cpu_seconds": trainer.train_cpu[0],
    }
    if name in FKD_VARIANTS or stored_kd:
        result["fkd_settings"] = fkd_settings(trainer.args)
    if save_to is not None:  # relative to the run's output folder, where it is saved
        result["student"] = str(Path(save_to.parent.name, save_to.name))
    if name == "vanilla_kd":
        result["teacher"] = "stored" if stored_kd else "online"
        result["teacher_seconds"] = ctx.vanilla_teacher_seconds if stored_kd else trainer.teacher_seconds
        result["student_seconds"] = trainer.train_seconds
    print(
        f"[compare] {name}: {result['crops_per_second']:.1f} crops/s over {seconds:.1f} s, "
        f"top-1 {100 * result['top1']:.1f}%",
        flush=True,
    )
    return result


def measure_throughput(ctx: Context, methods: list[str]) -> dict:
    """Steady-state training crops/s of each method: ``throughput_rounds`` interleaved rounds (every method once
    per round, in turn) of ``throughput_steps`` timed steps after one untimed step; each method keeps its best
    round, which is the round least disturbed by other jobs on the machine; its CPU ms per crop are those of that
    round. A method whose run would be another's (:func:`same_run_as`) gets that one's figures. Vanilla KD's online
    teacher CPU seconds per crop are kept for every round (``teacher_cpu_per_crop``)."""
    s = ctx.settings
    methods = [name for name in methods if name != "fkd_tail"]  # its few steps would all be the tail's
    twins = {name: same_run_as(ctx, name, methods[:i]) for i, name in enumerate(methods)}
    timed_methods = [name for name in methods if twins[name] is None]
    rounds: dict[str, list[dict]] = {name: [] for name in timed_methods}
    for _ in range(s.throughput_rounds):
        for name in timed_methods:
            rounds[name].append(run_method(ctx, name, curve=False, max_steps=s.throughput_steps + 1))
    rounds.update({name: rounds[twin] for name, twin in twins.items() if twin is not None})
    fastest = {name: max(values, key=lambda r: r["crops_per_second"]) for name, values in rounds.items() if values}
    best = {name: result["crops_per_second"] for name, result in fastest.items()}
    print(
        "[compare] steady crops/s (best of rounds): " + ", ".join(f"{n} {v:.1f}" for n, v in best.items()), flush=True
    )
    return {
        "best": best,
        "rounds": {name: [r["crops_per_second"] for r in values] for name, values in rounds.items()},
        "cpu_ms_per_crop": {name: result["cpu_ms_per_crop"] for name, result in fastest.items()},
        "main_cpu_ms_per_crop": {name: result["main_cpu_ms_per_crop"] for name, result in fastest.items()},
        "teacher_cpu_per_crop": [r["teacher_cpu_per_crop"] for r in rounds.get("vanilla_kd", [])],
        "same_run_as": {name: twin for name, twin in twins.items() if twin is not None},
    }


def teacher_accuracy(ctx: Context, batch_size: int = 50) -> float:
    """The teacher's top-1 on the validation images, restricted to the dataset's classes (its own eval transform),
    run by :class:`~fkd_hf.models.TeacherRunner` in the label set's precision."""
    import timm.data

    teacher, validation = ctx.teacher, ctx.validation
    crop_pct = timm.data.resolve_data_config({}, model=teacher.model)["crop_pct"]
    eval_set = EvalDataset(
        validation.dataset,
        teacher.input_size,
        crop_pct,
        teacher.interpolation,
        validation.image_column,
        validation.label_column,
        eval_label_map(validation, ctx.class_names),
    )
    loader = torch.utils.data.DataLoader(
        eval_set, batch_size=batch_size, collate_fn=collate_crops, num_workers=ctx.settings.workers
    )
    runner = TeacherRunner(teacher, ctx.labels.metadata.precision, "cpu", ctx.class_indices)
    labels = []

    def pixels():
        for batch in loader:
            labels.append(batch["labels"])
            yield batch["pixel_values"]

    top1, _ = runner.predict(pixels())
    return float(np.mean(top1 == torch.cat(labels).numpy()))
