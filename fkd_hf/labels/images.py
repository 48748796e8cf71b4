"""Image datasets: open any ``datasets`` image source and read rows as (image key, decoded RGB image)."""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import io
import os
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from ..errors import InputNotFoundError, UsageError

__all__ = [
    "ImageSource",
    "load_images",
    "image_bytes",
    "image_key",
    "decode_image",
    "BadImageError",
    "local_dataset_path",
    "absolute_dataset_spec",
    "locate_dataset",
    "SPLIT_DIRS",
]


# split name -> the folder names that hold it in an image folder
SPLIT_DIRS = {"validation": ("validation", "val", "valid"), "test": ("test",), "train": ("train",)}


class BadImageError(ValueError):
    """An image that cannot be read or decoded."""


@dataclasses.dataclass
class ImageSource:
    """An image dataset with its image column left undecoded, and where it came from."""

    dataset: datasets.Dataset | datasets.IterableDataset
    spec: str
    config: str | None
    split: str
    revision: str | None
    image_column: str
    label_column: str | None
    label_names: list[str] | None

    @property
    def num_rows(self) -> int | None:
        return getattr(self.dataset, "num_rows", None)


def local_dataset_path(spec: str) -> str | None:
    """The folder or parquet glob a dataset spec names, None for a Hub id."""
    for prefix in ("imagefolder:", "parquet:"):
        if spec.startswith(prefix):
            return spec.removeprefix(prefix)
    return spec if spec.endswith(".parquet") or Path(spec).is_dir() else None


def absolute_dataset_spec(spec: str) -> str | None:
    """``spec`` with its local path made absolute (``imagefolder:/abs/path``), None for a Hub id."""
    path = local_dataset_path(spec)
    return None if path is None else spec[: len(spec) - len(path)] + os.path.abspath(os.path.expanduser(path))


def _found(path: str | None) -> bool:
    return path is not None and (Path(path).is_dir() or bool(glob.glob(os.path.expanduser(path), recursive=True)))


def locate_dataset(spec: str, absolute: str | None = None) -> str:
    """``spec`` if it is found from the working directory (or is a Hub id), else ``absolute`` (the absolute form a
    label set records beside it) if that is found; raises FileNotFoundError, saying to pass --dataset, otherwise."""
    path = local_dataset_path(spec)
    if (path is None and absolute is None) or _found(path):
        return spec
    if absolute is not None and _found(local_dataset_path(absolute)):
        return absolute
    where = f" ({absolute})" if absolute not in (None, spec) else ""
    raise InputNotFoundError(
        f"The label set was made from the images in {spec}{where}, which are not found from {os.getcwd()}: pass "
        "--dataset with where they are now (e.g. --dataset imagefolder:/path/to/train)."
    )


def _check_has_images(folder: Path, split_dir: Path) -> None:
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    extensions = set(ImageFolder.EXTENSIONS) | {".parquet"}
    for _, _, files in os.walk(split_dir, followlinks=True):
        if any(os.path.splitext(name)[1].lower() in extensions for name in files):
            return
    inside = f" (looked in {split_dir})" if split_dir != folder else ""
    raise InputNotFoundError(f"{folder} holds no images{inside}: give a folder of class subfolders of images.")


def _load(spec: str, config: str | None, split: str, revision: str | None, streaming: bool):
    local = Path(spec.removeprefix("imagefolder:"))
    if spec.startswith("imagefolder:") or local.is_dir():
        if not local.is_dir():
            raise InputNotFoundError(f"Image folder {local} does not exist.")
        # A folder with one subfolder per split (train/, val/) or with the class folders directly. Files are named
        # explicitly: datasets' split inference from file names misreads e.g. ImageNet's "*_val_*" train images.
        split_dir = next((local / name for name in SPLIT_DIRS.get(split, (split,)) if (local / name).is_dir()), None)
        if split_dir is None:  # only the train split may be the folder itself (class folders directly in it)
            if split != "train":
                raise InputNotFoundError(
                    f"Image folder {local} has no {split} split: it needs a subfolder "
                    f"{' or '.join(SPLIT_DIRS.get(split, (split,)))}/ of class folders."
                )
            split_dir = local
        _check_has_images(local, split_dir)
        builder = "parquet" if any(split_dir.glob("**/*.parquet")) else "imagefolder"
        pattern = "**/*.parquet" if builder == "parquet" else "**"
        return datasets.load_dataset(
            builder, data_files={split: str(split_dir / pattern)}, split=split, streaming=streaming
        )
    if spec.startswith("parquet:") or spec.endswith(".parquet"):
        files = spec.removeprefix("parquet:")
        return datasets.load_dataset("parquet", data_files={split: files}, split=split, streaming=streaming)
    if spec.count("/") > 1 or spec.startswith((".", "/", "~")):
        raise InputNotFoundError(
            f"Dataset {spec!r} is neither an existing folder nor a Hub id: give a Hub id like 'ILSVRC/imagenet-1k', "
            "'imagefolder:PATH' for a folder of class subfolders, or 'parquet:GLOB'."
        )
    try:
        return datasets.load_dataset(spec, config, split=split, revision=revision, streaming=streaming)
    except (ConnectionError, FileNotFoundError) as err:  # DatasetNotFoundError is a FileNotFoundError
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputNotFoundError(
            f"no folder {spec} (and no Hub dataset of that name: {reason}): give an existing folder, "
            "imagefolder:PATH, parquet:GLOB or a Hub dataset id."
        ) from err


def load_images(
    spec: str,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
    streaming: bool = False,
    image_column: str = "image",
    label_column: str | None = "label",
    max_rows: int | None = None,
) -> ImageSource:
    """Opens ``spec``: a Hub id (with ``config``/``split``/``revision``), ``imagefolder:PATH`` or a folder, or
    ``parquet:GLOB``. The image column is cast to undecoded bytes so each consumer decodes exactly once."""
    dataset = _load(spec, config, split, revision, streaming)
    features = dataset.features or {}
    if image_column not in features:
        raise UsageError(
            f"Dataset {spec!r} has no image column {image_column!r}; its columns are {list(features)}. "
            "Pass the right name with --image-column."
        )
    if not isinstance(features[image_column], datasets.Image):
        raise UsageError(
            f"Column {image_column!r} of {spec!r} is {features[image_column]}, not a datasets.Image: pass the image "
            "column with --image-column."
        )
    dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    if label_column is not None and label_column not in features:
        label_column = None
    label_names = None
    if label_column is not None and isinstance(features[label_column], datasets.ClassLabel):
        label_names = list(features[label_column].names)
    if max_rows is not None:
        dataset = dataset.take(max_rows) if streaming else dataset.select(range(min(max_rows, dataset.num_rows)))
    return ImageSource(dataset, spec, config, split, revision, image_column, label_column, label_names)


def image_bytes(value: dict) -> bytes:
    """The encoded bytes of an undecoded ``datasets.Image`` value (``{"bytes": ..., "path": ...}``)."""
    if value.get("bytes") is not None:
        return value["bytes"]
    path = value.get("path")
    if not path:
        raise BadImageError("the image has neither bytes nor a path")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise BadImageError(f"cannot read {path}: {err}") from err


def image_key(data: bytes) -> str:
    """A stable identity of an encoded image: the BLAKE2b-128 hex digest of its bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def decode_image(data: bytes) -> Image.Image:
    """Decodes encoded image bytes to 8-bit RGB, fully (a truncated file raises BadImageError). 16-bit pixels
    (a 16-bit grey PNG or TIFF) keep their high byte, as PIL does for 16-bit RGB and torchvision for any 16-bit
    image; PIL's own conversion would clip them to white."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as err:  # PIL raises several types for corrupt data
        raise BadImageError(f"cannot decode the image: {err}") from err
    if image.mode.startswith("I") or image.mode == "F":
        image = _grey_to_eight_bits(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def _grey_to_eight_bits(image: Image.Image) -> Image.Image:
    """A 16-bit grey image (mode ``I;16*``, or ``I`` holding values 0-65535) as 8-bit ``L``; other integer or float
    modes have no agreed 8-bit scale and raise BadImageError."""
    pixels = np.asarray(image)
    if image.mode == "F" or (image.mode == "I" and pixels.size and not 0 <= pixels.min() <= pixels.max() <= 65535):
        kind = "32-bit float" if image.mode == "F" else "32-bit integer"
        raise BadImageError(
            f"cannot decode the image: its {kind} pixels (PIL mode {image.mode}) have no 8-bit scale; "
            "save it as 8- or 16-bit"
        )
    return Image.fromarray((pixels.astype(np.uint32) >> 8).astype(np.uint8), "L")
