"""FKD against plain training, vanilla KD and ReLabel, on one machine in one run: throughput, label storage, accuracy.

    python -m benchmarks compare --quick                  # about 4 minutes on 2 CPU cores: the whole protocol, small
    python -m benchmarks compare --publish                # full: all of imagenette-mini, about an hour on 2 cores
    python -m benchmarks compare --labels DIR             # reuse an FKD label set of these images (any kind)
    python -m benchmarks compare --render outputs/bench_compare/results.json --publish   # re-render a (partial) run

The four methods share the student (architecture, initial weights), the optimizer and schedule, the crops per
optimizer step, the seed and data order, the loader workers, the crop pipeline and the evaluation; they differ only
in what each decoded image yields and in the targets:

1. plain: one RandomResizedCrop + flip per decoded image, hard labels, cross-entropy;
2. vanilla_kd: the same crops, and the teacher runs on every crop in the training step (timm's online KD);
3. relabel: the same crops, targets by RoIAlign on a per-image label map from the teacher (ReLabel);
4. fkd: ``fkd-hf generate`` labels, ``num_crops`` stored crops replayed per decoded image, ``FKDTrainer``.

An epoch is N crops (N = training images) for every method, so E epochs are the same optimizer steps for all;
FKD's E epochs are E / num_crops passes over the images. Two more runs isolate the label source: plain and ReLabel
on exactly FKD's batches (same images, same stored crops, same order). The ablation trains FKD again with label
sets cut from one ``--kind full`` generation: fewer stored crops R and each soft-label kind/k. Outputs go to
``--output-dir`` (report.md, results.json, compare.png; results.json is rewritten after every run, so an
interrupted run keeps what it measured); ``--publish`` also writes the report and the plot into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from fkd_hf.generation import GenerateConfig, generate
from fkd_hf.labels import join_labels, load_label_set
from fkd_hf.models import create_student, load_teacher, resolve_class_map, student_data_config
from fkd_hf.training import EvalDataset, FKDConfig, FKDCropDataset, FKDTrainer
from fkd_hf.labels.images import ImageSource, image_bytes, image_key, load_images
from fkd_hf.labels.format import DATA_DIR, SHARD_PATTERN, fixed_size_to_numpy, rows_to_table, write_shard
from fkd_hf.models.pixels import normalize
from fkd_hf.training.data import collate_crops
from fkd_hf.labels.kinds import DEFAULT_K, resolve_k

from .methods import CropDataset, PlainTrainer, ReLabelTrainer, VanillaKDTrainer
from .relabel import generate_label_maps, join_label_maps, load_label_maps

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH_DIR.parent.parent / "shared" / "data" / "imagenette-mini"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
MAIN_METHODS = ("plain", "vanilla_kd", "relabel", "fkd")
SAME_CROP_METHODS = ("plain_fkd_crops", "relabel_fkd_crops")
LABELS = {
    "plain": "plain",
    "vanilla_kd": "vanilla KD",
    "relabel": "ReLabel",
    "fkd": "FKD",
    "plain_fkd_crops": "plain, FKD's crops",
    "relabel_fkd_crops": "ReLabel, FKD's crops",
}

# Settings of the two modes; every one can be overridden by its flag.
PRESETS = {
    "quick": dict(
        train_per_class=20, val_per_class=20, epochs=8, stored_crops=4, num_crops=4, batch_crops=20,
        eval_batch_size=100, throughput_rounds=2, throughput_steps=5,
        ablation=["kind=hard", "kind=full", "R=2"],
    ),
    "full": dict(
        train_per_class=None, val_per_class=None, epochs=8, stored_crops=8, num_crops=4, batch_crops=120,
        eval_batch_size=200, throughput_rounds=3, throughput_steps=8,
        ablation=["kind=hard", "kind=smoothing", "k=2", "kind=marginal_renorm", "kind=full", "R=4", "R=2", "m=2", "m=1"],
    ),
}
COMMON = dict(
    student="mobilenetv3_small_050", input_size=112, teacher="efficientnet-lite0", relabel_size=None, relabel_k=5,
    kind="marginal_smoothing", k=5, optim="adamw_torch", learning_rate=0.002, weight_decay=0.05, warmup=0.05,
    workers=1, threads=None, prep_threads=None, seed=0,
)


@dataclasses.dataclass
class Settings:
    """The resolved protocol of one run (a preset plus any flags); saved in results.json."""

    mode: str
    dataset: str
    train_per_class: int | None
    val_per_class: int | None
    epochs: int
    stored_crops: int
    num_crops: int
    batch_crops: int
    eval_batch_size: int
    throughput_rounds: int
    throughput_steps: int
    ablation: list[str]
    student: str
    input_size: int
    teacher: str
    relabel_size: int | None
    relabel_k: int
    kind: str
    k: int
    optim: str
    learning_rate: float
    weight_decay: float
    warmup: float
    workers: int
    threads: int | None
    prep_threads: int | None
    seed: int


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="The small preset (a smoke test of the whole protocol).")
    parser.add_argument("--dataset", default=str(DEFAULT_DATA), help="Folder with train/<class>/ and val/<class>/.")
    parser.add_argument("--labels", default=None, help="Reuse this FKD label set (any kind; matched by image_key).")
    parser.add_argument("--relabel-maps", default=None, help="Reuse ReLabel maps written by an earlier run.")
    parser.add_argument("--work-dir", default=None, help="Where labels, maps and runs go (default: a temporary folder).")
    parser.add_argument("--output-dir", default="outputs/bench_compare", help="report.md, results.json, compare.png.")
    parser.add_argument("--publish", action="store_true", help="Also update benchmarks/RESULTS.md and the PNG there.")
    parser.add_argument("--methods", nargs="+", default=None, help=f"Subset of {MAIN_METHODS + SAME_CROP_METHODS}.")
    parser.add_argument("--no-ablation", action="store_true", help="Skip the FKD ablation runs.")
    parser.add_argument("--render", default=None, metavar="RESULTS_JSON",
                        help="Only rewrite report.md and the plot (and with --publish, RESULTS.md) from a results.json, "
                             "finished or not.")
    preset = parser.add_argument_group("protocol (defaults from the preset; see the docstring)")
    preset.add_argument("--train-per-class", type=int, help="Training images per class (default: quick 20, full all).")
    preset.add_argument("--val-per-class", type=int, help="Validation images per class (default: quick 20, full all).")
    preset.add_argument("--epochs", type=int, help="Epochs of N crops each, for every method (quick 8, full 8).")
    preset.add_argument("--stored-crops", type=int, help="R: crops stored per image by fkd-hf generate (quick 4, full 8).")
    preset.add_argument("--num-crops", type=int, help="m: crops FKD replays per decoded image and pass (4).")
    preset.add_argument("--batch-crops", type=int, help="Crops per optimizer step, every method (quick 20, full 120).")
    preset.add_argument("--eval-batch-size", type=int, help="Images per evaluation batch.")
    preset.add_argument("--throughput-rounds", type=int, help="Interleaved timing rounds per method (quick 2, full 3).")
    preset.add_argument("--throughput-steps", type=int, help="Timed steps per round (quick 5, full 8).")
    preset.add_argument("--ablation", nargs="*", help="FKD ablation runs: 'R=4', 'kind=hard', 'k=2', 'kind=full,R=4'.")
    preset.add_argument("--student", help="timm student, trained from scratch (mobilenetv3_small_050).")
    preset.add_argument("--input-size", type=int, help="Student input size (112).")
    preset.add_argument("--teacher", help="Teacher (efficientnet-lite0), restricted to the dataset's classes.")
    preset.add_argument("--relabel-size", type=int, help="ReLabel map input size (default: the teacher's, 224).")
    preset.add_argument("--relabel-k", type=int, help="Classes stored per ReLabel map position (5).")
    preset.add_argument("--kind", help="FKD's soft-label kind (marginal_smoothing).")
    preset.add_argument("--k", type=int, help="FKD's stored classes per crop (5).")
    preset.add_argument("--optim", help="Optimizer, every method (adamw_torch).")
    preset.add_argument("--learning-rate", type=float, help="Peak learning rate (0.002), cosine schedule.")
    preset.add_argument("--weight-decay", type=float, help="Weight decay (0.05).")
    preset.add_argument("--warmup", type=float, help="Warmup, a fraction of the steps (0.05).")
    preset.add_argument("--workers", type=int, help="DataLoader workers, every method (1).")
    preset.add_argument("--threads", type=int, help="torch threads of the main process during training, for the "
                        "student and vanilla KD's teacher alike (default: the cores less the loader workers, >= 1).")
    preset.add_argument("--prep-threads", type=int, help="torch threads while FKD labels and ReLabel maps are made "
                        "(no loader workers run then; default: every core).")
    preset.add_argument("--seed", type=int, help="Seed of the student init, data order and crops (0).")
    return parser


def resolve_settings(args: argparse.Namespace) -> Settings:
    mode = "quick" if args.quick else "full"
    values = {**COMMON, **PRESETS[mode]}
    for field in dataclasses.fields(Settings):
        given = getattr(args, field.name, None)
        if given is not None and field.name not in ("mode", "dataset"):
            values[field.name] = given
    settings = Settings(mode=mode, dataset=str(Path(args.dataset).resolve()), **values)
    if settings.threads is None:  # one core per loader worker, the rest for compute: no oversubscription
        settings.threads = max(1, (os.cpu_count() or 1) - settings.workers)
    if settings.prep_threads is None:
        settings.prep_threads = os.cpu_count() or 1
    if settings.batch_crops % settings.num_crops:
        raise ValueError(f"batch_crops ({settings.batch_crops}) must be a multiple of num_crops ({settings.num_crops}).")
    if settings.num_crops > settings.stored_crops:
        raise ValueError(f"num_crops ({settings.num_crops}) cannot exceed the stored crops R ({settings.stored_crops}).")
    return settings


# ----------------------------------------------------------------------------------------------------------------
# Data and labels


def prepare_data(settings: Settings, work: Path) -> str:
    """``imagefolder:`` spec of the data: the folder itself, or a class-balanced subset of symlinks (files are
    read in place, never copied)."""
    root = Path(settings.dataset)
    if settings.train_per_class is None and settings.val_per_class is None:
        return f"imagefolder:{root}"
    subset = work / "data"
    if subset.exists():
        shutil.rmtree(subset)
    for split, per_class in (("train", settings.train_per_class), ("val", settings.val_per_class)):
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            files = sorted(p for p in class_dir.iterdir() if p.is_file())
            target = subset / split / class_dir.name
            target.mkdir(parents=True)
            for path in files[: per_class or len(files)]:
                (target / path.name).symlink_to(path.resolve())
    return f"imagefolder:{subset}"


def image_keys(images: ImageSource) -> list[str]:
    column = images.image_column
    values = images.dataset.select_columns([column]).with_format("arrow")[column].to_pylist()
    return [image_key(image_bytes(value)) for value in values]


def derive_label_set(source: Path, output_dir: Path, images: ImageSource, keys: list[str], kind: str, k: int,
                     num_crops: int) -> Path:
    """A label set for ``images`` (rows matched by image_key) cut from ``source``: its first ``num_crops`` stored
    crops and first ``k`` classes, read as ``kind``.

    Stored top-k lists are sorted and hold the teacher's probabilities whatever the kind, so at the same R the cut
    is exactly what ``fkd-hf generate --kind KIND --k K`` writes with the same seed. Fewer crops keep the first
    ``num_crops`` stored ones, each with its own flip and label (a direct run with a smaller R samples the same
    boxes but other flips)."""
    labels = load_label_set(source)
    meta = labels.metadata
    k = resolve_k(kind, k, meta.num_classes)
    if num_crops > meta.stored_crops or k > meta.k:
        raise ValueError(f"{source} stores R={meta.stored_crops}, k={meta.k}: cannot cut R={num_crops}, k={k}.")
    table = pa.concat_tables(pq.read_table(p) for p in sorted((source / DATA_DIR).glob("*.parquet")))
    position = {key: i for i, key in enumerate(table.column("image_key").to_pylist())}
    missing = [key for key in keys if key not in position]
    if missing:
        raise ValueError(f"{len(missing)} training images are not in the label set {source}.")
    table = table.take(pa.array([position[key] for key in keys]))
    n = len(keys)

    def column(name, shape):
        return fixed_size_to_numpy(table.column(name), (n, *shape))

    columns = {
        "image_key": keys,
        "crops": column("crops", (meta.stored_crops, 4))[:, :num_crops],
        "flips": column("flips", (meta.stored_crops,))[:, :num_crops],
        "topk_indices": column("topk_indices", (meta.stored_crops, meta.k))[:, :num_crops, :k],
        "topk_values": column("topk_values", (meta.stored_crops, meta.k))[:, :num_crops, :k],
    }
    derived = dataclasses.replace(
        meta, kind=kind, k=k, stored_crops=num_crops, num_rows=n, num_shards=1, rows_per_shard=n, skipped_rows=[],
        dataset=images.spec, dataset_split=images.split, image_column=images.image_column,
        label_column=images.label_column,
    )
    if output_dir.exists():
        shutil.rmtree(output_dir)
    path = output_dir / DATA_DIR / SHARD_PATTERN.format(0)
    write_shard(rows_to_table(columns, derived.features()), path)
    derived.bytes_per_crop = path.stat().st_size / (n * num_crops)
    derived.save(output_dir)
    return output_dir


def label_bytes_per_image(directory: Path) -> float:
    meta = load_label_set(directory).metadata
    return meta.bytes_per_crop * meta.stored_crops


def parse_ablation(spec: str, settings: Settings) -> dict:
    """``'R=4'``, ``'kind=hard'``, ``'k=2'``, ``'m=2'`` or a combination (``'kind=full,R=4'``) -> one FKD run's labels.

    Unset values are the main run's; a kind alone gets its default k (full: every class); m is at most R."""
    given: dict = {}
    for part in filter(None, spec.split(",")):
        key, _, value = part.partition("=")
        if key not in ("R", "kind", "k", "m"):
            raise ValueError(f"Unknown ablation setting {part!r}: use R=, kind=, k= or m=.")
        given[key] = value if key == "kind" else int(value)
    kind = given.get("kind", settings.kind)
    k = given.get("k", settings.k if kind == settings.kind else DEFAULT_K.get(kind))
    stored = given.get("R", settings.stored_crops)
    return {"R": stored, "m": given.get("m", min(settings.num_crops, stored)), "kind": kind, "k": k}


# ----------------------------------------------------------------------------------------------------------------
# Runs


class _Clock(TrainerCallback):
    """Wall-clock times of training: once the Trainer's setup is done (``on_train_begin``: optimizer, Accelerate
    wrapping) and at the end of every optimizer step."""

    def __init__(self):
        self.start, self.steps = None, []

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(time.perf_counter())


def _timed(trainer_class):
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
                )
                self.evaluations.append((start, time.perf_counter() - start))
            return metrics

    Timed.__name__ = Timed.__qualname__ = f"Timed{trainer_class.__name__}"
    return Timed


def _weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


@dataclasses.dataclass
class Context:
    """What every run shares."""

    settings: Settings
    work: Path
    images: ImageSource
    keys: list[str]
    validation: ImageSource
    class_names: list[str]
    teacher: object
    class_indices: list[int]
    label_temperature: float
    label_dirs: dict
    maps_dir: Path | None
    map_size: int | None


def _eval_label_map(validation: ImageSource, class_names: list[str]) -> list[int] | None:
    names = validation.label_names
    if names is None or list(names) == list(class_names):
        return None
    return [class_names.index(name) for name in names]


def run_method(ctx: Context, name: str, labels_dir: Path | None = None, num_crops: int | None = None,
               curve: bool = True, max_steps: int | None = None) -> dict:
    """Trains one method from the shared initial weights; returns its timing and accuracy.

    ``max_steps`` makes it a short timing run instead (no evaluation): it returns the crops/s of the steps after
    the first one (the first waits for the loader workers to start)."""
    s = ctx.settings
    from transformers import set_seed

    set_seed(s.seed)
    model = create_student(s.student, ctx.class_names)
    digest = _weights_digest(model)
    data = student_data_config(model, s.input_size)
    m = num_crops or (s.num_crops if name.startswith("fkd") or name.endswith("fkd_crops") else 1)
    n = len(ctx.images.dataset)
    steps_per_epoch = n // s.batch_crops
    if n % s.batch_crops:
        raise ValueError(f"The {n} training images must be a multiple of batch_crops ({s.batch_crops}).")
    config = FKDConfig(
        output_dir=str(ctx.work / "runs" / name), per_device_train_batch_size=s.batch_crops // m,
        per_device_eval_batch_size=s.eval_batch_size, num_crops=m, max_steps=max_steps or s.epochs * steps_per_epoch,
        optim=s.optim, learning_rate=s.learning_rate, weight_decay=s.weight_decay, warmup_steps=s.warmup,
        lr_scheduler_type="cosine", input_size=data["input_size"][0], mean=list(data["mean"]), std=list(data["std"]),
        interpolation=data["interpolation"], crop_pct=data["crop_pct"], use_cpu=True,
        dataloader_num_workers=s.workers, dataloader_persistent_workers=s.workers > 0,
        eval_strategy="steps" if curve else "no", eval_steps=steps_per_epoch, logging_steps=steps_per_epoch,
        save_strategy="no", report_to="none", disable_tqdm=True, log_level="warning", seed=s.seed,
    )
    eval_set = EvalDataset(
        ctx.validation.dataset, data["input_size"], data["crop_pct"], data["interpolation"],
        ctx.validation.image_column, ctx.validation.label_column, _eval_label_map(ctx.validation, ctx.class_names),
    )
    size, rows = data["input_size"], ctx.images.dataset
    common = dict(size=size, interpolation=config.train_interpolation, seed=s.seed,
                  image_column=ctx.images.image_column, label_column=ctx.images.label_column)
    replay = None
    if name == "fkd" or name.endswith("fkd_crops"):
        labels = load_label_set(labels_dir or ctx.label_dirs["main"])
        rows = join_labels(ctx.images, labels)
        replay = labels.metadata
    extra = {}
    if name == "fkd":
        train_set = FKDCropDataset(rows, replay, m, size, config.train_interpolation, s.seed, ctx.images.image_column)
        trainer_class = FKDTrainer
    elif name.startswith("plain"):
        train_set = CropDataset(rows, m, replay=replay, **common)
        trainer_class = PlainTrainer
    elif name == "vanilla_kd":
        teacher = ctx.teacher
        train_set = CropDataset(rows, m, teacher_size=teacher.input_size, teacher_interpolation=teacher.interpolation,
                                **common)
        trainer_class = VanillaKDTrainer
        extra = dict(teacher=teacher, class_indices=ctx.class_indices, label_temperature=ctx.label_temperature)
    elif name.startswith("relabel"):
        maps, _ = load_label_maps(ctx.maps_dir)
        rows = join_label_maps(rows, ctx.images.image_column, maps)
        train_set = CropDataset(rows, m, replay=replay, map_size=ctx.map_size, **common)
        trainer_class = ReLabelTrainer
    else:
        raise ValueError(f"Unknown method {name!r}.")
    trainer = _timed(trainer_class)(model, config, train_set, eval_dataset=eval_set, **extra)
    trainer.remove_callback(PrinterCallback)  # one line per run is printed below instead
    load_before = os.getloadavg()[0]
    trainer.train()
    if max_steps is not None:
        shutil.rmtree(config.output_dir, ignore_errors=True)
        steps = trainer.clock.steps
        seconds = steps[-1] - steps[0]
        return {"method": name, "steps": len(steps) - 1, "seconds": seconds,
                "crops_per_second": (len(steps) - 1) * s.batch_crops / seconds if seconds > 0 else float("nan")}
    if curve:
        final = trainer.curve[-1]
    else:
        metrics = trainer.evaluate()
        final = {"top1": metrics["eval_top1"], "top5": metrics["eval_top5"]}
    crops = config.max_steps * s.batch_crops
    result = {
        "method": name, "crops_per_image": m, "steps": config.max_steps, "crops": crops,
        "decoded_images": crops // m, "train_seconds": trainer.train_seconds,
        "crops_per_second": crops / trainer.train_seconds, "eval_seconds": trainer.eval_seconds,
        "top1": final["top1"], "top5": final["top5"], "initial_weights": digest,
        "curve": [dict(point, epoch=point["step"] / steps_per_epoch) for point in trainer.curve],
        "load_1min": [load_before, os.getloadavg()[0]],
    }
    if name == "vanilla_kd":
        result["teacher_seconds"] = trainer.teacher_seconds
    print(f"[compare] {name}: {result['crops_per_second']:.1f} crops/s over {trainer.train_seconds:.1f} s, "
          f"top-1 {100 * result['top1']:.1f}%", flush=True)
    shutil.rmtree(config.output_dir, ignore_errors=True)
    return result


def teacher_accuracy(ctx: Context, batch_size: int = 50) -> float:
    """The teacher's top-1 on the validation images, restricted to the dataset's classes (its own eval transform)."""
    import timm.data

    teacher = ctx.teacher
    cfg = timm.data.resolve_data_config({}, model=teacher.model)
    eval_set = EvalDataset(ctx.validation.dataset, teacher.input_size, cfg["crop_pct"], teacher.interpolation,
                           ctx.validation.image_column, ctx.validation.label_column,
                           _eval_label_map(ctx.validation, ctx.class_names))
    loader = torch.utils.data.DataLoader(eval_set, batch_size=batch_size, collate_fn=collate_crops,
                                         num_workers=ctx.settings.workers)
    mean, std = torch.tensor(teacher.mean), torch.tensor(teacher.std)
    index = torch.tensor(ctx.class_indices)
    hits = total = 0
    with torch.inference_mode():
        for batch in loader:
            logits = teacher.logits(normalize(batch["pixel_values"], mean, std)).index_select(-1, index)
            hits += int((logits.argmax(-1) == batch["labels"]).sum())
            total += len(batch["labels"])
    return hits / total


def measure_throughput(ctx: Context, methods: list[str]) -> dict:
    """Steady-state training crops/s of each method: ``throughput_rounds`` interleaved rounds (every method once
    per round, in turn) of ``throughput_steps`` timed steps after one untimed step; each method keeps its best
    round, which is the round least disturbed by other jobs on the machine."""
    s = ctx.settings
    rounds: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(s.throughput_rounds):
        for name in methods:
            result = run_method(ctx, name, curve=False, max_steps=s.throughput_steps + 1)
            rounds[name].append(result["crops_per_second"])
    best = {name: max(values) for name, values in rounds.items()}
    print("[compare] steady crops/s (best of rounds): " + ", ".join(f"{n} {v:.1f}" for n, v in best.items()),
          flush=True)
    return {"best": best, "rounds": rounds}


def target_cost(batch_crops: int, num_crops: int, map_size: int, k: int, num_classes: int, reps: int = 20) -> dict:
    """Milliseconds to build one batch's targets from stored labels: ReLabel (dense map from top-k, RoIAlign,
    softmax; one map per crop at 1 crop per image) and FKD (:func:`~fkd_hf.reconstruct` of ``batch_crops`` crops),
    at ``num_classes`` classes. Median of ``reps`` on random labels."""
    from fkd_hf.labels.kinds import reconstruct

    from .relabel import relabel_targets

    generator = torch.Generator().manual_seed(0)
    k = min(k, num_classes)

    def topk(*shape):
        scores = torch.rand(*shape, num_classes, generator=generator)
        values, indices = scores.topk(k, dim=-1)
        return indices, values

    map_indices, map_values = topk(batch_crops, map_size, map_size)
    crop_image = torch.arange(batch_crops)
    corner = torch.rand(batch_crops, 2, generator=generator) * 0.5
    boxes = torch.cat([corner, torch.full((batch_crops, 2), 0.5)], dim=1)
    indices, values = topk(batch_crops)

    def median_ms(fn):
        times = []
        for _ in range(reps + 1):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000 * float(np.median(times[1:]))

    return {
        "num_classes": num_classes,
        "relabel_ms": median_ms(lambda: relabel_targets(map_indices, map_values, crop_image, boxes, num_classes)),
        "fkd_ms": median_ms(lambda: reconstruct(indices, values, "marginal_smoothing", num_classes)),
    }


# ----------------------------------------------------------------------------------------------------------------
# Report


def machine_info() -> dict:
    import accelerate
    import datasets
    import timm
    import torchvision
    import transformers

    import fkd_hf

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {"fkd_hf": fkd_hf.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                     "timm": timm.__version__, "transformers": transformers.__version__,
                     "datasets": datasets.__version__, "accelerate": accelerate.__version__},
    }


def _std_error(runs: dict, n_val: int) -> str:
    """The binomial standard error, in points, of a top-1 measured on ``n_val`` images, at the runs' mean top-1."""
    if not runs:
        return "-"
    p = float(np.mean([run["top1"] for run in runs.values()]))
    return f"{100 * (p * (1 - p) / max(n_val, 1)) ** 0.5:.1f}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _speeds(results: dict) -> tuple[dict, dict]:
    """crops/s per method: steady state (best interleaved round) and over the whole accuracy run."""
    steady = results.get("throughput", {}).get("best", {})
    whole = {name: run["crops_per_second"] for name, run in results["runs"].items()}
    return steady, whole


def targets_check(results: dict) -> list[tuple[str, bool, str]]:
    """The issue's targets: (target, met, the measured figure). Speed targets are judged on the steady-state
    crops/s (best of the interleaved rounds); the whole-run ratio is shown next to it."""
    runs = results["runs"]
    if not all(name in runs for name in MAIN_METHODS):
        return []
    steady, whole = _speeds(results)
    speed = steady if all(name in steady for name in MAIN_METHODS) else whole
    top1 = {name: runs[name]["top1"] for name in MAIN_METHODS}
    checks = []
    for other, label, factor in (("vanilla_kd", "vanilla KD", 3.0), ("relabel", "ReLabel", 1.2), ("plain", "plain", 1.0)):
        ratio = speed["fkd"] / speed[other]
        checks.append((f"FKD >= {factor:g}x the crops/s of {label}", ratio >= factor,
                       f"{ratio:.2f}x (whole run {whole['fkd'] / whole[other]:.2f}x)"))
    checks += [
        ("FKD top-1 within 1 point of vanilla KD", top1["fkd"] >= top1["vanilla_kd"] - 0.01,
         f"{_pct(top1['fkd'] - top1['vanilla_kd'])} points"),
        ("FKD top-1 above ReLabel", top1["fkd"] > top1["relabel"], f"{_pct(top1['fkd'] - top1['relabel'])} points"),
        ("FKD top-1 above plain", top1["fkd"] > top1["plain"], f"{_pct(top1['fkd'] - top1['plain'])} points"),
    ]
    return checks


def render_report(results: dict) -> str:
    s = Settings(**{field.name: results["settings"].get(field.name) for field in dataclasses.fields(Settings)})
    info, runs, prep = results["machine"], results["runs"], results["label_prep"]
    n, n_val = results["train_images"], results["val_images"]
    lines = [
        f"Command: `{results['command']}`",
        "",
        *([] if results.get("finished", True) else
          ["**Unfinished run**: the run stopped before its end; the tables hold what it had measured.", ""]),
        f"Machine: {info['cpu']}, {info['cores']} cores; {info['os']}; "
        f"Python {info['python']}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        f"Date: {results['date']}; wall time of the whole run {results['wall_seconds'] / 60:.1f} min; 1-minute load "
        f"average {results['load'][0]:.1f} at the start, {results['load'][1]:.1f} at the end"
        + (f" (above {info['cores']}: other jobs were sharing the cores)." if max(results["load"]) > info["cores"] else "."),
        "",
        f"Protocol: {n} training images ({s.train_per_class or 'all'} per class), {n_val} validation images; student "
        f"`{s.student}` from scratch at {s.input_size} px; teacher `{s.teacher}` restricted to the "
        f"{len(results['class_names'])} classes (class_map auto; its val top-1 {_pct(results['teacher_top1'])}%); "
        f"{s.epochs} epochs of {n} crops = {s.epochs * n // s.batch_crops} optimizer steps of {s.batch_crops} crops "
        f"for every method; {s.optim}, lr {s.learning_rate:g}, weight decay {s.weight_decay:g}, warmup "
        f"{s.warmup:g} of the steps, cosine; seed {s.seed}; {s.workers} loader worker(s) and {s.threads} torch "
        f"thread(s) for every method, {s.prep_threads or s.threads} torch thread(s) to make the labels; initial weights "
        f"{', '.join(sorted({r['initial_weights'] for r in runs.values()}))} (one digest = one init for all). FKD: "
        f"R = {s.stored_crops} stored crops, m = {s.num_crops} per decoded image, {s.kind} k = {s.k}, so "
        f"{s.epochs} epochs = {s.epochs / s.num_crops:g} passes. ReLabel: map from the whole image at "
        f"{results['relabel']['input_size']} px = {results['relabel']['map_size']}x{results['relabel']['map_size']} "
        f"positions, top-{results['relabel']['k']} logits per position.",
        "",
        f"Steady crops/s: best of {s.throughput_rounds} interleaved rounds of {s.throughput_steps} steps per method "
        "(the ratios and speed targets use it); whole run: all the steps of the accuracy run, loader start-up "
        "included, evaluation excluded. Top-1 on "
        f"{n_val} images has a binomial standard error of about {_std_error(runs, n_val)} points; one seed.",
        "",
        "| method | crops per decoded image | steady crops/s | FKD / method | whole-run crops/s (train s) | top-1 % "
        "| top-5 % | label prep s | label bytes per image |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    steady, whole = _speeds(results)
    storage = results["storage"]
    for name in MAIN_METHODS + SAME_CROP_METHODS:
        if name not in runs:
            continue
        r = runs[name]
        speed = steady.get(name)
        ratio = f"{steady['fkd'] / speed:.2f}x" if speed and "fkd" in steady else "-"
        prep_key = {"fkd": "fkd_seconds", "relabel": "relabel_seconds"}.get(name)
        prep_text = "-" if prep_key is None else (
            "reused" if prep.get(prep_key) is None else f"{prep[prep_key]:.0f}")
        size = {"fkd": storage.get("fkd_main"), "relabel": storage.get("relabel")}.get(name)
        size_text = "-" if size is None else f"{size:,.0f}"
        note = f", teacher {r['teacher_seconds']:.0f} s" if "teacher_seconds" in r else ""
        lines.append(
            f"| {LABELS[name]} | {r['crops_per_image']} | {'-' if speed is None else f'{speed:.1f}'} | {ratio} "
            f"| {whole[name]:.1f} ({r['train_seconds']:.0f} s{note}) | {_pct(r['top1'])} | {_pct(r['top5'])} "
            f"| {prep_text} | {size_text} |"
        )
    lines += ["", "Label storage on disk (zstd parquet, one file), per training image:", "",
              "| labels | per image | bytes per image |", "|---|---|---|"]
    relabel = results["relabel"]
    if storage.get("relabel") is not None:
        lines.append(f"| ReLabel map | {relabel['map_size']}x{relabel['map_size']} positions x top-{relabel['k']} "
                     f"| {storage['relabel']:,.0f} |")
    for row in storage.get("fkd", []):
        lines.append(f"| FKD {row['kind']} k={row['k']} | R = {row['R']} crops | {row['bytes_per_image']:,.0f} |")
    if results.get("target_cost"):
        lines += ["", f"Building one batch's targets ({s.batch_crops} crops) from stored labels, ms (median): ReLabel "
                      f"expands {s.batch_crops} {relabel['map_size']}x{relabel['map_size']} top-{relabel['k']} maps "
                      "to dense C-channel maps, RoIAligns and softmaxes them; FKD expands top-k to C:", "",
                  "| classes C | ReLabel | FKD |", "|---|---|---|"]
        lines += [f"| {row['num_classes']} | {row['relabel_ms']:.2f} | {row['fkd_ms']:.2f} |"
                  for row in results["target_cost"]]
    ablation = results.get("ablation", [])
    if ablation:
        lines += ["", f"FKD ablation (same protocol; labels cut from one generation; R stored crops, m replayed per "
                      f"decoded image; {s.epochs} epochs = {s.epochs} x {n} crops):", "",
                  "| R | m | kind | k | crops/s | top-1 % | top-5 % |", "|---|---|---|---|---|---|---|"]
        main = runs.get("fkd")
        rows = ([dict(R=s.stored_crops, m=s.num_crops, kind=s.kind, k=s.k, **main, main=True)] if main else [])
        for row in rows + ablation:
            if "skipped" in row:
                lines.append(f"| {row['R']} | {row['m']} | {row['kind']} | {row['k']} | skipped: {row['skipped']} | | |")
                continue
            mark = " (main run)" if row.get("main") else ""
            lines.append(f"| {row['R']} | {row['m']} | {row['kind']}{mark} | {row['k']} | "
                         f"{row['crops_per_second']:.1f} | {_pct(row['top1'])} | {_pct(row['top5'])} |")
    checks = targets_check(results)
    if checks:
        lines += ["", "Targets (this run):", "", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {target} | {figure} | {'yes' if met else 'no'} |" for target, met, figure in checks]
    curves = ["", "Top-1 % after each epoch (training seconds so far):", ""]
    for name in MAIN_METHODS + SAME_CROP_METHODS:
        if name in runs and runs[name]["curve"]:
            points = ", ".join(f"{_pct(p['top1'])} ({p['train_seconds']:.0f} s)" for p in runs[name]["curve"])
            curves.append(f"- {LABELS[name]}: {points}")
    return "\n".join(lines + curves) + "\n"


def plot(results: dict, path: Path) -> Path | None:
    """Accuracy against wall time, one line per method: training time alone, and with the label preparation."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[compare] matplotlib is not installed: no plot (pip install matplotlib, or pip install -e '.[plot]').")
        return None
    runs, prep = results["runs"], results["label_prep"]
    offsets = {"fkd": prep.get("fkd_seconds"), "relabel": prep.get("relabel_seconds")}
    with_prep = all(offsets[name] is not None for name in offsets if name in runs)
    chance = 100 / len(results["class_names"])
    panels = 2 if with_prep else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.5), squeeze=False)
    for col in range(panels):
        ax = axes[0][col]
        for name in MAIN_METHODS + SAME_CROP_METHODS:
            if name not in runs or not runs[name]["curve"] or (col == 1 and name in SAME_CROP_METHODS):
                continue  # the same-crop controls are left out of the cost panel: they borrow FKD's stored crops
            shift = (offsets.get(name) or 0.0) if col == 1 else 0.0
            xs = [shift] + [shift + p["train_seconds"] for p in runs[name]["curve"]]
            ys = [chance] + [100 * p["top1"] for p in runs[name]["curve"]]
            style = "--" if name in SAME_CROP_METHODS else "-"
            ax.plot(xs, ys, style, marker="o", markersize=3, label=LABELS[name])
        ax.set_xlabel("training wall time (s, log scale), evaluation excluded" if col == 0
                      else "label preparation + training wall time (s, log scale)")
        ax.set_xscale("symlog", linthresh=10)  # seconds to tens of minutes on one axis
        ax.set_ylabel("val top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    s = results["settings"]
    fig.suptitle(f"{s['student']} from scratch, {s['epochs']} epochs, teacher {s['teacher']} "
                 f"({results['train_images']} train images, {s['mode']} mode)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def publish(report: str, mode: str, png: Path | None, results_md: Path | None = None) -> None:
    """Replaces this mode's generated block in RESULTS.md (between its markers) and copies the plot next to it."""
    results_md = RESULTS_MD if results_md is None else results_md
    if png is not None:
        target = results_md.parent / f"compare_{mode}.png"
        shutil.copyfile(png, target)
        report += f"\n![accuracy against wall time, {mode} run]({target.name})\n"
    replace_block(results_md, f"compare:{mode}", report)


def replace_block(results_md: Path, name: str, block: str) -> None:
    """Writes ``block`` between the markers ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` of ``results_md``
    (appended with new markers when they are missing)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = results_md.read_text() if results_md.exists() else ""
    block = f"{begin}\n{block}{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + f"\n\n{block}\n"
    results_md.write_text(text)


# ----------------------------------------------------------------------------------------------------------------


def render(path: Path, output: Path, publish_too: bool) -> dict:
    """report.md and compare.png (and RESULTS.md with ``publish_too``) from a saved results.json."""
    results = json.loads(Path(path).read_text())
    report = render_report(results)
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.md").write_text(report)
    png = plot(results, output / "compare.png")
    if publish_too:
        publish(report, results["settings"]["mode"], png)
    print(report)
    return results


def main(args: argparse.Namespace) -> dict:
    if args.render:
        return render(Path(args.render), Path(args.output_dir), args.publish)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    settings = resolve_settings(args)
    temporary = None
    if args.work_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="fkd_compare_")
        work = Path(temporary.name)
    else:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    try:
        results = _run(args, settings, work, started, load_start)
    finally:
        torch.set_num_threads(threads)
        if temporary is not None:
            temporary.cleanup()
    return results


def _run(args, settings: Settings, work: Path, started: float, load_start: float) -> dict:
    s = settings
    torch.set_num_threads(s.prep_threads)
    print(f"[compare] {s.mode} mode; {s.prep_threads} torch thread(s) to make labels, then {s.threads} with "
          f"{s.workers} loader worker(s) to train; work dir {work}", flush=True)
    spec = prepare_data(s, work)
    images = load_images(spec, split="train")
    validation = load_images(spec, split="validation")
    keys = image_keys(images)
    teacher = load_teacher(s.teacher)
    class_indices = resolve_class_map(teacher, "auto", images.label_names)
    class_names = list(images.label_names)

    # FKD labels: one --kind full generation (or the given label set), cut into every kind/k/R used below.
    label_prep: dict = {}
    if args.labels:
        source = Path(args.labels)
    else:
        source = work / "labels" / "generated"
        config = GenerateConfig(dataset=spec, output_dir=str(source), teacher=s.teacher, class_map="auto",
                                stored_crops=s.stored_crops, kind="full", seed=s.seed, batch_size=64)
        summary = generate(config)
        label_prep["fkd_seconds"] = summary.seconds if summary.seconds else None
    source_meta = load_label_set(source).metadata
    label_dirs = {"main": derive_label_set(source, work / "labels" / "main", images, keys, s.kind, s.k,
                                           s.stored_crops)}
    storage_rows = []
    for kind, k in [("hard", 1), ("smoothing", 1), ("marginal_smoothing", 2), ("marginal_smoothing", 5),
                    ("marginal_renorm", 5), ("full", len(class_names))]:
        k = min(k, len(class_names))
        if k > source_meta.k or (kind == "full" and source_meta.k != source_meta.num_classes):
            continue  # the label set does not store enough classes for this kind
        path = derive_label_set(source, work / "labels" / f"storage_{kind}_{k}", images, keys, kind, k, s.stored_crops)
        storage_rows.append({"kind": kind, "k": k, "R": s.stored_crops, "bytes_per_image": label_bytes_per_image(path)})
        shutil.rmtree(path)

    # ReLabel maps.
    if args.relabel_maps:
        maps_dir = Path(args.relabel_maps)
        _, maps_info = load_label_maps(maps_dir)
    else:
        maps_dir = work / "relabel_maps"
        maps_info = generate_label_maps(images, teacher, class_indices, maps_dir, s.relabel_size, s.relabel_k)
        label_prep["relabel_seconds"] = maps_info.seconds
    print(f"[compare] labels ready: FKD {label_prep.get('fkd_seconds') or 'reused'} s, ReLabel "
          f"{label_prep.get('relabel_seconds') or 'reused'} s", flush=True)

    ctx = Context(s, work, images, keys, validation, class_names, teacher, class_indices,
                  source_meta.temperature, label_dirs, maps_dir, maps_info.map_size)
    teacher_top1 = teacher_accuracy(ctx)
    torch.set_num_threads(s.threads)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    results = {
        "command": "python -m benchmarks compare " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["compare"]
                                                              else sys.argv[1:]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "settings": dataclasses.asdict(s),
        "train_images": len(images.dataset), "val_images": len(validation.dataset), "class_names": class_names,
        "teacher_top1": teacher_top1,
        "label_prep": label_prep,
        "relabel": {"input_size": maps_info.input_size, "map_size": maps_info.map_size, "k": maps_info.k},
        "storage": {"fkd_main": label_bytes_per_image(label_dirs["main"]), "fkd": storage_rows,
                    "relabel": maps_info.bytes_per_image},
        "throughput": {}, "runs": {}, "ablation": [], "finished": False,
        "target_cost": [target_cost(s.batch_crops, s.num_crops, maps_info.map_size, maps_info.k, c)
                        for c in (len(class_names), 1000)],
    }

    def save() -> None:  # after every run, so an interrupted run leaves what it measured
        results["wall_seconds"] = time.perf_counter() - started
        results["load"] = [load_start, os.getloadavg()[0]]
        (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    methods = args.methods or list(MAIN_METHODS + SAME_CROP_METHODS)
    # Untimed warm-up (a few plain steps), so the first timed method does not pay for one-off start-up costs.
    run_method(ctx, "plain", curve=False, max_steps=3)
    results["throughput"] = measure_throughput(ctx, methods)
    save()
    for name in methods:
        results["runs"][name] = run_method(ctx, name)
        save()

    for spec_text in ([] if args.no_ablation else s.ablation):
        choice = parse_ablation(spec_text, s)
        try:
            k = resolve_k(choice["kind"], choice["k"], len(class_names))
            if choice["R"] > source_meta.stored_crops or k > source_meta.k:
                raise ValueError(f"the label set stores R={source_meta.stored_crops}, k={source_meta.k}")
        except ValueError as err:
            results["ablation"].append({**choice, "skipped": str(err)})
            continue
        name = f"fkd_R{choice['R']}_m{choice['m']}_{choice['kind']}_k{k}"
        path = derive_label_set(source, work / "labels" / name, images, keys, choice["kind"], k, choice["R"])
        result = run_method(ctx, "fkd", labels_dir=path, num_crops=choice["m"], curve=False)
        results["ablation"].append({**choice, "k": k, **result, "method": name})
        save()

    results["finished"] = True
    save()
    report = render_report(results)
    (output / "report.md").write_text(report)
    png = plot(results, output / "compare.png")
    if args.publish:
        publish(report, s.mode, png)
    print(report)
    return results


if __name__ == "__main__":
    main(make_parser().parse_args())
