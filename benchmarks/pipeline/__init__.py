"""The input pipeline's CPU cost per training crop, where FKD's saving matters: machines whose GPUs wait on the CPUs.

    python -m benchmarks pipeline                     # about 2 minutes on 2 cores; --publish: into RESULTS.md
    python -m benchmarks pipeline --device cuda       # the device-crop op on the GPU
    python -m benchmarks pipeline --photo-bytes as-is --dataset imagefolder:PHOTOS   # your photos as they are

Process CPU time, one thread, no workers, no model, of reading the encoded bytes (an Arrow take), decoding, cropping,
resizing, flipping, collating uint8 batches and building the targets: plain (torchvision's ImageFolder pipeline: PIL
decode, ``RandomResizedCrop`` + ``RandomHorizontalFlip`` on the PIL image); plain_fast (one crop per decode,
``decode_pixels`` + the ``tensor`` replay); relabel / relabel_pil (those crops + ReLabel's 15 x 15 top-5 map targets);
fkd / fkd_pil (``FKDCropDataset``: m of R stored crops per decode, a label set of replay ``tensor``, the default, or
``pil``); fkd_official (the same crops replayed as the official FKD loader does: PIL decode, torchvision's
``resized_crop`` of the PIL image per crop); fkd_spread (``SpreadCropDataset``); fkd_device (a bound: crops resized
on --device by ``device_crops``); ffcv (FFCV's ``RandomResizedCropRGBImageDecoder`` loader, one worker, on a .beton of
the same photos; runs where ``ffcv`` imports, else skipped with a note); generation / generation_pil (per stored
crop: key, decode, R crops at 224 px bicubic, a timm teacher's input). Photos: --photos train photos of --dataset,
re-encoded at 500x375, JPEG q90, as train_throughput does (--photo-bytes 500x375-q90, the default), or as they are
(--photo-bytes as-is); each figure is the best of --rounds interleaved rounds. Derived: CPU cores to feed one A100 at
2,470 crops/s (NVIDIA's ResNet-50 AMP reference) and the bound n / (D + n C) crops per CPU-second of n crops per
decode (D: decode ms, C: crop ms, of the method's ops). Teacher rates on one A100 (AMP, 224 px: efficientnet-lite0
3,000, ResNet-50 2,500 crops/s) are assumed. Writes --output (benchmarks/results/pipeline.json); --publish replaces
the RESULTS.md block named after that file (``pipeline``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from .._report import BENCH_DIR, RESULTS_DIR, machine_info, publish, write_json
from . import ffcv_arm
from .arms import generation_batches, training_arms
from .photos import describe, train_photos, training_rows
from .report import report
from .settings import A100_CROPS_PER_S, AS_IS, LAYOUT, REENCODED, TEACHER, TEACHER_CROPS_PER_S
from .timing import derive, draft_shares, measure

DEFAULT_DATA = BENCH_DIR.parent.parent / "shared" / "data" / "imagenette-mini"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=f"imagefolder:{DEFAULT_DATA}", help="Photos (their train split).")
    parser.add_argument("--photos", type=int, default=256, help="Photos drawn at random and cycled through.")
    parser.add_argument(
        "--photo-bytes",
        choices=(REENCODED, AS_IS),
        default=REENCODED,
        help="Re-encode the photos at 500x375, JPEG q90 (the default), or measure them as they are.",
    )
    parser.add_argument("--methods", default=",".join(LAYOUT), help="Comma list of the methods to measure.")
    parser.add_argument("--sizes", default="224,128", help="Comma list of training crop sizes (pixels).")
    parser.add_argument("--num-crops", type=int, default=4, help="m: FKD crops per decoded photo.")
    parser.add_argument("--stored-crops", type=int, default=8, help="R: crops stored (and generated) per photo.")
    parser.add_argument("--classes", type=int, default=1000, help="Classes of the labels (ImageNet-1k: 1,000).")
    parser.add_argument("--batch-crops", type=int, default=128, help="Crops per batch.")
    parser.add_argument("--crops", type=int, default=512, help="Timed crops per method and round.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds; each figure keeps its best.")
    parser.add_argument("--device", default="cpu", help="Where device_crops crops and resizes (cpu, cuda, ...).")
    parser.add_argument("--output", default=str(RESULTS_DIR / "pipeline.json"), help="Where the JSON results go.")
    parser.add_argument("--publish", action="store_true", help="Also update benchmarks/RESULTS.md.")
    return parser


def chosen_methods(args) -> list[str]:
    """--methods, checked against the known ones."""
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = sorted(set(methods) - set(LAYOUT))
    if unknown or not methods:
        raise SystemExit(f"--methods: unknown {', '.join(unknown) or 'empty list'}; choose from {', '.join(LAYOUT)}.")
    return methods


def build_arms(photos: list[bytes], sizes: list[int], methods: list[str], beton: Path, args) -> tuple[dict, list[str]]:
    """{(size, interpolation): {method: arm}} of the chosen methods, and notes (FFCV's, where it was left out)."""
    rows, metadata, maps = training_rows(photos, args.stored_crops, args.classes)
    notes, ffcv = [], "ffcv" in methods
    if ffcv and (why := ffcv_arm.missing()):
        notes.append(why)
        print(why)
        ffcv = False
    elif ffcv:
        reencoded = ffcv_arm.write_beton(photos, rows["label"], beton)
        notes.append(
            f"ffcv {ffcv_arm.version()}: the .beton holds the photos' own bytes"
            + (
                f", but {reencoded} of {len(photos)} that FFCV's decoder does not read (not RGB or greyscale JPEG) as "
                "FFCV re-encodes them (JPEG q90)."
                if reencoded
                else "."
            )
        )
    arms = {}
    for size in sizes:
        group = training_arms(rows, metadata, maps, (size, size), args) | {"fkd_device": None}
        if ffcv:
            group["ffcv"] = (*ffcv_arm.ffcv_batches(beton, (size, size), args.batch_crops, len(photos)), None)
        arms[size, "bilinear"] = {name: arm for name, arm in group.items() if name in methods}
    arms[TEACHER] = {
        name: (generation_batches(photos, args.stored_crops, replay, args.batch_crops), 1, None)
        for name, replay in (("generation", "tensor"), ("generation_pil", "pil"))
        if name in methods
    }
    return arms, notes


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    start_load, sizes, methods = os.getloadavg()[0], [int(size) for size in args.sizes.split(",")], chosen_methods(args)
    photos = train_photos(args.dataset, args.photos, args.photo_bytes)
    with tempfile.TemporaryDirectory(prefix="fkd-pipeline-") as folder:
        arms, notes = build_arms(photos, sizes, methods, Path(folder) / "photos.beton", args)
        decode, costs = measure(photos, arms, args)
    methods_by_size = {str(size): derive(costs.get((size, "bilinear"), {}), decode, args) for size in sizes}
    gen, headline = derive(costs.get(TEACHER, {}), decode, args), methods_by_size[str(sizes[0])]
    if "fkd_device" in methods:
        notes.append(
            f"fkd_device: a bound from D and the CPU time of the device op on {args.device}"
            + (" (on a CPU the whole float op, not a GPU's cost)." if args.device == "cpu" else ".")
        )
    cost = {name: None for name in ("plain", "plain_fast", "relabel", "fkd", "fkd_spread")}
    cost.update({name: r["cpu_s_per_1k_crops"] for name, r in {**headline, **gen}.items()})
    fkd = headline.get("fkd", {})
    results = {
        "cpu_s_per_1k_crops": cost,
        "crop_size": sizes[0],
        "decode_ms": fkd.get("decode_ms"),
        "crop_ms": fkd.get("crop_ms"),
        "decode_ms_by_decoder": decode,
        "methods": methods_by_size,
        "generation": gen,
        "a100_crops_per_s": A100_CROPS_PER_S,
        "teacher_crops_per_s_assumed": TEACHER_CROPS_PER_S,
        "draft": draft_shares(photos, args.stored_crops, sizes),
        "photos": len(photos),
        "photos_described": describe(photos, args.photo_bytes),
        "notes": notes,
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "publish")},
        "load_average": {"start": start_load, "end": os.getloadavg()[0]},
        "machine": machine_info(),
    }
    text = report(results, args)
    print(text)
    write_json(Path(args.output), results)
    if args.publish:
        publish(Path(args.output).stem, text)
    return results
