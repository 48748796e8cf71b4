"""Which images the demo trains on and scores on.

- ``photos`` (no ``--dataset``): the 20 sample photos; the students are scored on crops of them no training step used.
- ``split``: a dataset with a labelled evaluation split (``--eval-split``, else validation/val, else test).
- ``holdout``: a dataset without one; every 10th training image is held out of training and scored on.
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputNotFoundError, UsageError
from ..labels.images import SPLIT_DIRS, ImageSource, load_images
from ..repo_ids import is_repo_id
from .config import DemoConfig

__all__ = ["HOLDOUT_EVERY", "DemoData", "holdout_rows", "label_map", "prepare_data"]

HOLDOUT_EVERY = 10


def holdout_rows(num_rows: int) -> np.ndarray:
    """The rows the ``holdout`` mode keeps out of training: every 10th, starting with the 5th."""
    return np.arange(HOLDOUT_EVERY // 2, num_rows, HOLDOUT_EVERY)


@dataclasses.dataclass
class DemoData:
    """The demo's images and how they are used."""

    spec: str
    class_map: str | None  # what generate restricts the teacher to (None: all teacher classes)
    label_map: str  # how the data's labels match teacher classes when it is not restricted
    description: str
    train: ImageSource
    eval: ImageSource | None  # None: held-out crops (photos) or held-out train rows (holdout)
    mode: str  # "photos", "split" or "holdout"
    eval_name: str  # how the evaluation images are described in the summary

    def eval_source(self) -> ImageSource:
        """The labelled images the teacher is scored on (the photos themselves in ``photos`` mode)."""
        if self.mode == "photos":
            return self.train
        if self.mode == "holdout":
            return dataclasses.replace(self.train, dataset=self.train.dataset.select(holdout_rows(self.train.num_rows)))
        return self.eval

    def train_rows(self) -> list[int] | None:
        """The training rows the students learn from (None: all of them)."""
        if self.mode != "holdout":
            return None
        held = set(holdout_rows(self.train.num_rows).tolist())
        return [row for row in range(self.train.num_rows) if row not in held]


def label_map(source: ImageSource, names: Sequence[str], to_class: np.ndarray) -> np.ndarray:
    """``source``'s label -> label-set class index; ``names`` are the training split's classes and ``to_class``
    maps them to the label set's."""
    if source.label_column is None or source.label_names is None:
        raise UsageError(
            f"Split {source.split!r} of {source.spec!r} has no class labels: the demo needs labelled images."
        )
    missing = [name for name in source.label_names if name not in names]
    if missing:
        raise UsageError(f"The classes {missing[:5]} of split {source.split!r} are not among the training split's.")
    return np.asarray(to_class)[[list(names).index(name) for name in source.label_names]]


def _check_dataset_spec(spec: str) -> None:
    """A one-line error for a dataset that is neither an existing folder nor shaped like a Hub id."""
    path = Path(spec.removeprefix("imagefolder:")).expanduser()
    if spec.startswith("parquet:"):
        return
    if (spec.startswith("imagefolder:") or not is_repo_id(spec, namespaced=False)) and not path.is_dir():
        raise InputNotFoundError(
            f"--dataset {spec!r} is neither an existing folder nor a Hub dataset id: give imagefolder:PATH of a "
            "folder with one subfolder per class (or train/ and val/ of those), or a Hub id such as 'frgfm/imagenette'."
        )


def _load(spec: str, config: str | None, split: str) -> ImageSource:
    try:
        return load_images(spec, config, split)
    except (ValueError, KeyError, TypeError) as err:
        if "split" in str(err).lower():
            raise
        raise UsageError(f"Cannot read --dataset {spec!r}: {err}") from err
    except (ConnectionError, OSError) as err:
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputNotFoundError(
            f"--dataset {spec!r} is neither an existing folder nor a Hub dataset that can be loaded ({first}). Give "
            "imagefolder:PATH, or a Hub id (online, or already in the local cache)."
        ) from err


def _local_root(spec: str) -> Path | None:
    path = Path(spec.removeprefix("imagefolder:")).expanduser()
    return path if path.is_dir() else None


def _split_or_none(spec: str, config: str | None, split: str) -> ImageSource | None:
    """The ``split`` of ``spec`` if it exists (for a folder: a matching subfolder), else None."""
    root = _local_root(spec)
    if root is not None:
        has_folder = any((root / name).is_dir() for name in SPLIT_DIRS.get(split, (split,)))
        return _load(spec, config, split) if has_folder else None
    try:
        return _load(spec, config, split)
    except ValueError as err:
        if "split" in str(err).lower():
            return None
        raise


def _photo_data(config: DemoConfig) -> DemoData:
    from .photos import demo_photos

    photos = demo_photos()
    return DemoData(
        spec=photos.spec,
        label_map=photos.class_map,
        class_map={"none": None, "auto": photos.class_map}.get(config.class_map, config.class_map),
        description=f"the {photos.num_images} ImageNet sample photos of {photos.source}, {photos.num_classes} classes",
        train=load_images(photos.spec, split="train"),
        eval=None,
        mode="photos",
        eval_name=f"{photos.num_images * config.heldout_crops} held-out crops of the photos",
    )


def _train_split(config: DemoConfig) -> ImageSource:
    spec = config.dataset
    root = _local_root(spec)
    if root is not None and not any((root / name).is_dir() for name in SPLIT_DIRS.get(config.train_split, ())):
        held = [name for names in SPLIT_DIRS.values() for name in names if (root / name).is_dir()]
        if held:
            raise InputNotFoundError(
                f"--dataset {spec!r} has {'/'.join(held)}/ but no {config.train_split}/ folder: put the training "
                "images in train/<class>/ (or pass --train-split)."
            )
    train = _load(spec, config.dataset_config, config.train_split)
    if train.label_column is None or train.label_names is None:
        raise UsageError(
            f"--dataset {spec!r} has no class-label column 'label': the demo needs labelled images (one subfolder "
            "per class for a folder)."
        )
    return train


def _eval_split(config: DemoConfig) -> ImageSource | None:
    """The evaluation split (``--eval-split``, else validation, else test), ``--max-eval-images`` of it; or None."""
    for split in [config.eval_split] if config.eval_split else ["validation", "test"]:
        evaluation = _split_or_none(config.dataset, config.dataset_config, split)
        if evaluation is not None:
            break
    if evaluation is None:
        if config.eval_split:
            raise UsageError(f"--dataset {config.dataset!r} has no split {config.eval_split!r}: name an existing one.")
        return None
    if config.max_eval_images is not None and evaluation.num_rows > config.max_eval_images:
        picks = np.linspace(0, evaluation.num_rows - 1, config.max_eval_images).round().astype(int)
        evaluation.dataset = evaluation.dataset.select(np.unique(picks).tolist())
    return evaluation


def _dataset_data(config: DemoConfig) -> DemoData:
    spec = config.dataset
    _check_dataset_spec(spec)
    train = _train_split(config)
    evaluation = _eval_split(config)
    if evaluation is not None:
        mode, eval_name = "split", f"{evaluation.num_rows} images of split {evaluation.split!r}"
    else:
        if train.num_rows <= HOLDOUT_EVERY // 2:
            raise UsageError(
                f"--dataset {spec!r} has only {train.num_rows} images and no validation split: the demo holds out "
                f"every {HOLDOUT_EVERY}th image for evaluation, so give it more images or a val/ folder."
            )
        mode = "holdout"
        eval_name = (
            f"every {HOLDOUT_EVERY}th image of split {train.split!r} "
            f"({len(holdout_rows(train.num_rows))}), held out of training"
        )
    return DemoData(
        spec=spec,
        class_map=None if config.class_map == "none" else config.class_map,
        label_map="auto",
        description=f"{spec} ({train.num_rows} {train.split} images, {len(train.label_names)} classes)",
        train=train,
        eval=evaluation,
        mode=mode,
        eval_name=eval_name,
    )


def prepare_data(config: DemoConfig) -> DemoData:
    """The images of a resolved ``config``: the sample photos, or ``config.dataset`` with its evaluation images."""
    return _photo_data(config) if config.dataset is None else _dataset_data(config)
