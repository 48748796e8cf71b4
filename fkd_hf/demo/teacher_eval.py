"""The demo's teacher stage: load the teacher, match the data's classes to it, and score it on the evaluation images
through :class:`~fkd_hf.models.TeacherRunner` (the batched forward ``generate`` uses), in the demo's precision on
the training device."""

from __future__ import annotations

import dataclasses
import errno
import gc
import time

import numpy as np
from tqdm.auto import tqdm

from ..errors import UsageError
from ..models.teacher_runner import TeacherRunner
from ..models.teachers import Teacher, load_teacher, resolve_class_map
from .config import DemoConfig, device_type
from .data import DemoData, label_map
from .eval_set import eval_images
from .summary import Stage

__all__ = ["TeacherEval", "evaluate_teacher", "load_demo_teacher"]


@dataclasses.dataclass
class TeacherEval:
    """The teacher's classes as the label set will hold them, and its scores on the evaluation images."""

    name: str
    class_names: list[str]  # the label set's classes
    classes: np.ndarray  # training-split label -> label-set class index
    eval_labels: np.ndarray  # label-set class of each evaluation image
    preds: np.ndarray  # the teacher's top-1 (over the label set's classes) on each evaluation image
    metrics: dict
    stage: Stage


def load_demo_teacher(spec: str) -> Teacher:
    """``load_teacher(spec)``, with a one-line error for a teacher it cannot load."""
    try:
        return load_teacher(spec)
    except ImportError:
        raise
    except Exception as err:  # timm, transformers and the Hub raise many types for a teacher they cannot load
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"Cannot load teacher {spec!r} ({first}). Give efficientnet-lite0 (offline), a timm model name, "
            "timm/<name> or hf-hub:<org>/<name>, a transformers Hub id, or a folder with config.json and weights."
        ) from err


def _teacher_crop_pct(teacher: Teacher) -> float:
    return float(getattr(teacher.model, "pretrained_cfg", {}).get("crop_pct", 0.875) or 0.875)


def _label_set_classes(teacher: Teacher, data: DemoData) -> tuple[list[int] | None, list[str], np.ndarray]:
    """(teacher classes the label set keeps or None for all, the label set's class names, training label ->
    label-set class)."""
    names = list(data.train.label_names)
    if data.class_map is not None:  # the label set's classes are the data's; dataset label = class index
        return resolve_class_map(teacher, data.class_map, names), names, np.arange(len(names))
    # All teacher classes; the data's labels are matched to them.
    return None, list(teacher.class_names), np.asarray(resolve_class_map(teacher, data.label_map, names))


def evaluate_teacher(config: DemoConfig, data: DemoData) -> TeacherEval:
    """Loads ``config.teacher`` and scores its top-1 on ``data``'s evaluation images (centre crops)."""
    start = time.perf_counter()
    teacher = load_demo_teacher(config.teacher)
    class_indices, class_names, classes = _label_set_classes(teacher, data)
    source = data.eval_source()
    images = eval_images(
        source,
        label_map(source, data.train.label_names, classes),
        teacher.input_size,
        _teacher_crop_pct(teacher),
        teacher.interpolation,
        config.num_workers,
        "teacher: decode",
    )
    runner = TeacherRunner(teacher, config.precision, device_type(), class_indices)
    batches = tqdm(
        images.batches(config.teacher_batch_size),
        total=-(-len(images) // config.teacher_batch_size),
        desc="teacher: evaluate",
        unit="batch",
        dynamic_ncols=True,
    )
    preds, preds_all = runner.predict(batches)
    labels = images.labels
    metrics = {
        "teacher": config.teacher,
        "num_classes": len(class_names),
        "restricted": class_indices is not None,
        "teacher_top1": float(np.mean(preds == labels)),
        "teacher_classes": teacher.num_classes,
        "teacher_top1_all": None
        if class_indices is None
        else float(np.mean(preds_all == np.asarray(class_indices)[labels])),
    }
    name = teacher.name
    del teacher, runner, images
    gc.collect()
    stage = Stage("teacher", time.perf_counter() - start, len(labels), "images", f"load, top-1 on {len(labels)} images")
    return TeacherEval(name, class_names, classes, labels, preds, metrics, stage)
