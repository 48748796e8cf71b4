"""Random-resized crops: sampled once at generation time, replayed exactly at training time.

A crop is stored as four float16 numbers in FKD's convention, ``(top/H, left/W, height/H, width/W)``, relative to
the decoded source image of height H and width W, plus a horizontal-flip flag.

Replay rule (the one place where stored values become pixels, used by the teacher and the student alike)::

    height = clip(round(h * H), 1, H)        width = clip(round(w * W), 1, W)
    top    = clip(round(t * H), 0, H - height)   left = clip(round(l * W), 0, W - width)

where ``round(x) = floor(x + 0.5)`` computed in float64 from the stored float16 values. Generation quantizes the
sampled box to float16 *before* it crops for the teacher, so the student replays exactly the pixels the teacher saw.

Replay methods turn a pixel box into pixels (:func:`replay_crops`); a label set records the one it was made with
(``tensor`` for new sets, ``pil`` for sets made before fkd-hf 0.2 and imported official FKD files), and each is exact
to itself: a crop's pixels depend only on the image, its box, flip, size and interpolation, never on
the other crops replayed with it, so generation (all R crops) and training (m of them) agree.

- ``pil``: PIL's ``resize(box=...)`` of the PIL-decoded image, then the flip (:func:`replay_crop`).
- ``tensor``: torch's antialiased uint8 resize (``F.interpolate(..., antialias=True)``, bilinear or bicubic) of the
  crop of :func:`~fkd_hf.labels.decode.decode_pixels`' tensor, then the flip: 2-3x less CPU than ``pil`` on a
  CPU with AVX2 (the same pixels without it, 5x slower). Its pixels differ from ``pil``'s at the crop borders, where
  PIL's filter also reads pixels beyond the box (up to 16 levels there, at most 2 further in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

DEFAULT_SCALE = (0.08, 1.0)
DEFAULT_RATIO = (3 / 4, 4 / 3)

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
REPLAYS = ("pil", "tensor")
DEFAULT_REPLAY = "tensor"  # of new label sets; sets made before replays were named (fkd-hf < 0.2) replay with pil
TENSOR_INTERPOLATIONS = ("bilinear", "bicubic")  # torch's antialiased uint8 resize has these two

__all__ = [
    "DEFAULT_SCALE",
    "DEFAULT_RATIO",
    "check_crop_ranges",
    "crop_rng",
    "sample_crops",
    "crops_to_pixels",
    "replay_crop",
    "replay_crops",
    "resample_filter",
    "REPLAYS",
    "DEFAULT_REPLAY",
    "check_replay",
    "check_replay_interpolation",
    "TENSOR_INTERPOLATIONS",
]


def check_crop_ranges(scale: Sequence[float], ratio: Sequence[float]) -> None:
    """Raises a ValueError unless ``0 < scale[0] <= scale[1] <= 1`` and ``0 < ratio[0] <= ratio[1] < inf``."""
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"crop scale must be two numbers with 0 < min <= max <= 1, got {tuple(scale)}.")
    if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1] < math.inf:
        raise ValueError(f"crop ratio must be two finite numbers with 0 < min <= max, got {tuple(ratio)}.")


def crop_rng(seed: int, row_index: int) -> np.random.Generator:
    """The random generator for one source row: a function of ``(seed, row_index)`` only, so shards agree."""
    return np.random.default_rng([int(seed), int(row_index)])


def _sample_box(rng: np.random.Generator, height: int, width: int, scale, ratio) -> tuple[int, int, int, int]:
    """One RandomResizedCrop box ``(top, left, h, w)`` in pixels, with torchvision's algorithm and fallback."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def sample_crops(
    height: int,
    width: int,
    num_crops: int,
    rng: np.random.Generator,
    scale: Sequence[float] = DEFAULT_SCALE,
    ratio: Sequence[float] = DEFAULT_RATIO,
) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``num_crops`` boxes and flips for an image of ``height`` x ``width``.

    Returns ``(crops, flips)``: ``[R, 4]`` float16 in the stored convention and ``[R]`` bool.
    """
    boxes = np.array([_sample_box(rng, height, width, scale, ratio) for _ in range(num_crops)], dtype=np.float64)
    boxes /= np.array([height, width, height, width], dtype=np.float64)
    flips = rng.random(num_crops) < 0.5
    return boxes.astype(np.float16), flips


def crops_to_pixels(crops: np.ndarray, height: int, width: int) -> np.ndarray:
    """Whole-pixel boxes ``[R, 4]`` (top, left, height, width) from stored crops, by the module's replay rule."""
    c = np.asarray(crops, dtype=np.float16).astype(np.float64).reshape(-1, 2, 2)  # [(top, left), (h, w)]
    size = np.array([height, width], dtype=np.float64)
    hw = np.clip(np.floor(c[:, 1] * size + 0.5), 1, size)
    top_left = np.clip(np.floor(c[:, 0] * size + 0.5), 0, size - hw)
    return np.concatenate([top_left, hw], axis=1).astype(np.int64)


def resample_filter(interpolation: str) -> Image.Resampling:
    """PIL's filter for an interpolation name (``bilinear``, ``bicubic``, ...)."""
    try:
        return _RESAMPLE[interpolation]
    except KeyError:
        raise ValueError(f"Unknown interpolation {interpolation!r}; choose one of {', '.join(_RESAMPLE)}.") from None


def replay_crop(
    image: Image.Image, box: Sequence[int], flip: bool, size: tuple[int, int], interpolation: str = "bilinear"
) -> Image.Image:
    """Crops pixel ``box`` (top, left, height, width) from ``image``, resizes it to ``size`` (height, width) and
    mirrors it when ``flip`` is set. One PIL call does the crop and the resize."""
    top, left, h, w = (int(v) for v in box)
    out = image.resize((size[1], size[0]), resample_filter(interpolation), box=(left, top, left + w, top + h))
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else out


def check_replay(replay: str) -> str:
    """Returns ``replay`` if it names a replay method, else raises a ValueError naming the known ones."""
    if replay not in REPLAYS:
        raise ValueError(f"Unknown replay method {replay!r}; choose one of {', '.join(REPLAYS)}.")
    return replay


def check_replay_interpolation(replay: str, interpolation: str) -> None:
    """Raises a ValueError unless replay method ``replay`` can resize with ``interpolation``."""
    check_replay(replay)
    resample_filter(interpolation)
    if replay == "tensor" and interpolation not in TENSOR_INTERPOLATIONS:
        raise ValueError(
            f"Replay 'tensor' resizes with {' or '.join(TENSOR_INTERPOLATIONS)}, not {interpolation!r}: choose one of "
            "them, or replay 'pil'."
        )


def _tensor_crop(image: torch.Tensor, box: Sequence[int], flip: bool, size: tuple[int, int], mode: str) -> torch.Tensor:
    """One crop of a uint8 ``[3, H, W]`` image as uint8 ``[h, w, 3]`` (the ``tensor`` replay)."""
    import torch
    import torch.nn.functional as F

    top, left, h, w = (int(v) for v in box)
    # A channels-last crop (one small copy) keeps the resize and its output channels-last: no layout conversions.
    crop = image[:, top : top + h, left : left + w].unsqueeze(0).contiguous(memory_format=torch.channels_last)
    out = F.interpolate(crop, size=size, mode=mode, antialias=True, align_corners=False)[0].permute(1, 2, 0)
    return out.flip(1) if flip else out


def replay_crops(
    image: Image.Image | torch.Tensor,
    boxes: np.ndarray,
    flips: Sequence[bool],
    size: Sequence[int],
    interpolation: str = "bilinear",
    replay: str = DEFAULT_REPLAY,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The crops of ``image`` at pixel ``boxes`` (``[n, 4]`` top, left, height, width, from :func:`crops_to_pixels`),
    resized to ``size`` (height, width) and mirrored where ``flips`` is set, by replay method ``replay``.

    ``image`` comes from :func:`~fkd_hf.labels.decode.decode_for_replay` with the same ``replay``. Returns uint8
    ``[n, height, width, 3]``: ``out`` (an array of that shape and type) where given, filled in.
    """
    import torch

    check_replay_interpolation(replay, interpolation)
    size = (int(size[0]), int(size[1]))
    expected = Image.Image if replay == "pil" else torch.Tensor
    if not isinstance(image, expected):
        raise TypeError(
            f"Replay {replay!r} crops a {expected.__name__}, got a {type(image).__name__}: decode with "
            f"decode_for_replay(data, {replay!r})."
        )
    if out is None:
        out = np.empty((len(boxes), *size, 3), dtype=np.uint8)
    elif out.shape != (len(boxes), *size, 3) or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 {(len(boxes), *size, 3)}, got {out.dtype} {out.shape}.")
    for i, (box, flip) in enumerate(zip(boxes, flips)):
        if replay == "pil":
            out[i] = np.asarray(replay_crop(image, box, bool(flip), size, interpolation))
        else:
            torch.from_numpy(out[i]).copy_(_tensor_crop(image, box, bool(flip), size, interpolation))
    return out
