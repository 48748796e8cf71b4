"""The input pipeline's CPU cost per training crop, where FKD's saving matters: machines whose GPUs wait on the CPUs.

    python -m benchmarks pipeline                     # about 2 minutes on 2 cores; --publish: into RESULTS.md
    python -m benchmarks pipeline --device cuda       # the device-crop op on the GPU

Process CPU time, one thread, no workers, no model, of reading the encoded bytes (an Arrow take), decoding, cropping,
resizing, flipping, collating uint8 batches and building the targets: plain (torchvision's ImageFolder pipeline: PIL
decode, ``RandomResizedCrop`` + ``RandomHorizontalFlip`` on the PIL image); plain_fast (one crop per decode,
``decode_pixels`` + the ``tensor`` replay); relabel / relabel_pil (those crops + ReLabel's 15 x 15 top-5 map targets);
fkd / fkd_pil (``FKDCropDataset``: m of R stored crops per decode, a label set of replay ``tensor``, the default, or
``pil``); fkd_spread (``SpreadCropDataset``); fkd_device (a bound: crops resized on --device by ``device_crops``);
generation / generation_pil (per stored crop: key, decode, R crops at 224 px bicubic, a timm teacher's input).
Photos: --photos train photos of --dataset re-encoded at 500x375, JPEG q90, as train_throughput does; each figure is
the best of --rounds interleaved rounds. Derived: CPU cores to feed one A100 at 2,470 crops/s (NVIDIA's ResNet-50 AMP
reference) and the bound n / (D + n C) crops per CPU-second of n crops per decode (D: decode ms, C: crop ms, of the
method's ops). Teacher rates on one A100 (AMP, 224 px: efficientnet-lite0 3,000, ResNet-50 2,500 crops/s) are
assumed. Writes benchmarks/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import os
import time
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms import functional as TF

from fkd_hf.labels.crops import DEFAULT_RATIO, DEFAULT_SCALE, crop_rng, crops_to_pixels, replay_crops, sample_crops
from fkd_hf.labels.decode import decode_for_replay, decode_pixels, decoded_size
from fkd_hf.labels.format import LabelSetMetadata, label_features, rows_to_table
from fkd_hf.labels.images import decode_image, image_bytes, image_key, load_images
from fkd_hf.labels.kinds import reconstruct, resolve_k
from fkd_hf.training import FKDCropDataset, SpreadCropDataset, collate_crops

from ._report import BENCH_DIR, RESULTS_DIR, machine_info, publish, write_json
from .relabel import relabel_targets


DEFAULT_DATA = BENCH_DIR.parent.parent / "shared" / "data" / "imagenette-mini"
A100_CROPS_PER_S = 2470  # NVIDIA's ResNet-50 training reference, one A100-80GB, AMP
TEACHER_CROPS_PER_S = {"efficientnet-lite0": 3000, "resnet50": 2500}  # assumed: one A100, 224 px, AMP
PHOTO_SIZE, TEACHER = (500, 375), (224, "bicubic")  # ImageNet's typical photo; a timm teacher's input and resize
MAP_SIZE, MAP_K = 15, 5  # ReLabel's released ImageNet maps
KIND = "marginal_smoothing"  # generation's default kind
# method -> (crops per decode: "m", "1" or "R"; its ops, which give D and C)
LAYOUT = {"plain": ("1", "torchvision"), "plain_fast": ("1", "tensor"), "relabel": ("1", "tensor"),
          "relabel_pil": ("1", "torchvision"), "fkd": ("m", "tensor"), "fkd_pil": ("m", "pil"),
          "fkd_spread": ("m", "tensor"), "fkd_device": ("m", "device"), "generation": ("R", "tensor"),
          "generation_pil": ("R", "pil")}  # fmt: skip
DECODER = {"device": "tensor"}  # ops -> D's decoder, where not the ops' own name


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=f"imagefolder:{DEFAULT_DATA}", help="Photos (their train split).")
    parser.add_argument("--photos", type=int, default=256, help="Photos re-encoded and cycled through.")
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


def reencoded_photos(dataset: str, count: int, size: tuple[int, int]) -> list[bytes]:
    """``count`` random train photos of ``dataset`` resized to ``size`` (W, H) and re-encoded as JPEG quality 90."""
    source = load_images(dataset, split="train")
    rows = source.dataset.shuffle(seed=0).select(range(min(count, source.num_rows)))
    photos = []
    for value in rows[source.image_column]:
        buffer = io.BytesIO()
        decode_image(image_bytes(value)).resize(size, Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
        photos.append(buffer.getvalue())
    return photos


def training_rows(photos: list[bytes], stored: int, classes: int):
    """(joined FKD rows of ``photos``, their LabelSetMetadata, ReLabel maps): R crops per photo sampled as generation
    samples them, random top-k labels and maps; the metadata's replay is the default (tensor)."""
    rng, n, k = np.random.default_rng(0), len(photos), resolve_k(KIND, None, classes)
    crops, flips = zip(*(sample_crops(*Image.open(io.BytesIO(data)).size[::-1], stored, crop_rng(0, row))
                         for row, data in enumerate(photos)))  # fmt: skip
    values = -np.sort(-rng.random((n, stored, k)), axis=-1) / k
    labels = {"image_key": [image_key(data) for data in photos], "crops": np.stack(crops), "flips": np.stack(flips),
              "topk_indices": rng.integers(0, classes, (n, stored, k)), "topk_values": values}  # fmt: skip
    images = datasets.Dataset.from_dict(
        {"image": [{"bytes": data, "path": None} for data in photos], "label": rng.integers(0, classes, n).tolist()},
        features=datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")}),
    )
    table = rows_to_table(labels, label_features(stored, k, classes))
    rows = datasets.concatenate_datasets([images, datasets.Dataset(table)], axis=1)
    metadata = LabelSetMetadata(
        kind=KIND, k=k, num_classes=classes, class_names=[str(i) for i in range(classes)], temperature=1.0,
        stored_crops=stored, seed=0, crop_scale=list(DEFAULT_SCALE), crop_ratio=list(DEFAULT_RATIO), teacher="random",
        teacher_revision=None, teacher_library="timm", teacher_input_size=[224, 224], teacher_mean=[0.5] * 3,
        teacher_std=[0.5] * 3, teacher_interpolation="bicubic", teacher_class_indices=None, precision="fp32",
        dataset="photos", dataset_config=None, dataset_split="train", dataset_revision=None, image_column="image",
        label_column="label", num_rows=n)  # fmt: skip
    maps = (rng.integers(0, classes, (n, MAP_SIZE, MAP_SIZE, MAP_K)), rng.normal(size=(n, MAP_SIZE, MAP_SIZE, MAP_K)))
    return rows, metadata, (torch.from_numpy(maps[0]), torch.from_numpy(maps[1]).float())


def torchvision_crop(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, tuple[float, ...]]:
    """plain's crop of a PIL image: RandomResizedCrop + RandomHorizontalFlip (the calls of their ``forward``)."""
    top, left, h, w = RandomResizedCrop.get_params(image, list(DEFAULT_SCALE), list(DEFAULT_RATIO))
    out = TF.resized_crop(image, top, left, h, w, list(size), antialias=True)
    if torch.rand(1) < 0.5:
        out = TF.hflip(out)
    return np.array(out), (top / image.height, left / image.width, h / image.height, w / image.width)


class SingleCrops(torch.utils.data.Dataset):
    """Single-crop training samples (one fresh crop per decoded photo) with ``ops`` "torchvision" or "tensor"; with
    ``maps``, the photo's ReLabel map and the crop's box (fractions of the photo)."""

    def __init__(self, rows: datasets.Dataset, size: tuple[int, int], ops: str, maps=None):
        self.images, self.labels = rows.select_columns(["image"]).with_format("arrow"), np.asarray(rows["label"])
        self.size, self.ops, self.maps, self.rng = size, ops, maps, np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices) -> list[dict]:
        samples = []
        for i, value in zip(indices, self.images[list(indices)].column("image").to_pylist()):
            data = image_bytes(value)
            if self.ops == "torchvision":
                pixels, box = torchvision_crop(DECODERS["torchvision"](data), self.size)
            else:  # decode_pixels, one RandomResizedCrop box + flip, the tensor replay
                image = decode_pixels(data)
                crops, flips = sample_crops(*decoded_size(image), 1, self.rng)
                pixel_box = crops_to_pixels(crops, *decoded_size(image))
                pixels, box = replay_crops(image, pixel_box, flips, self.size, "bilinear", "tensor")[0], crops[0]
            sample = {"pixel_values": torch.from_numpy(pixels), "labels": int(self.labels[i])}
            if self.maps is not None:
                sample.update(boxes=torch.tensor(box, dtype=torch.float32), map_indices=self.maps[0][i],
                              map_values=self.maps[1][i])  # fmt: skip
            samples.append(sample)
        return samples


def device_crops(images: list[torch.Tensor], boxes: list[np.ndarray], flips: list[np.ndarray], size: tuple[int, int],
                 device: str | torch.device) -> torch.Tensor:  # fmt: skip
    """Decoded uint8 ``[3, H, W]`` photos cropped at pixel ``boxes`` and resized to ``size`` on ``device`` in one
    batch (float antialiased bilinear, rounded): uint8 ``[N, 3, h, w]``, photo-major, within a level of the
    ``tensor`` replay. The CPU only decodes and launches (asynchronously: the caller synchronises)."""
    out = []
    for image, image_boxes, image_flips in zip(images, boxes, flips):
        x = image.to(device, non_blocking=True).unsqueeze(0).float()
        for (top, left, h, w), flip in zip(np.asarray(image_boxes).tolist(), np.asarray(image_flips).tolist()):
            crop = F.interpolate(x[..., top : top + h, left : left + w], size=size, mode="bilinear", antialias=True)
            out.append(crop.flip(-1) if flip else crop)
    return torch.cat(out).round_().clamp_(0, 255).to(torch.uint8)


def forever(loader: torch.utils.data.DataLoader):
    """The loader's batches, pass after pass (each pass announced to a pass-aware dataset)."""
    if len(loader) == 0:
        raise ValueError(f"{len(loader.dataset)} photos make no full batch of {loader.batch_size}: give more --photos.")
    for pass_index in itertools.count():
        if hasattr(loader.dataset, "set_pass"):
            loader.dataset.set_pass(pass_index)
        yield from loader


def training_arms(rows, metadata: LabelSetMetadata, maps, size: tuple[int, int], args) -> dict:
    """method -> (its batches, its target builder or None, batches per timed unit) at crop ``size``."""
    m, classes, images = args.num_crops, metadata.num_classes, args.batch_crops // args.num_crops

    def loader(dataset, batch_size, shuffle=True):
        """(batches, batches per timed unit: one, or a whole pass for an ordered layout whose cost varies by step)."""
        batches = torch.utils.data.DataLoader(dataset, batch_size, shuffle, collate_fn=collate_crops, drop_last=True)
        return forever(batches), 1 if shuffle else len(batches)

    def relabel(batch):
        crop_image = torch.arange(len(batch["boxes"]))
        return relabel_targets(batch["map_indices"], batch["map_values"], crop_image, batch["boxes"], classes)

    def fkd(batch):
        return reconstruct(batch["topk_indices"], batch["topk_values"], metadata.kind, classes)

    arms = {
        "plain": (*loader(SingleCrops(rows, size, "torchvision"), args.batch_crops), None),
        "plain_fast": (*loader(SingleCrops(rows, size, "tensor"), args.batch_crops), None),
        "relabel": (*loader(SingleCrops(rows, size, "tensor", maps), args.batch_crops), relabel),
        "relabel_pil": (*loader(SingleCrops(rows, size, "torchvision", maps), args.batch_crops), relabel),
        "fkd": (*loader(FKDCropDataset(rows, metadata, m, size), images), fkd),
        "fkd_pil": (*loader(FKDCropDataset(rows, dataclasses.replace(metadata, replay="pil"), m, size), images), fkd),
    }
    spread = SpreadCropDataset(rows, metadata, m, size, batch_size=images)
    arms["fkd_spread"] = (*loader(spread, images, shuffle=False), fkd)
    return arms


def generation_batches(photos: list[bytes], stored: int, replay: str, batch_crops: int):
    """Generation's CPU side, batch by batch: per photo its key, decode, R sampled crops replayed at the teacher's
    size; per batch the teacher's uint8 input."""
    row, (size, interpolation) = 0, ((TEACHER[0], TEACHER[0]), TEACHER[1])
    while True:
        pixels = []
        for _ in range(max(1, batch_crops // stored)):
            data = photos[row % len(photos)]
            image_key(data)
            image = decode_for_replay(data, replay)
            height, width = decoded_size(image)
            crops, flips = sample_crops(height, width, stored, crop_rng(0, row))
            pixels.append(replay_crops(image, crops_to_pixels(crops, height, width), flips, size, interpolation, replay))
            row += 1
        yield {"pixel_values": torch.from_numpy(np.concatenate(pixels)).permute(0, 3, 1, 2)}


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


DECODERS = {"pil": decode_image, "tensor": decode_pixels, "pil_draft_half": draft_decode,
            "torchvision": lambda data: Image.open(io.BytesIO(data)).convert("RGB")}  # ImageFolder's decoding
CROPS = {  # ops -> (decoded photo, pixel boxes, flips, size, interpolation, device) -> its crops
    "pil": lambda image, boxes, flips, size, mode, device: replay_crops(image, boxes, flips, size, mode, "pil"),
    "tensor": lambda image, boxes, flips, size, mode, device: replay_crops(image, boxes, flips, size, mode, "tensor"),
    "torchvision": lambda image, boxes, flips, size, mode, device: [torchvision_crop(image, size) for _ in boxes],
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


def measure(photos: list[bytes], arms: dict, args) -> tuple[dict, dict]:
    """Best-of-rounds D per decoder and, per arm group and method, ``(CPU ms per crop, of it targets, T)``: each
    arm timed over >= --crops crops, right after it T of its ops over as many photos, so both see the same load."""
    boxes = [sample_crops(*Image.open(io.BytesIO(data)).size[::-1], args.stored_crops, crop_rng(0, row))
             for row, data in enumerate(photos)]  # fmt: skip
    for arm in (arm for group in arms.values() for arm in group.values() if arm is not None):
        run(arm, 1)  # warm-up: one unit (first batches, kernels, allocator)
    decode, costs = {}, {}
    for _ in range(args.rounds):  # interleaved, so that load from elsewhere hits every figure alike
        for name, fn in DECODERS.items():
            decode[name] = min(decode.get(name, float("inf")), _ms(fn, photos))
        for (size, mode), group in arms.items():
            for name, arm in group.items():
                n, op = layout(name, args)
                cost = (0.0, 0.0) if arm is None else run(arm, args.crops)
                t = photo_ms(photos, boxes, op, size, mode, n, max(8, args.crops // n), args.device)
                old = costs.setdefault((size, mode), {}).get(name, (float("inf"), 0.0, float("inf")))
                costs[size, mode][name] = (*min(old[:2], cost), min(old[2], t))
    return decode, costs


def layout(method: str, args) -> tuple[int, str]:
    """(crops per decode, ops) of a method."""
    count, op = LAYOUT[method]
    return {"1": 1, "m": args.num_crops, "R": args.stored_crops}[count], op


def draft_shares(photos: list[bytes], stored: int, sizes: list[int]) -> dict:
    """Share of photos PIL could decode at half size (Image.draft) for a crop size: every crop the photo serves at
    least twice that size both ways (else it is upscaled from fewer pixels). FKD: all R stored crops, as training
    must decode as generation did; single-crop training: its one crop."""
    sides = []  # [photos, R]: the shorter side of each stored crop
    for row, data in enumerate(photos):
        width, height = Image.open(io.BytesIO(data)).size
        sides.append(crops_to_pixels(sample_crops(height, width, stored, crop_rng(0, row))[0], height, width)[:, 2:].min(1))
    fit = {size: np.stack(sides) >= 2 * size for size in sizes}
    return {str(size): {"fkd": float(ok.all(1).mean()), "single": float(ok[:, 0].mean())} for size, ok in fit.items()}


def derive(costs: dict, decode: dict, args) -> dict:
    """Per method: CPU-s per 1k crops (all, and of it the targets), D and C of its ops, the bound n / T = n / (D + n C)
    of its layout (n crops per decode) in crops per CPU-second, its share of that bound (targets left out: the
    bound has none) and the cores that feed one A100; ``fkd_device`` is the bound alone (no loader measured)."""
    out = {}
    for method, (value, targets, photo) in costs.items():
        n, op = layout(method, args)
        value, d = (photo / n if method == "fkd_device" else value), decode[DECODER.get(op, op)]
        out[method] = {"cpu_s_per_1k_crops": value, "targets_cpu_s_per_1k_crops": targets, "crops_per_decode": n,
                       "ops": op, "decode_ms": d, "crop_ms": (photo - d) / n,
                       "bound_crops_per_cpu_s": 1e3 * n / photo, "share_of_bound": photo / n / (value - targets),
                       "a100_cores": A100_CROPS_PER_S * value / 1e3}  # fmt: skip
    return out


def report(results: dict, args) -> str:
    """The markdown section: settings and load, D and C, one table per crop size and for generation, alternatives."""
    decode, load, machine = results["decode_ms_by_decoder"], results["load_average"], results["machine"]
    targets = results["methods"][str(results["crop_size"])]["fkd"]["targets_cpu_s_per_1k_crops"]
    lines = [f"{results['photos']} photos at 500x375 (JPEG q90); one thread, process CPU time, best of {args.rounds} "
             f"rounds of >= {args.crops} crops; load average {load['start']:.1f} at the start, {load['end']:.1f} at the "
             f"end ({machine['cores']} cores, {machine['cpu']}, torch {machine['versions']['torch']}); m = "
             f"{args.num_crops} of R = {args.stored_crops} stored crops, {args.classes} classes; device ops on "
             f"{args.device}.", ""]  # fmt: skip
    tables = {f"{size} px crops": rows for size, rows in results["methods"].items()}
    for title, rows in {**tables, "generation's CPU side per stored crop, 224 px bicubic": results["generation"]}.items():
        lines += [f"**{title}**", "", "| method | crops per decode (n) | ops | CPU-s per 1k crops | of it targets | D ms "
                  "| C ms | bound n / (D + n C), crops per CPU-s | share of the bound | cores for 2,470 crops/s (one A100) |",
                  "|" + "---|" * 10]  # fmt: skip
        lines += [f"| {name} | {r['crops_per_decode']} | {r['ops']} | {r['cpu_s_per_1k_crops']:.3f} | "
                  f"{r['targets_cpu_s_per_1k_crops']:.3f} | {r['decode_ms']:.3f} | {r['crop_ms']:.3f} | "
                  f"{r['bound_crops_per_cpu_s']:.0f} | {r['share_of_bound']:.0%} | {r['a100_cores']:.2f} |"
                  for name, r in rows.items()] + [""]  # fmt: skip
    lines += [f"Cores to feed one A100 teacher, {name} at {rate} crops/s (assumed): " + ", ".join(
        f"{method} {rate * r['cpu_s_per_1k_crops'] / 1e3:.2f}" for method, r in results["generation"].items()) + "."
        for name, rate in TEACHER_CROPS_PER_S.items()]  # fmt: skip
    lines += ["", f"PIL half-size decoding (Image.draft): {decode['pil_draft_half']:.3f} ms per photo (full: "
              f"{decode['pil']:.3f}), allowed where every crop is >= 2x the output both ways: " + "; ".join(
        f"{size} px: {d['fkd']:.1%} of photos for FKD (all R crops), {d['single']:.1%} for one crop"
        for size, d in results["draft"].items()) + ".", f"FKD's label reconstruction at {args.classes} classes on the "
        f"CPU: {targets:.4f} ms per crop, {targets * A100_CROPS_PER_S / 1e3:.2%} of an A100's time per crop."]  # fmt: skip
    c = {name: r["cpu_s_per_1k_crops"] for name, r in results["methods"][str(results["crop_size"])].items()}
    share = {name: r["share_of_bound"] for name, r in results["methods"][str(results["crop_size"])].items()}
    lines += [f"Targets at {results['crop_size']} px: plain / fkd {c['plain'] / c['fkd']:.2f}x (>= 3x; plain / fkd_pil "
              f"{c['plain'] / c['fkd_pil']:.2f}x); relabel / fkd {c['relabel'] / c['fkd']:.2f}x and relabel_pil / "
              f"fkd_pil {c['relabel_pil'] / c['fkd_pil']:.2f}x (>= 1.2x); fkd at {share['fkd']:.0%} and fkd_pil at "
              f"{share['fkd_pil']:.0%} of their bounds (>= 85%)."]  # fmt: skip
    return "\n".join(lines + [f"Note: {note}" for note in results["notes"]]) + "\n"


def main(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    start_load, sizes = os.getloadavg()[0], [int(size) for size in args.sizes.split(",")]
    photos = reencoded_photos(args.dataset, args.photos, PHOTO_SIZE)
    rows, metadata, maps = training_rows(photos, args.stored_crops, args.classes)
    arms = {(size, "bilinear"): training_arms(rows, metadata, maps, (size, size), args) | {"fkd_device": None}
            for size in sizes}  # fmt: skip
    arms[TEACHER] = {f"generation{'_pil' * (replay == 'pil')}": (generation_batches(
        photos, args.stored_crops, replay, args.batch_crops), 1, None) for replay in ("tensor", "pil")}  # fmt: skip
    decode, costs = measure(photos, arms, args)
    methods = {str(size): derive(costs[size, "bilinear"], decode, args) for size in sizes}
    gen, headline = derive(costs[TEACHER], decode, args), methods[str(sizes[0])]
    notes = [f"fkd_device: a bound from D and the CPU time of the device op on {args.device}" + (
        " (on a CPU the whole float op, not a GPU's cost)." if args.device == "cpu" else ".")]  # fmt: skip
    cost = {name: None for name in ("plain", "plain_fast", "relabel", "fkd", "fkd_spread")}
    cost.update({name: r["cpu_s_per_1k_crops"] for name, r in {**headline, **gen}.items()})
    results = {
        "cpu_s_per_1k_crops": cost, "crop_size": sizes[0], "decode_ms": headline["fkd"]["decode_ms"],
        "crop_ms": headline["fkd"]["crop_ms"], "decode_ms_by_decoder": decode, "methods": methods,
        "generation": gen, "a100_crops_per_s": A100_CROPS_PER_S, "teacher_crops_per_s_assumed": TEACHER_CROPS_PER_S,
        "draft": draft_shares(photos, args.stored_crops, sizes), "photos": len(photos), "notes": notes,
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "publish")},
        "load_average": {"start": start_load, "end": os.getloadavg()[0]}, "machine": machine_info(),
    }  # fmt: skip
    text = report(results, args)
    print(text)
    write_json(Path(args.output), results)
    if args.publish:
        publish("pipeline", text)
    return results
