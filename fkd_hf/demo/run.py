"""``fkd-hf demo``: FKD end to end in one process, offline on a CPU by default.

Stages: teacher (load, evaluate) -> ``generate`` (soft labels) -> FKD training of a small student -> evaluation
-> Hub-ready folders -> a summary table and a plot of the training curves. With ``compare``, a plain student (hard
labels, the same crops per step, steps, optimizer and initialisation) is trained and evaluated too.

Data:

- default: the 20 ImageNet sample photos that the PyPI package ``foolbox`` (MIT) ships (:mod:`fkd_hf.demo_data`),
  19 classes; the teacher keeps all its 1000 classes. Twenty photos cannot measure accuracy: the students are scored
  on crops of the same photos that no training step used (another crop seed), by top-1 *agreement with the
  teacher*: how well the student reproduces the teacher on new views of photos it has seen.
- ``dataset``: a Hub id, ``imagefolder:PATH`` or a folder. The teacher labels its train split; students are scored
  by top-1 against the dataset's labels (and agreement with the teacher) on its validation split (``val/``,
  ``validation``, else ``test``), or, without one, on every 10th training image, held out of training.

Output (``output_dir``), written to a hidden sibling folder and renamed into place only when everything is done,
so a failed run never leaves a result behind; ``demo_result.json`` is written last::

    labels/              label set with its dataset card   (fkd-hf push-labels labels --repo-id ...)
    student/             safetensors student with its model card   (fkd-hf push-student student --repo-id ...)
    summary.md           the summary table
    training_curves.png  training loss and evaluation score per FKD epoch
    demo_config.yaml     the resolved options (fkd-hf demo --config demo_config.yaml reruns them)
    demo_result.json     every figure of the summary, machine-readable

    >>> result = run_demo(DemoConfig(compare=True))  # doctest: +SKIP
    >>> print(result.summary)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import io
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..version import __version__
from ..cli.arguments import save_config
from ..labels.crops import crop_rng, crops_to_pixels, replay_crop, sample_crops
from ..labels.images import _SPLIT_DIRS, ImageSource, decode_image, image_bytes, load_images
from ..labels.format import DATA_DIR, LabelSetMetadata, rows_to_table, write_shard
from ..generation.prefetch import prefetch_map
from ..models.precision import torch_dtype
from ..hub.ids import is_repo_id
from .config import DemoConfig, device_type

__all__ = ["DemoConfig", "DemoResult", "Stage", "run_demo", "RESULT_FILE"]

_field = dataclasses.field

RESULT_FILE = "demo_result.json"
SUMMARY_FILE = "summary.md"
CURVES_FILE = "training_curves.png"
CONFIG_FILE = "demo_config.yaml"
MIN_FREE_BYTES = 200 * 2**20  # labels + one student + temporary files, with margin
HOLDOUT_EVERY = 10
EVALS_PER_RUN = 6

@dataclasses.dataclass
class Stage:
    """One timed stage of the demo."""

    name: str
    seconds: float
    work: float = 0.0  # items processed
    unit: str = ""  # what an item is ("crops", "images")
    detail: str = ""
    busy_seconds: float | None = None  # the part of ``seconds`` the throughput counts (default: all)

    @property
    def throughput(self) -> float | None:
        seconds = self.busy_seconds if self.busy_seconds is not None else self.seconds
        return self.work / seconds if self.work and seconds > 0 else None


@dataclasses.dataclass
class DemoResult:
    """What the demo measured and wrote."""

    output_dir: str
    summary: str  # the Markdown of summary.md
    metrics: dict  # also in demo_result.json
    stages: list[Stage]
    curves: str | None  # training_curves.png, or None without matplotlib


# --- output folder -----------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prepare_output(final: Path) -> Path:
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
            f"only {free / 2**20:.0f} MiB free where {final} goes; the demo needs {MIN_FREE_BYTES / 2**20:.0f} MiB: "
            "free some space or pass --output-dir on another disk",
        )
    partial = parent / f".{final.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    return partial


def _publish(partial: Path, final: Path) -> None:
    """Moves the finished result into place, replacing an earlier demo result."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    os.replace(partial, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- data --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Data:
    spec: str
    class_map: str | None  # what generate restricts the teacher to (None: all teacher classes)
    label_map: str  # how the data's labels match teacher classes when it is not restricted
    description: str
    train: ImageSource
    eval: ImageSource | None  # None: held-out crops (sample photos) or held-out train rows (holdout)
    mode: str  # "photos", "split" or "holdout"
    eval_name: str  # how the evaluation images are described in the table




def _check_dataset_spec(spec: str) -> None:
    """A one-line error for a dataset that is neither an existing folder nor shaped like a Hub id."""
    path = Path(spec.removeprefix("imagefolder:")).expanduser()
    if spec.startswith("parquet:"):
        return
    if spec.startswith("imagefolder:") or path.is_dir() or not is_repo_id(spec, namespaced=False):
        if not path.is_dir():
            raise FileNotFoundError(
                f"--dataset {spec!r} is neither an existing folder nor a Hub dataset id: give imagefolder:PATH of a "
                "folder with one subfolder per class (or train/ and val/ of those), or a Hub id such as "
                "'frgfm/imagenette'."
            )


def _load(spec, config, split, label_column="label", max_rows=None) -> ImageSource:
    try:
        return load_images(spec, config, split, label_column=label_column, max_rows=max_rows)
    except (ValueError, KeyError, TypeError) as err:
        if "split" in str(err).lower():
            raise
        raise ValueError(f"Cannot read --dataset {spec!r}: {err}") from err
    except (ConnectionError, OSError) as err:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FileNotFoundError(
            f"--dataset {spec!r} is neither an existing folder nor a Hub dataset that can be loaded ({first}). Give "
            "imagefolder:PATH, or a Hub id (online, or already in the local cache)."
        ) from err


def _local_root(spec: str) -> Path | None:
    path = Path(spec.removeprefix("imagefolder:")).expanduser()
    return path if path.is_dir() else None


def _has_split(spec: str, config: str | None, split: str) -> ImageSource | None:
    """The ``split`` of ``spec`` if it exists (for a folder: a matching subfolder), else None."""
    root = _local_root(spec)
    if root is not None:
        if not any((root / name).is_dir() for name in _SPLIT_DIRS.get(split, (split,))):
            return None
        return _load(spec, config, split)
    try:
        return _load(spec, config, split)
    except ValueError as err:
        if "split" in str(err).lower():
            return None
        raise


def _prepare_data(config: DemoConfig) -> _Data:
    if config.dataset is None:
        from .photos import demo_photos

        photos = demo_photos()
        train = load_images(photos.spec, split="train")
        return _Data(
            spec=photos.spec, label_map=photos.class_map,
            class_map={"none": None, "auto": photos.class_map}.get(config.class_map, config.class_map),
            description=f"the {photos.num_images} ImageNet sample photos of {photos.source}, {photos.num_classes} classes",
            train=train, eval=None, mode="photos",
            eval_name=f"{photos.num_images * config.heldout_crops} held-out crops of the photos",
        )  # fmt: skip
    spec = config.dataset
    _check_dataset_spec(spec)
    root = _local_root(spec)
    if root is not None and not any((root / name).is_dir() for name in _SPLIT_DIRS.get(config.train_split, ())):
        held = [name for names in _SPLIT_DIRS.values() for name in names if (root / name).is_dir()]
        if held:
            raise FileNotFoundError(
                f"--dataset {spec!r} has {'/'.join(held)}/ but no {config.train_split}/ folder: put the training "
                "images in train/<class>/ (or pass --train-split)."
            )
    train = _load(spec, config.dataset_config, config.train_split)
    if train.label_column is None or train.label_names is None:
        raise ValueError(
            f"--dataset {spec!r} has no class-label column 'label': the demo needs labelled images (one subfolder "
            "per class for a folder)."
        )
    splits = [config.eval_split] if config.eval_split else ["validation", "test"]
    evaluation = None
    for split in splits:
        evaluation = _has_split(spec, config.dataset_config, split)
        if evaluation is not None:
            break
    if evaluation is None and config.eval_split:
        raise ValueError(f"--dataset {spec!r} has no split {config.eval_split!r}: name an existing one.")
    if evaluation is not None:
        if config.max_eval_images is not None and evaluation.num_rows > config.max_eval_images:
            picks = np.linspace(0, evaluation.num_rows - 1, config.max_eval_images).round().astype(int)
            evaluation.dataset = evaluation.dataset.select(np.unique(picks).tolist())
        mode, eval_name = "split", f"{evaluation.num_rows} images of split {evaluation.split!r}"
    else:
        mode = "holdout"
        if train.num_rows <= HOLDOUT_EVERY // 2:
            raise ValueError(
                f"--dataset {spec!r} has only {train.num_rows} images and no validation split: the demo holds out every "
                f"{HOLDOUT_EVERY}th image for evaluation, so give it more images or a val/ folder."
            )
        eval_name = f"every {HOLDOUT_EVERY}th image of split {train.split!r} ({math.ceil(train.num_rows / HOLDOUT_EVERY)}), held out of training"
    return _Data(spec=spec, class_map=None if config.class_map == "none" else config.class_map, label_map="auto",
                 description=f"{spec} ({train.num_rows} {train.split} images, "
                 f"{len(train.label_names)} classes)", train=train, eval=evaluation, mode=mode, eval_name=eval_name)  # fmt: skip


def _holdout_rows(num_rows: int) -> np.ndarray:
    return np.arange(HOLDOUT_EVERY // 2, num_rows, HOLDOUT_EVERY)


def _targets(source: ImageSource, names: Sequence[str], to_class: np.ndarray) -> np.ndarray:
    """Each row's label as a label-set class index; ``names`` are the training split's classes, ``to_class`` maps
    them to the label set's."""
    if source.label_column is None or source.label_names is None:
        raise ValueError(f"Split {source.split!r} of {source.spec!r} has no class labels: the demo needs labelled images.")
    missing = [name for name in source.label_names if name not in names]
    if missing:
        raise ValueError(f"The classes {missing[:5]} of split {source.split!r} are not among the training split's.")
    order = np.asarray([list(names).index(name) for name in source.label_names], dtype=np.int64)
    return to_class[order[np.asarray(list(source.dataset[source.label_column]), dtype=np.int64)]]


# --- teacher -----------------------------------------------------------------------------------------------------


def _load_teacher(spec: str):
    from ..models.teachers import load_teacher

    try:
        return load_teacher(spec)
    except ImportError:
        raise
    except Exception as err:  # timm, transformers and the Hub raise many types for a teacher they cannot load
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"Cannot load teacher {spec!r} ({first}). Give efficientnet-lite0 (offline), a timm model name, "
            "timm/<name> or hf-hub:<org>/<name>, a transformers Hub id, or a folder with config.json and weights."
        ) from err


def _batches(items, size):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _eval_pixels(values, size, crop_pct, interpolation, threads, desc) -> np.ndarray:
    """Decodes images and applies timm's eval transform (resize, centre crop): uint8 ``[N, H, W, 3]``."""
    from ..training.data import eval_transform

    def prepare(value):
        return np.asarray(eval_transform(decode_image(image_bytes(value)), size, crop_pct, interpolation))

    out = []
    for pixels in tqdm(prefetch_map(prepare, values, threads, 4 * max(threads, 1)), total=len(values), desc=desc,
                       unit="img", dynamic_ncols=True):  # fmt: skip
        out.append(pixels)
    return np.stack(out)


@torch.inference_mode()
def _teacher_predict(teacher, pixels: np.ndarray, class_indices, batch_size: int, precision: str, desc: str):
    """Top-1 of the teacher on uint8 images: (over the label set's classes, over all teacher classes)."""
    from ..models.pixels import normalize

    mean, std = torch.tensor(teacher.mean), torch.tensor(teacher.std)
    restricted, full = [], []
    for start in tqdm(range(0, len(pixels), batch_size), desc=desc, unit="batch", dynamic_ncols=True):
        x = normalize(torch.from_numpy(pixels[start : start + batch_size]).permute(0, 3, 1, 2), mean, std)
        with torch.autocast("cpu", dtype=torch_dtype(precision), enabled=precision != "fp32"):
            logits = teacher.logits(x).float()
        full.append(logits.argmax(-1))
        if class_indices is not None:
            logits = logits[:, class_indices]
        restricted.append(logits.argmax(-1))
    return torch.cat(restricted).numpy(), torch.cat(full).numpy()


def _teacher_crop_pct(teacher) -> float:
    return float(getattr(teacher.model, "pretrained_cfg", {}).get("crop_pct", 0.875) or 0.875)


# --- label sets --------------------------------------------------------------------------------------------------


def _generate(config: DemoConfig, data: _Data, output_dir: Path, num_crops: int, seed: int, num_classes: int):
    from ..generation import GenerateConfig, generate
    from ..labels.kinds import DEFAULT_K

    options = GenerateConfig(
        dataset=data.spec, output_dir=str(output_dir), teacher=config.teacher, dataset_config=config.dataset_config,
        split=config.train_split, class_map=data.class_map, stored_crops=num_crops, seed=seed,
        kind="marginal_smoothing", k=min(DEFAULT_K["marginal_smoothing"], num_classes), temperature=config.temperature,
        batch_size=config.teacher_batch_size, num_workers=config.num_workers, precision=config.precision,
    )  # fmt: skip
    return generate(options)


def _write_hard_label_set(rows, labels_meta: LabelSetMetadata, targets: np.ndarray, num_crops: int, seed: int,
                          output_dir: Path, image_column: str) -> LabelSetMetadata:  # fmt: skip
    """A ``hard`` label set for plain training, row for row with the FKD label set: ``num_crops`` fresh
    random-resized crops per image (a new crop every pass, as plain training samples them), each labelled with the
    image's class (``targets``: the dataset's label per row, in label-set order)."""
    n = len(rows)
    crops = np.zeros((n, num_crops, 4), np.float16)
    flips = np.zeros((n, num_crops), bool)
    skipped = set(labels_meta.skipped_rows)
    images = rows.select_columns([image_column])
    for row in range(n):
        if row in skipped:
            continue
        with Image.open(io.BytesIO(image_bytes(images[row][image_column]))) as image:
            width, height = image.size
        crops[row], flips[row] = sample_crops(height, width, num_crops, crop_rng(seed, row),
                                              labels_meta.crop_scale, labels_meta.crop_ratio)  # fmt: skip
    indices = np.broadcast_to(targets.reshape(n, 1, 1), (n, num_crops, 1))
    meta = dataclasses.replace(
        labels_meta, kind="hard", k=1, stored_crops=num_crops, num_shards=1, rows_per_shard=max(n, 1),
        teacher="none (the dataset's labels)", teacher_class_indices=None,
    )  # fmt: skip
    columns = {
        "image_key": list(rows["image_key"]), "crops": crops, "flips": flips,
        "topk_indices": indices.astype(np.int64), "topk_values": np.ones(indices.shape, np.float16),
    }  # fmt: skip
    write_shard(rows_to_table(columns, meta.features()), output_dir / DATA_DIR / "shard-00000.parquet",
                list(labels_meta.skipped_rows))  # fmt: skip
    meta.save(output_dir)
    return meta


def _crop_eval_set(heldout_dir: Path, data: _Data, size, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Every held-out crop replayed at the student's size, and the teacher's top-1 for it."""
    from ..labels.attach import join_labels
    from ..labels.format import load_label_set

    labels = load_label_set(heldout_dir)
    rows = join_labels(data.train, labels)
    column = data.train.image_column
    skipped = set(labels.metadata.skipped_rows)

    def replay(row):
        example = rows[row]
        image = decode_image(image_bytes(example[column]))
        boxes = crops_to_pixels(np.asarray(example["crops"], dtype=np.float16), image.height, image.width)
        pixels = [np.asarray(replay_crop(image, box, bool(flip), size)) for box, flip in zip(boxes, example["flips"])]
        return np.stack(pixels), np.asarray(example["topk_indices"])[:, 0]

    good = [row for row in range(len(rows)) if row not in skipped]
    out = list(tqdm(prefetch_map(replay, good, threads, 8), total=len(good), desc="held-out crops", unit="img",
                    dynamic_ncols=True))  # fmt: skip
    return np.concatenate([p for p, _ in out]), np.concatenate([t for _, t in out]).astype(np.int64)


# --- students ----------------------------------------------------------------------------------------------------


class _CachedEval(torch.utils.data.Dataset):
    """Evaluation images already decoded at the student's size: ``pixel_values`` uint8 ``[H, W, 3]``, ``labels``."""

    def __init__(self, pixels: np.ndarray, labels: np.ndarray):
        self.pixels, self.labels = pixels, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"pixel_values": torch.from_numpy(self.pixels[index]), "labels": int(self.labels[index])}


@dataclasses.dataclass
class _Run:
    name: str
    top1: float  # against the eval labels (agreement with the teacher for the sample photos)
    agreement: float | None
    log_history: list
    seconds: float
    train_seconds: float  # without the evaluations during training
    crops: int
    steps: int
    correct: list[bool] = _field(default_factory=list, repr=False)  # per evaluation item


def paired_difference(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> tuple[float, float]:
    """Top-1 of A minus top-1 of B on the same items, and the standard error of that difference: both models see
    the same items, so only the items where exactly one is right count (b, c: A alone right, B alone right;
    var = (b + c - (b - c)^2 / n) / n^2)."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n = len(a)
    if n == 0 or len(b) != n:
        raise ValueError("paired_difference needs two equally long, non-empty lists of per-item results.")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    return (only_a - only_b) / n, math.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n


def _quiet_progress():
    from transformers.trainer_callback import ProgressCallback

    class QuietProgress(ProgressCallback):
        """The Trainer's progress bars without a printed dict per log line."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    return QuietProgress()


def _fit(name: str, config: DemoConfig, labels_dir: Path, data: _Data, train_rows, eval_set: _CachedEval,
         teacher_preds: np.ndarray | None, work: Path, data_config: dict, card_callback=None) -> tuple[_Run, object]:  # fmt: skip
    """Trains one student on ``labels_dir`` (FKD soft labels or hard labels) and scores it on ``eval_set``."""
    from transformers import set_seed
    from transformers.trainer_callback import ProgressCallback

    from ..labels.attach import join_labels
    from ..labels.format import load_label_set
    from ..training.data import FKDCropDataset
    from ..models.students import create_student
    from ..training.trainer import FKDTrainer
    from ..training.config import FKDConfig

    labels = load_label_set(labels_dir)
    meta = labels.metadata
    rows = join_labels(data.train, labels)
    if train_rows is not None:  # hold-out mode: train on the other rows only
        skipped = set(meta.skipped_rows)
        rows = rows.select([row for row in train_rows if row not in skipped])
        meta = dataclasses.replace(meta, skipped_rows=[])
    passes = config.fkd_epochs / config.num_crops
    steps_per_pass = math.ceil(len(rows) / config.batch_size)
    total_steps = math.ceil(passes * steps_per_pass)
    args = FKDConfig(
        output_dir=str(work / name), label_set=str(labels_dir), dataset=data.spec, dataset_config=config.dataset_config,
        train_split=config.train_split, eval_split=data.eval.split if data.eval is not None else None,
        student=config.student, input_size=config.input_size, num_crops=config.num_crops, fkd_epochs=config.fkd_epochs,
        per_device_train_batch_size=config.batch_size, per_device_eval_batch_size=128, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, optim="adamw_torch", lr_scheduler_type="cosine", warmup_steps=0.05,
        eval_strategy="steps", eval_steps=max(1, total_steps // EVALS_PER_RUN), logging_steps=max(1, total_steps // 50),
        save_strategy="no", report_to="none", dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
        bf16=config.precision == "bf16", use_cpu=device_type() == "cpu",
        seed=config.seed,
        mean=list(data_config["mean"]), std=list(data_config["std"]), crop_pct=data_config["crop_pct"],
        interpolation=data_config["interpolation"],
    )  # fmt: skip
    set_seed(config.seed)
    model = create_student(config.student, meta.class_names)
    train_set = FKDCropDataset(rows, meta, config.num_crops, data_config["input_size"], "bilinear", config.seed,
                               data.train.image_column)  # fmt: skip
    callbacks = [card_callback] if card_callback is not None else None
    trainer = FKDTrainer(model, args, train_set, eval_dataset=eval_set, callbacks=callbacks)
    if not args.disable_tqdm:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(_quiet_progress())
    start = time.perf_counter()
    result = trainer.train()
    output = trainer.predict(eval_set, metric_key_prefix="eval")
    seconds = time.perf_counter() - start
    preds = np.asarray(output.predictions)[:, 0]
    history = list(trainer.state.log_history)
    history.append({**output.metrics, "fkd_epoch": config.fkd_epochs, "step": trainer.state.global_step})
    eval_seconds = sum(log.get("eval_runtime", 0.0) for log in trainer.state.log_history)
    run = _Run(
        name=name, top1=float(output.metrics["eval_top1"]),
        agreement=float(np.mean(preds == teacher_preds)) if teacher_preds is not None else None,
        log_history=history, seconds=seconds, train_seconds=max(result.metrics["train_runtime"] - eval_seconds, 1e-9),
        crops=round(config.fkd_epochs * len(rows)), steps=trainer.state.global_step,
        correct=(preds == eval_set.labels).tolist(),
    )  # fmt: skip
    if card_callback is not None:
        card_callback.fill_from_metrics(output.metrics)
    return run, trainer


# --- summary -----------------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _rate(stage: Stage) -> str:
    rate = stage.throughput
    return "" if rate is None else f"{rate:,.1f} {stage.unit}/s"


def _summary(config: DemoConfig, data: _Data, teacher_name: str, metrics: dict, stages: list[Stage], runs: dict,
             final: Path, plain_source: str | None, curves: Path | None) -> str:  # fmt: skip
    photos = data.mode == "photos"
    lines = [f"# fkd-hf demo ({__version__})", ""]
    lines.append(f"- Data: {data.description}.")
    classes = metrics["num_classes"]
    restricted = f", restricted to the {classes} classes of the data" if metrics["restricted"] else f", all {classes} classes"
    lines.append(f"- Teacher: `{teacher_name}`{restricted}. Student: `{config.student}` at {config.input_size} px, "
                 f"from scratch; R = {config.stored_crops} stored crops per image (teacher temperature {config.temperature:g}), "
                 f"m = {config.num_crops} per pass, "
                 f"{config.fkd_epochs:g} FKD epochs, {config.batch_size} images per step, {config.precision}.")  # fmt: skip
    lines.append(f"- Evaluated on: {data.eval_name}.")
    if photos:
        lines += [
            "- **What this measures**: 20 photos are far too few to measure accuracy on new photos. The score is the "
            "student's top-1 *agreement with the teacher* on crops of the same photos that no training step used "
            "(another crop seed): how well FKD transfers the teacher's predictions to new views of seen photos. It "
            "is not accuracy. For accuracy, run with `--dataset` (e.g. `imagefolder:PATH` with train/ and val/).",
            f"- The teacher's top-1 on the centre crop of each photo, against the photo's ImageNet label: "
            f"{_pct(metrics['teacher_top1'])} over the {classes} classes"
            + (f" ({_pct(metrics['teacher_top1_all'])} over all {metrics['teacher_classes']})"
               if metrics.get("teacher_top1_all") is not None else "")
            + f". On the held-out crops its top-1 is the photo's label for {_pct(metrics['teacher_crop_top1'])}: "
            "the most agreement a student trained on the photos' labels alone can reach.",
        ]  # fmt: skip
    if plain_source:
        lines.append(f"- Plain student: the same student, initialisation, optimizer, steps, images and crops per step "
                     f"(m = {config.num_crops} crops of each decoded image, as FKD replays), trained on "
                     f"{plain_source}.")  # fmt: skip
    lines += ["", "| model | " + ("agreement with the teacher (held-out crops)" if photos else
                                 "top-1 | agreement with the teacher (top-1)") + " |"]  # fmt: skip
    lines.append("|---|---|" if photos else "|---|---|---|")
    if photos:
        lines.append(f"| teacher `{teacher_name}` | 100 % (reference) |")
        for label, key in (("FKD student", "fkd"), ("plain student", "plain")):
            if key in runs:
                lines.append(f"| {label} `{config.student}` | {_pct(runs[key].top1)} |")
    else:
        lines.append(f"| teacher `{teacher_name}` | {_pct(metrics['teacher_top1'])} | 100 % (reference) |")
        for label, key in (("FKD student", "fkd"), ("plain student", "plain")):
            if key in runs:
                lines.append(f"| {label} `{config.student}` | {_pct(runs[key].top1)} | {_pct(runs[key].agreement)} |")
    if "fkd_minus_plain" in metrics:
        difference, error = 100 * metrics["fkd_minus_plain"], 100 * metrics["fkd_minus_plain_se"]
        lines += ["", f"FKD minus plain: {difference:+.1f} points, {difference / error if error else float('inf'):.1f} "
                      f"standard errors ({error:.1f} points, paired: the same {len(runs['fkd'].correct)} "
                      f"{'crops' if photos else 'images'}, counting those where exactly one student is right)."]  # fmt: skip
    lines += ["", "| stage | time | throughput |", "|---|---|---|"]
    for stage in stages:
        detail = f": {stage.detail}" if stage.detail else ""
        lines.append(f"| {stage.name}{detail} | {_duration(stage.seconds)} | {_rate(stage)} |")
    lines.append(f"| **total** | **{_duration(metrics['total_seconds'])}** | |")
    load = f", load average {metrics['load_average']:.1f} at the end" if metrics.get("load_average") is not None else ""
    lines += ["", f"Device: {metrics['device']}, {metrics['threads']} threads{load}. Training times include "
                  f"{EVALS_PER_RUN} evaluations each; training throughput leaves them out."]  # fmt: skip
    lines += ["", "Outputs:", "", f"- `{final / 'labels'}`: the label set with its dataset card",
              f"- `{final / 'student'}`: the FKD student (safetensors, loads in timm and transformers) with its model card"]  # fmt: skip
    lines.append(f"- `{final / CURVES_FILE}`: training curves" if curves else
                 "- no training curves: matplotlib is not installed (pip install 'fkd-hf[plot]')")  # fmt: skip
    lines += ["", "Push them to the Hub (HF_TOKEN or `hf auth login`):", "", "```bash",
              f"fkd-hf push-labels {final / 'labels'} --repo-id <user>/fkd-demo-labels",
              f"fkd-hf push-student {final / 'student'} --repo-id <user>/fkd-demo-student --label-set <user>/fkd-demo-labels",
              "```"]  # fmt: skip
    return "\n".join(lines) + "\n"


# --- the demo ----------------------------------------------------------------------------------------------------


def _device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def run_demo(config: DemoConfig) -> DemoResult:
    """Runs the demo (see the module docstring) and returns what it measured and where it wrote it."""
    config = config.resolved()
    final = Path(config.output_dir).expanduser().absolute()
    partial = _prepare_output(final)
    try:
        result = _run(config, partial, final)
        _publish(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return result


def _training_stage(name: str, run: _Run) -> Stage:
    return Stage(name, run.seconds, run.crops, "crops", f"{run.steps} steps, {run.crops:,} crops", run.train_seconds)


def _stage(name: str) -> None:
    print(f"\n== {name} ==", flush=True)


def _run(config: DemoConfig, partial: Path, final: Path) -> DemoResult:
    start = time.perf_counter()
    stages: list[Stage] = []
    work = partial / "work"
    work.mkdir()

    # Teacher: load, restrict to the data's classes, evaluate.
    _stage(f"teacher: {config.teacher}")
    t0 = time.perf_counter()
    data = _prepare_data(config)
    teacher = _load_teacher(config.teacher)
    from ..models.teachers import resolve_class_map

    names = list(data.train.label_names)
    if data.class_map is not None:  # the label set's classes are the data's; dataset label = class index
        class_indices = resolve_class_map(teacher, data.class_map, names)
        class_names, to_class = names, np.arange(len(names))
    else:  # all teacher classes; dataset labels are matched to them
        class_indices, class_names = None, list(teacher.class_names)
        to_class = np.asarray(resolve_class_map(teacher, data.label_map, names))
    if data.mode == "photos":
        eval_source = data.train
    elif data.mode == "holdout":
        eval_source = dataclasses.replace(data.train, dataset=data.train.dataset.select(_holdout_rows(data.train.num_rows)))
    else:
        eval_source = data.eval
    eval_labels = _targets(eval_source, names, to_class)
    eval_values = list(eval_source.dataset[eval_source.image_column])
    teacher_pixels = _eval_pixels(eval_values, teacher.input_size, _teacher_crop_pct(teacher), teacher.interpolation,
                                  config.num_workers, "teacher: decode")  # fmt: skip
    teacher_preds, teacher_full = _teacher_predict(teacher, teacher_pixels, class_indices, config.teacher_batch_size,
                                                   config.precision, "teacher: evaluate")  # fmt: skip
    metrics: dict = {
        "teacher": config.teacher, "num_classes": len(class_names), "restricted": class_indices is not None,
        "teacher_top1": float(np.mean(teacher_preds == eval_labels)),
        "teacher_top1_all": float(np.mean(teacher_full == np.asarray(class_indices)[eval_labels]))
        if class_indices is not None else None, "teacher_classes": teacher.num_classes,
    }  # fmt: skip
    teacher_name = teacher.name
    del teacher, teacher_pixels
    gc.collect()
    stages.append(Stage("teacher", time.perf_counter() - t0, len(eval_labels), "images",
                        f"load, top-1 on {len(eval_labels)} images"))  # fmt: skip

    # Soft labels.
    _stage(f"generate: {data.train.num_rows} images x {config.stored_crops} crops")
    labels_dir = partial / "labels"
    summary = _generate(config, data, labels_dir, config.stored_crops, config.seed, len(class_names))
    stages.append(Stage("generate", summary.seconds, summary.crops, "crops",
                        f"{summary.rows} images x {config.stored_crops} crops"))  # fmt: skip

    # Evaluation images at the student's size.
    from ..models.students import create_student, student_data_config

    probe = create_student(config.student, class_names)
    data_config = student_data_config(probe, config.input_size)
    del probe
    size = data_config["input_size"]
    t0 = time.perf_counter()
    if data.mode == "photos":
        _stage(f"held-out crops: {data.train.num_rows} images x {config.heldout_crops} crops (another seed)")
        heldout = _generate(config, data, work / "heldout", config.heldout_crops, config.seed + 1, len(class_names))
        t0 = time.perf_counter()
        pixels, crop_teacher = _crop_eval_set(work / "heldout", data, size, config.num_workers)
        eval_set = _CachedEval(pixels, crop_teacher)
        per_crop_labels = np.repeat(eval_labels, config.heldout_crops)
        metrics["teacher_crop_top1"] = float(np.mean(crop_teacher == per_crop_labels))
        student_teacher = None  # the eval labels are the teacher's own predictions
        stages.append(Stage("held-out crops", heldout.seconds, heldout.crops, "crops",
                            f"{heldout.rows} images x {config.heldout_crops} crops, never trained on"))  # fmt: skip
    else:
        pixels = _eval_pixels(eval_values, size, data_config["crop_pct"], data_config["interpolation"],
                              config.num_workers, "student: decode eval images")  # fmt: skip
        eval_set = _CachedEval(pixels, eval_labels)
        student_teacher = teacher_preds
    prepare_seconds = time.perf_counter() - t0
    train_rows = None
    if data.mode == "holdout":
        held = set(_holdout_rows(data.train.num_rows).tolist())
        train_rows = [row for row in range(data.train.num_rows) if row not in held]

    # FKD training.
    from ..hub.cards import StudentCardCallback

    card = StudentCardCallback(model_name=f"{config.student} FKD demo student", tags=["fkd-hf-demo"])
    _stage(f"FKD training: {config.student}")
    runs: dict[str, _Run] = {}
    runs["fkd"], trainer = _fit("fkd", config, labels_dir, data, train_rows, eval_set, student_teacher, work,
                                data_config, card)  # fmt: skip
    stages.append(_training_stage("FKD training", runs["fkd"]))
    from ..models.students import save_student

    student_dir = partial / "student"
    save_student(trainer.accelerator.unwrap_model(trainer.model), student_dir, data_config)
    del trainer
    gc.collect()

    # Plain training at the same budget.
    plain_source = None
    if config.compare:
        _stage(f"plain training: {config.student}, hard labels, same budget")
        from ..labels.format import load_label_set
        from ..labels.attach import join_labels

        labels = load_label_set(labels_dir)
        rows = join_labels(data.train, labels)
        targets = _targets(data.train, names, to_class)
        passes = math.ceil(config.fkd_epochs / config.num_crops)
        plain_dir = work / "plain_labels"
        _write_hard_label_set(rows, labels.metadata, targets, passes * config.num_crops, config.seed + 2, plain_dir,
                              data.train.image_column)  # fmt: skip
        plain_source = ("the photos' own labels (one-hot)" if data.mode == "photos" else "the dataset's labels (one-hot)") + \
            " on fresh random-resized crops every pass"  # fmt: skip
        runs["plain"], trainer = _fit("plain", config, plain_dir, data, train_rows, eval_set, student_teacher, work,
                                      data_config)  # fmt: skip
        del trainer
        gc.collect()
        stages.append(_training_stage("plain training", runs["plain"]))
    stages.append(Stage("evaluation", prepare_seconds, len(eval_set), "images" if data.mode != "photos" else "crops",
                        f"decode {len(eval_set)} eval {'images' if data.mode != 'photos' else 'crops'} at {size[0]} px"))  # fmt: skip

    # Hub-ready folders, summary, plot.
    t0 = time.perf_counter()
    card_data = card.card_data
    card_data.label_set = str(final / "labels")
    if data.mode == "photos":  # agreement is not accuracy: keep it out of the card's model-index
        card_data.top1 = card_data.top5 = card_data.eval_loss = None
        card_data.eval_split = card_data.eval_dataset = None
    elif data.mode == "holdout":
        card_data.eval_split = f"{config.train_split} (every {HOLDOUT_EVERY}th image, held out)"
    card.write(student_dir)
    metrics.update(
        device=_device_name(), threads=torch.get_num_threads(), dataset=data.spec,
        load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None, eval=data.eval_name,
        student=config.student, mode=data.mode,
        runs={key: {k: v for k, v in dataclasses.asdict(run).items() if k not in ("log_history", "correct")}
              for key, run in runs.items()},
    )  # fmt: skip
    if "plain" in runs:
        metrics["fkd_minus_plain"], metrics["fkd_minus_plain_se"] = paired_difference(runs["fkd"].correct,
                                                                                      runs["plain"].correct)  # fmt: skip
    from .plots import plot_training_curves

    names = {"fkd": "FKD (teacher soft labels)", "plain": "plain (hard labels)"}
    curves = plot_training_curves(
        {names[key]: run.log_history for key, run in runs.items()}, partial / CURVES_FILE,
        "agreement with the teacher (held-out crops)" if data.mode == "photos" else "top-1",
        reference=None if data.mode == "photos" else metrics["teacher_top1"], reference_label="teacher",
        title=f"{config.student} on {data.spec if data.mode != 'photos' else 'the sample photos'}",
    )  # fmt: skip
    shutil.rmtree(work)
    stages.append(Stage("cards, plot", time.perf_counter() - t0))
    metrics["total_seconds"] = time.perf_counter() - start
    metrics["stages"] = [dataclasses.asdict(stage) for stage in stages]
    text = _summary(config, data, teacher_name, metrics, stages, runs, final, plain_source, curves)
    (partial / SUMMARY_FILE).write_text(text)
    save_config(config, partial / CONFIG_FILE)
    (partial / RESULT_FILE).write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    return DemoResult(str(final), text, metrics, stages, str(final / CURVES_FILE) if curves else None)
