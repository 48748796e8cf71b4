"""Generation throughput against the teacher's bare forward pass, and label storage per crop.

    python -m benchmarks.generate_throughput --images 96 --num-crops 8 --batch-size 64

Measured in one run, on the same machine, teacher, batch size, resolution and precision:
1. bare: the teacher's batched forward pass alone (``fkd_hf.models.TeacherRunner``, as ``generate`` runs it:
   normalisation and the teacher) on random uint8 crops already in memory (crops/s);
2. generate: `fkd_hf.generate` end to end on real photos: reading, decoding, sampling and replaying crops,
   the teacher, quantization and parquet writing (crops/s);
and the ratio generate / bare (the target is at least 0.9). Storage: label bytes per crop before compression
(Arrow buffers) and on disk (zstd parquet) for several k (every top-k kind stores the same columns), each a label
set cut from one ``--kind full`` generation and written by ``fkd_hf.labels.write_label_set``.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from fkd_hf import GenerateConfig, generate, load_teacher
from fkd_hf.labels import read_metadata
from fkd_hf.labels.format import LABEL_COLUMNS, shard_path
from fkd_hf.labels.images import load_images
from fkd_hf.models import TeacherRunner

from .compare.labels import derive_label_set, image_keys

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "imagenette-mini"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=f"imagefolder:{DEFAULT_DATA}")
    parser.add_argument("--teacher", default="efficientnet-lite0")
    parser.add_argument("--images", type=int, default=96, help="Source images to label.")
    parser.add_argument("--num-crops", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64, help="Crops per teacher forward pass.")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    return parser


def bare_forward_crops_per_s(teacher_name: str, batch_size: int, precision: str, batches: int) -> float:
    """Crops/s of the teacher runner on one batch of random uint8 crops, ``batches`` times after a warm-up."""
    teacher = load_teacher(teacher_name)
    runner = TeacherRunner(teacher, precision)
    pixels = torch.randint(0, 256, (batch_size, 3, *teacher.input_size), dtype=torch.uint8)
    runner.outputs(pixels)  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        runner.outputs(pixels)
    return batches * batch_size / (time.perf_counter() - start)


def storage_rows(labels_dir: Path, images, work: Path) -> list[tuple[int, float, float]]:
    """(k, label bytes per crop before compression, on disk) of label sets cut from one full-distribution set of
    ``images`` (:func:`benchmarks.compare.labels.derive_label_set`: what ``generate --kind K --k k`` writes)."""
    meta, keys = read_metadata(labels_dir), image_keys(images)
    rows = []
    for k in sorted({1, min(5, meta.num_classes), meta.num_classes}):
        kind = "full" if k == meta.num_classes else "marginal_smoothing"
        derived = derive_label_set(labels_dir, work / f"k{k}", images, keys, kind, k, meta.stored_crops)
        shard = pq.read_table(shard_path(derived, 0))
        raw = sum(shard.column(name).nbytes for name in LABEL_COLUMNS[1:]) / (len(keys) * meta.stored_crops)
        rows.append((k, raw, read_metadata(derived).bytes_per_crop))
    return rows


def main(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = GenerateConfig(
            dataset=args.dataset,
            output_dir=str(work / "labels"),
            teacher=args.teacher,
            class_map="auto",
            stored_crops=args.num_crops,
            batch_size=args.batch_size,
            max_rows=args.images,
            num_workers=args.num_workers,
            precision=args.precision,
            num_shards=1,
        )
        generate(GenerateConfig(**{**vars(config), "output_dir": str(work / "warmup"), "max_rows": 8}))
        summary = generate(config)
        generate_rate = summary.crops / summary.seconds
        batches = max(2, summary.crops // args.batch_size)
        bare_rate = bare_forward_crops_per_s(args.teacher, args.batch_size, args.precision, batches)
        full = GenerateConfig(**{**vars(config), "output_dir": str(work / "full"), "kind": "full", "stored_crops": 4})
        generate(full)
        storage = storage_rows(work / "full", load_images(args.dataset, max_rows=args.images), work)
    lines = [
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
        f"teacher {args.teacher}, batch {args.batch_size} crops, {args.precision}, R = {args.num_crops}, "
        f"{args.images} images.",
        "",
        "| measure | crops/s |",
        "|---|---|",
        f"| teacher forward alone | {bare_rate:.1f} |",
        f"| `fkd-hf generate` end to end | {generate_rate:.1f} |",
        f"| ratio generate / bare | {generate_rate / bare_rate:.2f} |",
        "",
        f"Label storage ({args.images} images x 4 crops, {storage[-1][0]} classes; one shard):",
        "",
        "| k | bytes per crop before compression | on disk (zstd parquet) |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {raw:.1f} | {disk:.1f} |" for k, raw, disk in storage]
    report = "\n".join(lines)
    print(report)
    return report


if __name__ == "__main__":
    main(make_parser().parse_args())
