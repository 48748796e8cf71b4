"""Timing: process CPU time per crop of each arm, T (decode + n crops) of its ops, D per decoder, and what they give.

Process CPU time counts every thread of the process (FFCV's worker thread too) and is disturbed less by other load
on the machine than wall time; each figure is the best of interleaved rounds.
"""

from __future__ import annotations

import io
import time

import numpy as np
import torch
from PIL import Image

from fkd_hf.labels.crops import crop_rng, crops_to_pixels, replay_crops, sample_crops
from fkd_hf.labels.decode import decode_pixels, decoded_size
from fkd_hf.labels.images import decode_image

from .arms import device_crops, imagefolder_decode, official_crops, torchvision_crop
from .settings import A100_CROPS_PER_S, DECODER, LAYOUT


def run(arm: tuple, crops: int) -> tuple[float, float]:
    """CPU ms per crop of arm ``(batches, batches per unit, targets or None)`` over whole units of at least ``crops``
    crops: ``(all, of which the targets)``."""
    batches, unit, targets = arm
    start, done, in_targets = time.process_time(), 0, 0.0
    while done < crops:
        for _ in range(unit):
            batch = next(batches)
            if targets is not None:
                begin = time.process_time()
                targets(batch)
                in_targets += time.process_time() - begin
            done += len(batch["pixel_values"])
    return (time.process_time() - start) / done * 1e3, in_targets / done * 1e3


def _ms(fn, items, sync: bool = False) -> float:
    """CPU milliseconds per item of ``fn`` over ``items`` (``sync``: waiting for the accelerator at the end)."""
    start = time.process_time()
    for item in items:
        fn(item)
    if sync:
        torch.accelerator.synchronize()
    return (time.process_time() - start) / len(items) * 1e3


def draft_decode(data: bytes) -> Image.Image:
    """PIL's reduced-size JPEG decoding at half size (``Image.draft``: DCT scaling)."""
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (image.width // 2, image.height // 2))
    image.load()
    return image


DECODERS = {
    "pil": decode_image,
    "tensor": decode_pixels,
    "pil_draft_half": draft_decode,
    "torchvision": imagefolder_decode,
}
CROPS = {  # ops -> (decoded photo, pixel boxes, flips, size, interpolation, device) -> its crops
    "pil": lambda image, boxes, flips, size, mode, device: replay_crops(image, boxes, flips, size, mode, "pil"),
    "tensor": lambda image, boxes, flips, size, mode, device: replay_crops(image, boxes, flips, size, mode, "tensor"),
    "torchvision": lambda image, boxes, flips, size, mode, device: [torchvision_crop(image, size) for _ in boxes],
    "official": lambda image, boxes, flips, size, mode, device: official_crops(image, boxes, flips, size),
    "device": lambda image, boxes, flips, size, mode, device: device_crops([image], [boxes], [flips], size, device),
}


def photo_ms(photos: list[bytes], boxes: list, op: str, size: int, mode: str, n: int, count: int, device: str) -> float:
    """T: CPU ms per photo to decode it with ``op``'s decoder and crop it ``n`` times with ``op`` (crop, resize, flip
    into uint8), over ``count`` photos; C = (T - D) / n is then the crop cost met as a loader meets it."""
    decode, crop = DECODERS[DECODER.get(op, op)], CROPS[op]

    def photo(i):
        image, (crops, flips) = decode(photos[i % len(photos)]), boxes[i % len(boxes)]
        crop(image, crops_to_pixels(crops[:n], *decoded_size(image)), flips[:n], (size, size), mode, device)

    return _ms(photo, range(count), sync=op == "device" and device != "cpu")


def layout(method: str, args) -> tuple[int, str | None]:
    """(crops per decode, ops) of a method."""
    count, op = LAYOUT[method]
    return {"1": 1, "m": args.num_crops, "R": args.stored_crops}[count], op


def measure(photos: list[bytes], arms: dict, args) -> tuple[dict, dict]:
    """Best-of-rounds D per decoder and, per arm group and method, ``(CPU ms per crop, of it targets, T)``: each
    arm timed over >= --crops crops, right after it T of its ops over as many photos, so both see the same load
    (T is None for a method whose ops are not measured apart)."""
    boxes = [
        sample_crops(*Image.open(io.BytesIO(data)).size[::-1], args.stored_crops, crop_rng(0, row))
        for row, data in enumerate(photos)
    ]
    for arm in (arm for group in arms.values() for arm in group.values() if arm is not None):
        run(arm, 1)  # warm-up: one unit (first batches, kernels, allocator, FFCV's compilation)
    decode, costs = {}, {}
    for _ in range(args.rounds):  # interleaved, so that load from elsewhere hits every figure alike
        for name, fn in DECODERS.items():
            decode[name] = min(decode.get(name, float("inf")), _ms(fn, photos))
        for (size, mode), group in arms.items():
            for name, arm in group.items():
                n, op = layout(name, args)
                cost = (0.0, 0.0) if arm is None else run(arm, args.crops)
                t = (
                    None
                    if op is None
                    else photo_ms(photos, boxes, op, size, mode, n, max(8, args.crops // n), args.device)
                )
                old = costs.setdefault((size, mode), {}).get(name, (float("inf"), 0.0, float("inf")))
                costs[size, mode][name] = (*min(old[:2], cost), None if t is None else min(old[2], t))
    return decode, costs


def draft_shares(photos: list[bytes], stored: int, sizes: list[int]) -> dict:
    """Share of photos PIL could decode at half size (Image.draft) for a crop size: every crop the photo serves at
    least twice that size both ways (else it is upscaled from fewer pixels). FKD: all R stored crops, as training
    must decode as generation did; single-crop training: its one crop."""
    sides = []  # [photos, R]: the shorter side of each stored crop
    for row, data in enumerate(photos):
        width, height = Image.open(io.BytesIO(data)).size
        sides.append(
            crops_to_pixels(sample_crops(height, width, stored, crop_rng(0, row))[0], height, width)[:, 2:].min(1)
        )
    fit = {size: np.stack(sides) >= 2 * size for size in sizes}
    return {str(size): {"fkd": float(ok.all(1).mean()), "single": float(ok[:, 0].mean())} for size, ok in fit.items()}


def derive(costs: dict, decode: dict, args) -> dict:
    """Per method: CPU-s per 1k crops (all, and of it the targets), D and C of its ops, the bound n / T = n / (D + n C)
    of its layout (n crops per decode) in crops per CPU-second, its share of that bound (targets left out: the
    bound has none) and the cores that feed one A100; ``fkd_device`` is the bound alone (no loader measured). A
    method whose ops are not measured apart (FFCV's) has no D, C, bound or share (None)."""
    out = {}
    for method, (value, targets, photo) in costs.items():
        n, op = layout(method, args)
        value = photo / n if method == "fkd_device" else value
        row = {
            "cpu_s_per_1k_crops": value,
            "targets_cpu_s_per_1k_crops": targets,
            "crops_per_decode": n,
            "ops": op,
            "decode_ms": None,
            "crop_ms": None,
            "bound_crops_per_cpu_s": None,
            "share_of_bound": None,
            "a100_cores": A100_CROPS_PER_S * value / 1e3,
        }
        if photo is not None:
            d = decode[DECODER.get(op, op)]
            row.update(
                decode_ms=d,
                crop_ms=(photo - d) / n,
                bound_crops_per_cpu_s=1e3 * n / photo,
                share_of_bound=photo / n / (value - targets),
            )
        out[method] = row
    return out
