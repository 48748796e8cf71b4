"""Preprocessing of transformers models: a timm-style data config from an image processor, for teachers and
students alike."""

from __future__ import annotations

__all__ = ["IMAGENET_DATA_CONFIG", "processor_data_config"]

# What a transformers model without an image processor gets: ImageNet statistics at 224 px.
IMAGENET_DATA_CONFIG = {
    "input_size": (224, 224),
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "interpolation": "bilinear",
    "crop_pct": 0.875,
}
_RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def processor_data_config(processor) -> dict:
    """``input_size`` (h, w), ``mean``, ``std``, ``interpolation`` and ``crop_pct`` of an image processor, with its
    resize + centre-crop semantics (the crop counts only when the processor centre-crops). Missing attributes take
    :data:`IMAGENET_DATA_CONFIG`'s values."""
    size = getattr(processor, "size", None) or {}
    size = dict(size) if not isinstance(size, int) else {"shortest_edge": size}
    crop = dict(getattr(processor, "crop_size", None) or {}) if getattr(processor, "do_center_crop", False) else {}
    edge = size.get("shortest_edge")
    default_h, default_w = IMAGENET_DATA_CONFIG["input_size"]
    height = crop.get("height") or size.get("height") or edge or default_h
    width = crop.get("width") or size.get("width") or edge or default_w
    crop_pct = getattr(processor, "crop_pct", None)
    if crop_pct is None:
        crop_pct = min(height, width) / edge if crop and edge else 1.0
    resample = getattr(processor, "resample", None)
    return {
        "input_size": (int(height), int(width)),
        "mean": tuple(getattr(processor, "image_mean", None) or IMAGENET_DATA_CONFIG["mean"]),
        "std": tuple(getattr(processor, "image_std", None) or IMAGENET_DATA_CONFIG["std"]),
        "interpolation": _RESAMPLE_NAMES.get(int(resample), "bilinear") if resample is not None else "bilinear",
        "crop_pct": float(crop_pct),
    }
