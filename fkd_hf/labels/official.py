"""The label files of FKD's official generator, ``FKD_SLG/generate_soft_label.py`` (github.com/szq0214/FKD).

One ``torch.save`` file per training image, ``<split>/<wnid>/<stem>.tar`` where ``stem`` is the image's file name up
to its first dot, holding the list ``[coords, flips, labels]``:

- ``coords``: R x 4 float32 (float16 with ``--use_fp16``) ``(top/H, left/W, height/H, width/W)``, fkd-hf's crop
  convention; ``flips``: R booleans.
- ``labels`` by ``--label_type``: ``hard`` R class indices; ``smoothing`` R x 2 ``(index, probability)``;
  ``marginal_smoothing_k5``, ``marginal_renorm_k5`` and ``marginal_smoothing_k10`` R x 2 x k (row 0 the class
  indices stored as floats, row 1 their probabilities).

Files are read with ``torch.load(weights_only=True)``, with only numpy's array reconstruction allow-listed: a file
that holds anything else is refused, never unpickled. Importing this module loads neither torch nor datasets.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .kinds import KINDS
from .targets.class_probabilities import INDICES, VALUES

GENERATOR = "FKD_SLG/generate_soft_label.py"
GENERATOR_URL = "https://github.com/szq0214/FKD/tree/main/FKD_SLG"
LABEL_TYPES = {  # official --label_type -> (fkd-hf kind, k)
    "hard": ("hard", 1),
    "smoothing": ("smoothing", 1),
    "marginal_smoothing_k5": ("marginal_smoothing", 5),
    "marginal_renorm_k5": ("marginal_renorm", 5),
    "marginal_renorm": ("marginal_renorm", 5),
    "marginal_smoothing_k10": ("marginal_smoothing", 10),
}
IMPORTABLE_KINDS = tuple(kind for kind in KINDS if kind != "full")
# The dtypes the official files hold: coords and probabilities (float16/32/64), flips (bool), hard indices (int).
_ARRAY_DTYPES = ("f2", "f4", "f8", "?", "i8", "i4")
_LOAD_LOCK = threading.Lock()
SUM_TOLERANCE = 1e-3  # over 1, in the sum of a crop's probabilities: float16 rounds each by at most 2**-11 of it

__all__ = [
    "GENERATOR",
    "GENERATOR_URL",
    "LABEL_TYPES",
    "IMPORTABLE_KINDS",
    "OfficialFileError",
    "resolve_kind",
    "infer_kind",
    "label_type_name",
    "file_stem",
    "index_label_files",
    "match_label_files",
    "load_label_file",
    "to_label_columns",
]


class OfficialFileError(ValueError):
    """An official label file that cannot be used (unreadable, unsafe or of the wrong shape); names the path."""


def resolve_kind(name: str) -> tuple[str, int | None]:
    """``(kind, k)`` for an fkd-hf kind or an official ``--label_type`` name; ``k`` is None when the files tell it."""
    if name in LABEL_TYPES:
        return LABEL_TYPES[name]
    if name in IMPORTABLE_KINDS:
        return name, 1 if name in ("hard", "smoothing") else None
    raise ValueError(
        f"Unknown kind {name!r} for official label files: choose one of {', '.join(IMPORTABLE_KINDS)} or an "
        f"official --label_type ({', '.join(LABEL_TYPES)})."
    )


def infer_kind(labels: np.ndarray) -> tuple[str, int]:
    """``(kind, k)`` from the shape of one file's labels. R x 2 x k files are taken as ``marginal_smoothing``: the
    same shape holds ``marginal_renorm_k5``, which only ``--kind marginal_renorm`` can tell."""
    if labels.ndim == 1:
        return "hard", 1
    if labels.ndim == 2 and labels.shape[1] == 2:
        return "smoothing", 1
    if labels.ndim == 3 and labels.shape[1] == 2:
        return "marginal_smoothing", int(labels.shape[2])
    raise ValueError(f"labels of shape {tuple(labels.shape)} match no official label type")


def label_type_name(kind: str, k: int) -> str:
    """The official ``--label_type`` of ``(kind, k)`` (``marginal_smoothing_k5``, ...)."""
    return kind if kind in ("hard", "smoothing") else f"{kind}_k{k}"


def file_stem(name: str) -> str:
    """The official generator's key of an image or label file: its name up to the first dot."""
    return name.split(".", 1)[0]


def index_label_files(label_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """Every ``*.tar`` file under ``label_dir``, by :func:`file_stem`."""
    root = Path(label_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: give the folder of official FKD label files (*.tar).")
    index: dict[str, list[Path]] = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".tar"):
                index.setdefault(file_stem(name), []).append(Path(folder, name))
    return index


def match_label_files(image_paths: Sequence[str], index: dict[str, list[Path]]) -> tuple[list[Path | None], list[Path]]:
    """The label file of each image (None where there is none) and the label files no image claimed.

    Images and files are matched by :func:`file_stem`; where several files share a stem, the one in a folder named
    like the image's folder (its class) is taken.
    """
    matches: list[Path | None] = []
    used: set[Path] = set()
    for image_path in image_paths:
        image = Path(image_path)
        candidates = index.get(file_stem(image.name), [])
        if len(candidates) > 1:
            candidates = [path for path in candidates if path.parent.name == image.parent.name]
        if len(candidates) > 1:
            raise ValueError(
                f"Image {image} matches several label files ({', '.join(map(str, candidates[:3]))}): keep one "
                "label folder per split in LABEL_DIR."
            )
        match = candidates[0] if candidates else None
        matches.append(match)
        if match is not None:
            used.add(match)
    unmatched = sorted(path for paths in index.values() for path in paths if path not in used)
    return matches, unmatched


def _safe_globals() -> list:
    """numpy's array reconstruction, under the names numpy 1 and numpy 2 pickle it by, and its dtypes: nothing else."""
    reconstruct = np.zeros(1).__reduce__()[0]
    return [
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        *(type(np.dtype(code)) for code in _ARRAY_DTYPES),
    ]


def load_label_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(coords, flips, labels)`` of one official file, loaded without arbitrary unpickling."""
    import pickle

    import torch

    try:
        data = Path(path).read_bytes()  # read in parallel; unpickled under the lock
        if not data:
            raise EOFError("empty file")
        # safe_globals changes process-wide state on entry and exit: one thread at a time
        with _LOAD_LOCK, torch.serialization.safe_globals(_safe_globals()):
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        if "Weights only load failed" in reason:
            reason = "it holds objects other than numpy arrays and tensors, so it was not unpickled"
        raise OfficialFileError(f"{path}: cannot be read as an official FKD label file ({reason[:300]}).") from err
    if not isinstance(state, (list, tuple)) or len(state) != 3:
        raise OfficialFileError(f"{path}: holds {type(state).__name__}, not the list [coords, flips, labels].")
    return tuple(part.numpy() if isinstance(part, torch.Tensor) else np.asarray(part) for part in state)


def _check_shape(path, name: str, array: np.ndarray, expected: tuple[int, ...]) -> None:
    if array.shape != expected:
        raise OfficialFileError(f"{path}: {name} has shape {tuple(array.shape)}, expected {expected}.")


def _class_indices(path, values: np.ndarray, num_classes: int) -> np.ndarray:
    indices = np.rint(values).astype(np.int64)
    if not np.array_equal(indices, values) or indices.min() < 0 or indices.max() >= num_classes:
        raise OfficialFileError(
            f"{path}: class indices must be whole numbers in [0, {num_classes}), found {values.min()}..{values.max()}: "
            "pass --num_classes of the teacher's label space."
        )
    return indices


def to_label_columns(
    state: Iterable[np.ndarray], path, kind: str, k: int, stored_crops: int, num_classes: int
) -> dict[str, np.ndarray]:
    """One file's ``[coords, flips, labels]`` as a label-set row: ``crops`` R x 4, ``flips`` R, ``topk_indices`` and
    ``topk_values`` R x k. Raises :class:`OfficialFileError` (naming ``path``) for any shape but the expected one."""
    coords, flips, labels = state
    r = stored_crops
    if r < 1:
        raise OfficialFileError(f"{path}: holds no crops (coords of shape {tuple(coords.shape)}).")
    _check_shape(path, "coords", coords, (r, 4))
    _check_shape(path, "flips", flips, (r,))
    if kind == "hard":
        _check_shape(path, f"labels ({kind})", labels, (r,))
        indices, values = labels.reshape(r, 1).astype(np.float64), np.ones((r, 1), np.float32)
    elif kind == "smoothing":
        _check_shape(path, f"labels ({kind})", labels, (r, 2))
        indices, values = labels[:, :1].astype(np.float64), labels[:, 1:].astype(np.float32)
    else:
        _check_shape(path, f"labels ({label_type_name(kind, k)})", labels, (r, 2, k))
        indices, values = labels[:, 0].astype(np.float64), labels[:, 1].astype(np.float32)
    if not (np.isfinite(coords).all() and np.isfinite(values).all()):
        raise OfficialFileError(f"{path}: holds values that are not finite numbers.")
    if coords.min() < 0 or coords.max() > 1:
        raise OfficialFileError(
            f"{path}: coords must be fractions of the image in [0, 1], found {coords.min()}..{coords.max()}."
        )
    if values.min() < 0 or values.max() > 1:
        raise OfficialFileError(f"{path}: probabilities must lie in [0, 1], found {values.min()}..{values.max()}.")
    total = values.astype(np.float64).sum(-1).max()
    if total > 1 + SUM_TOLERANCE:
        raise OfficialFileError(f"{path}: the probabilities stored for a crop sum to {total:.4f}, more than 1.")
    return {
        "crops": coords.astype(np.float32),
        "flips": flips.astype(bool),
        INDICES: _class_indices(path, indices, num_classes),
        VALUES: values,
    }
