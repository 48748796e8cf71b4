"""Training throughput: FKD against plain supervised training, on the same student, data and crops per step.

    python -m benchmarks.train_throughput
    python -m benchmarks.train_throughput --photos original --label-set outputs/labels/imagenette-lite0-r8

Measured in one run, on the same machine, student, input size, optimizer, crops per step and loader workers:
1. plain: decode every image, one RandomResizedCrop + flip each (the label set's replay ops), hard labels,
   cross-entropy;
2. FKD: decode every image once, replay ``num_crops`` of its stored crops, reconstruct the soft labels on the
   device, soft cross-entropy (fkd_hf's loader, reconstruction and loss);
3. the two loaders alone, without the model: wall time with the workers, and CPU time read in this process (which
   other jobs on a shared machine disturb far less);
4. reconstruction + loss (forward and backward) as a share of the FKD step, at the label set's class count and at
   ImageNet's 1,000 classes.
Both training loops normalise uint8 crops on the device, as FKDTrainer does. Each measurement runs on the photos
of --dataset as they are (imagenette-mini: 224 px, about 12 KB) and re-encoded at ImageNet's typical 500x375 in a
temporary folder, because decoding cost, which FKD shares among crops, grows with the photo. Without
``--label-set`` the labels come from a random tiny teacher (label values do not change throughput). Writes the
markdown tables to benchmarks/results/train_throughput.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fkd_hf import GenerateConfig, create_student, generate, load_label_set
from fkd_hf.labels import join_labels
from fkd_hf.labels.crops import crops_to_pixels, replay_crops, sample_crops
from fkd_hf.labels.decode import decode_for_replay, decoded_size
from fkd_hf.labels.images import decode_image, image_bytes, load_images
from fkd_hf.labels.kinds import reconstruct
from fkd_hf.models.pixels import normalize
from fkd_hf.models.students import student_data_config
from fkd_hf.training import FKDCropDataset
from fkd_hf.training.data import collate_crops
from fkd_hf.training.loss import soft_cross_entropy

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "imagenette-mini"
RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.md"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=f"imagefolder:{DEFAULT_DATA}")
    parser.add_argument("--label-set", default=None, help="Label set of --dataset's train split (default: made here).")
    parser.add_argument(
        "--photos",
        default="original,500x375",
        help="Comma list: 'original' reads --dataset in place; WxH re-encodes its photos at that size (JPEG q90) in a "
        "temporary folder first (500x375 is typical of ImageNet, whose JPEGs take several times longer to decode).",
    )
    parser.add_argument("--images", type=int, default=1024, help="Train rows used.")
    parser.add_argument("--student", default="mobilenetv3_small_100")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--num-crops", type=int, default=4)
    parser.add_argument("--batch-images", type=int, default=32, help="FKD images per step (x num_crops crops).")
    parser.add_argument("--steps", type=int, default=8, help="Timed steps per round of each measurement.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds; each measurement keeps its best.")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers.")
    parser.add_argument("--output", default=str(RESULTS))
    return parser


class SingleCropDataset(torch.utils.data.Dataset):
    """Plain training data: each sample decodes its image and takes one fresh RandomResizedCrop + flip, with the ops
    of replay method ``replay`` (the label set's, so that both loaders decode and crop alike)."""

    def __init__(self, rows, size: tuple[int, int], interpolation: str, replay: str, seed: int = 0):
        self.rows = rows.select_columns(["image", "label"])
        self.size, self.interpolation, self.replay, self.seed = size, interpolation, replay, seed
        self.draws = itertools.count()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices):
        batch = self.rows[list(indices)]
        rng = np.random.default_rng([self.seed, os.getpid(), next(self.draws)])
        samples = []
        for value, label in zip(batch["image"], batch["label"]):
            image = decode_for_replay(image_bytes(value), self.replay)
            height, width = decoded_size(image)
            crops, flips = sample_crops(height, width, 1, rng)
            boxes = crops_to_pixels(crops, height, width)
            pixels = replay_crops(image, boxes, flips, self.size, self.interpolation, self.replay)[0]
            samples.append({"pixel_values": torch.from_numpy(pixels), "labels": label})
        return samples


def _loader(dataset, batch_size: int, workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collate_crops,
        num_workers=workers,
        persistent_workers=workers > 0,
        drop_last=True,
    )


def _forever(loader):
    while True:
        yield from loader


def crops_per_second(batches, step, steps: int, skip: int = 0) -> float:
    """Crops per second of ``step`` (or of reading alone when ``step`` is None) over the next ``steps`` batches,
    after dropping ``skip`` batches (those the workers prefetched while another measurement ran)."""
    for _ in range(skip):
        next(batches)
    crops, start = 0, time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        if step is not None:
            step(batch)
        crops += len(batch["pixel_values"])
    return crops / (time.perf_counter() - start)


def crops_per_cpu_second(dataset, batch_size: int, steps: int) -> float:
    """Crops per second of this process's CPU time when it reads ``dataset`` itself (no workers, one thread):
    the loader's cost, which other jobs on a shared machine do not change the way they change wall time."""
    batches = _forever(_loader(dataset, batch_size, 0))
    next(batches)
    crops, start = 0, time.process_time()
    for _ in range(steps):
        crops += len(next(batches)["pixel_values"])
    return crops / (time.process_time() - start)


def _photos(args, size: str, work: Path) -> str:
    """``--images`` random train photos of ``--dataset`` re-encoded at ``size`` (WxH, JPEG quality 90)."""
    width, height = (int(v) for v in size.split("x"))
    source = load_images(args.dataset, split="train")
    for i, row in enumerate(source.dataset.shuffle(seed=0).select(range(args.images))):
        folder = work / "photos" / "train" / source.label_names[row["label"]]
        folder.mkdir(parents=True, exist_ok=True)
        image = decode_image(image_bytes(row["image"])).resize((width, height), Image.Resampling.BICUBIC)
        image.save(folder / f"{i:05d}.jpg", quality=90)
    return f"imagefolder:{work / 'photos'}"


def _label_set(dataset: str, rows: int, work: Path) -> Path:
    """A label set for the first ``rows`` rows, from a random tiny teacher with the dataset's classes."""
    import timm

    classes = load_images(dataset, split="train").label_names
    teacher = timm.create_model("test_efficientnet", num_classes=len(classes))
    folder = work / "random-test_efficientnet"
    timm.models.save_for_hf(teacher, folder, model_config={"label_names": classes}, safe_serialization=True)
    output = work / "labels"
    generate(
        GenerateConfig(
            dataset=dataset,
            output_dir=str(output),
            teacher=str(folder),
            input_size=64,
            stored_crops=8,
            max_rows=rows,
            num_workers=2,
            batch_size=256,
        )
    )
    return output


def loss_ms(indices: torch.Tensor, values: torch.Tensor, kind: str, num_classes: int, reps: int = 50) -> float:
    """Milliseconds of reconstruction + soft cross-entropy, forward and backward, for one batch of crops."""
    logits = torch.randn(len(indices), num_classes, requires_grad=True)
    start = time.perf_counter()
    for _ in range(reps):
        soft_cross_entropy(logits, reconstruct(indices, values, kind, num_classes)).backward()
    return (time.perf_counter() - start) / reps * 1e3


def measure(args: argparse.Namespace, dataset: str, label_set: Path) -> dict:
    """Every measurement of the module docstring on one dataset, interleaved; each keeps its best round."""
    torch.manual_seed(0)
    labels = load_label_set(label_set)
    meta = labels.metadata
    rows = join_labels(load_images(dataset, split="train"), labels, max_rows=args.images)
    model = create_student(args.student, meta.class_names)
    data = student_data_config(model, input_size=args.input_size)
    size, stats = data["input_size"], torch.tensor([data["mean"], data["std"]])
    fkd_set = FKDCropDataset(rows, meta, args.num_crops, size, "bilinear")
    plain_set = SingleCropDataset(rows, size, "bilinear", meta.replay)
    fkd_batches, plain_batches = args.batch_images, args.batch_images * args.num_crops
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def plain_step(batch):
        logits = model(pixel_values=normalize(batch["pixel_values"], *stats)).logits
        loss = F.cross_entropy(logits, batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def fkd_step(batch):
        logits = model(pixel_values=normalize(batch["pixel_values"], *stats)).logits
        targets = reconstruct(batch["topk_indices"], batch["topk_values"], meta.kind, meta.num_classes)
        loss = soft_cross_entropy(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    arms = {  # one loader (and worker pool) per measurement
        "plain": (_forever(_loader(plain_set, plain_batches, args.workers)), plain_step),
        "fkd": (_forever(_loader(fkd_set, fkd_batches, args.workers)), fkd_step),
        "plain_read": (_forever(_loader(plain_set, plain_batches, args.workers)), None),
        "fkd_read": (_forever(_loader(fkd_set, fkd_batches, args.workers)), None),
    }
    for batches, step in arms.values():  # warm-up: workers started, kernels and allocator primed
        crops_per_second(batches, step, 2)
    best = dict.fromkeys(arms, 0.0)
    for _ in range(args.rounds):  # interleaved, so that load from elsewhere hits every arm alike
        for name, (batches, step) in arms.items():
            best[name] = max(best[name], crops_per_second(batches, step, args.steps, skip=2 * args.workers))
    best["plain_cpu"] = crops_per_cpu_second(plain_set, plain_batches, args.steps)
    best["fkd_cpu"] = crops_per_cpu_second(fkd_set, fkd_batches, args.steps)
    batch = next(arms["fkd_read"][0])
    step_ms = len(batch["pixel_values"]) / best["fkd"] * 1e3
    k = batch["topk_indices"].shape[-1]
    random_k = torch.randint(0, 1000, (len(batch["topk_indices"]), k))
    return dict(
        best,
        meta=meta,
        size=size,
        step_ms=step_ms,
        loss_own=loss_ms(batch["topk_indices"], batch["topk_values"], meta.kind, meta.num_classes),
        loss_imagenet=loss_ms(random_k, batch["topk_values"], meta.kind, 1000),
    )


def _table(args: argparse.Namespace, photos: str, r: dict) -> list[str]:
    meta, n = r["meta"], args.num_crops
    return [
        f"### Photos: {photos}",
        "",
        f"R = {meta.stored_crops} stored crops ({meta.kind}, k = {meta.k}, {meta.num_classes} classes, teacher "
        f"{Path(meta.teacher).name}).",
        "",
        "| measure | crops/s | target |",
        "|---|---|---|",
        f"| plain training (decode + 1 RandomResizedCrop per image, hard labels) | {r['plain']:.1f} | |",
        f"| FKD training ({n} stored crops per decoded image, soft labels) | {r['fkd']:.1f} | "
        f"FKD / plain = {r['fkd'] / r['plain']:.2f} (>= 1) |",
        f"| single-crop loader alone, {args.workers} worker | {r['plain_read']:.1f} | |",
        f"| multi-crop loader alone (num_crops = {n}), {args.workers} worker | {r['fkd_read']:.1f} | "
        f"multi / single = {r['fkd_read'] / r['plain_read']:.2f} (>= 2) |",
        f"| single-crop loader, crops per CPU-second | {r['plain_cpu']:.1f} | |",
        f"| multi-crop loader, crops per CPU-second | {r['fkd_cpu']:.1f} | "
        f"multi / single = {r['fkd_cpu'] / r['plain_cpu']:.2f} (>= 2) |",
        f"| reconstruction + soft cross-entropy, fwd + bwd, {meta.num_classes} classes | "
        f"{r['loss_own']:.3f} ms per step | {r['loss_own'] / r['step_ms']:.2%} of the FKD step (< 3%) |",
        f"| the same at 1,000 classes (ImageNet-1k) | {r['loss_imagenet']:.3f} ms per step | "
        f"{r['loss_imagenet'] / r['step_ms']:.2%} of the FKD step (< 3%) |",
        "",
    ]


def main(args: argparse.Namespace) -> str:
    torch.set_num_threads(max(1, os.cpu_count() - args.workers))  # the model gets the cores the loader leaves
    load = os.getloadavg()[0]
    lines = []
    for photos in args.photos.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            dataset = args.dataset if photos == "original" else _photos(args, photos, work)
            if args.label_set and photos != "original":
                raise ValueError("--label-set labels the original photos; re-encoded ones need labels made here.")
            label_set = Path(args.label_set) if args.label_set else _label_set(dataset, args.images, work)
            result = measure(args, dataset, label_set)
        lines += _table(args, f"{photos} ({Path(args.dataset).name})", result)
    crops = args.batch_images * args.num_crops
    header = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
        f"{args.workers} loader worker(s), torch {torch.__version__}, load average {load:.1f} at the start "
        f"({os.getloadavg()[0]:.1f} at the end). Student {args.student} at {result['size'][0]} px (random init), "
        f"SGD; {crops} crops per step (FKD: {args.batch_images} images x {args.num_crops} crops; plain: {crops} "
        f"images x 1 crop); {args.images} training images; best of {args.rounds} interleaved rounds of "
        f"{args.steps} steps per measurement.",
        "",
    ]
    report = "\n".join(header + lines)
    print(report)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    return report


if __name__ == "__main__":
    main(make_parser().parse_args())
