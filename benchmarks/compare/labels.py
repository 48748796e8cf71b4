"""The comparison's data and labels: the image subset, FKD label sets cut from one generation, ReLabel maps, and
what storing and expanding each costs."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from fkd_hf.generation import GenerateConfig, generate
from fkd_hf.hub import write_label_set_card
from fkd_hf.labels import load_label_set, read_metadata, write_label_set
from fkd_hf.labels.format import LABEL_COLUMNS, LabelSetMetadata, fixed_size_to_numpy
from fkd_hf.labels.images import ImageSource, image_bytes, image_key
from fkd_hf.labels.kinds import reconstruct, resolve_k
from fkd_hf.models.teachers import Teacher

from ..relabel import LabelMapsInfo, generate_label_maps, load_label_maps, relabel_targets
from .cost import cpu_seconds
from .settings import Settings

__all__ = [
    "PreparedLabels",
    "prepare_data",
    "image_keys",
    "derive_label_set",
    "label_bytes_per_image",
    "prepare_labels",
    "target_cost",
]

# (kind, k) of the storage table; k is capped at the class count
STORAGE_KINDS = [
    ("hard", 1),
    ("smoothing", 1),
    ("marginal_smoothing", 2),
    ("marginal_smoothing", 5),
    ("marginal_renorm", 5),
    ("full", None),
]


def prepare_data(settings: Settings, work: Path) -> str:
    """``imagefolder:`` spec of the data: the folder itself, or a class-balanced subset of symlinks (files are
    read in place, never copied)."""
    root = Path(settings.dataset)
    if settings.train_per_class is None and settings.val_per_class is None:
        return f"imagefolder:{root}"
    subset = work / "data"
    if subset.exists():
        shutil.rmtree(subset)
    for split, per_class in (("train", settings.train_per_class), ("val", settings.val_per_class)):
        for class_dir in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            files = sorted(p for p in class_dir.iterdir() if p.is_file())
            target = subset / split / class_dir.name
            target.mkdir(parents=True)
            for path in files[: per_class or len(files)]:
                (target / path.name).symlink_to(path.resolve())
    return f"imagefolder:{subset}"


def image_keys(images: ImageSource) -> list[str]:
    """The image key of every row of ``images``, in order."""
    column = images.image_column
    values = images.dataset.select_columns([column]).with_format("arrow")[column].to_pylist()
    return [image_key(image_bytes(value)) for value in values]


def derive_label_set(
    source: Path, output_dir: Path, images: ImageSource, keys: list[str], kind: str, k: int | None, num_crops: int
) -> Path:
    """A label set for ``images`` (rows matched by image_key) cut from ``source``: its first ``num_crops`` stored
    crops and first ``k`` classes, read as ``kind``; written with :func:`fkd_hf.labels.write_label_set`.

    Stored top-k lists are sorted and hold the teacher's probabilities whatever the kind, so at the same R the cut
    is exactly what ``fkd-hf generate --kind KIND --k K`` writes with the same seed. Fewer crops keep the first
    ``num_crops`` stored ones, each with its own flip and label (a direct run with a smaller R samples the same
    boxes but other flips)."""
    labels = load_label_set(source)
    meta = labels.metadata
    k = resolve_k(kind, k, meta.num_classes)
    if num_crops > meta.stored_crops or k > meta.k:
        raise ValueError(f"{source} stores R={meta.stored_crops}, k={meta.k}: cannot cut R={num_crops}, k={k}.")
    table = labels.dataset.select_columns(list(LABEL_COLUMNS)).with_format("arrow")[:]
    position = {key: i for i, key in enumerate(table.column("image_key").to_pylist())}
    missing = [key for key in keys if key not in position]
    if missing:
        raise ValueError(f"{len(missing)} training images are not in the label set {source}.")
    table = table.take(pa.array([position[key] for key in keys]))
    n, stored = len(keys), meta.stored_crops
    columns = {
        "image_key": keys,
        "crops": fixed_size_to_numpy(table.column("crops"), (n, stored, 4))[:, :num_crops],
        "flips": fixed_size_to_numpy(table.column("flips"), (n, stored))[:, :num_crops],
        "topk_indices": fixed_size_to_numpy(table.column("topk_indices"), (n, stored, meta.k))[:, :num_crops, :k],
        "topk_values": fixed_size_to_numpy(table.column("topk_values"), (n, stored, meta.k))[:, :num_crops, :k],
    }
    derived = dataclasses.replace(
        meta,
        kind=kind,
        k=k,
        stored_crops=num_crops,
        skipped_rows=[],
        dataset=images.spec,
        dataset_config=images.config,
        dataset_split=images.split,
        dataset_revision=images.revision,
        image_column=images.image_column,
        label_column=images.label_column,
    )
    if output_dir.exists():
        shutil.rmtree(output_dir)
    write_label_set(output_dir, derived, columns, card=write_label_set_card)
    return output_dir


def label_bytes_per_image(directory: Path) -> float:
    """Label bytes on disk per image of a label set."""
    meta = read_metadata(directory)
    return meta.bytes_per_crop * meta.stored_crops


@dataclasses.dataclass
class PreparedLabels:
    """Every label the runs use, and what making and storing them cost."""

    source: Path  # the --kind full generation (or --labels) every FKD label set is cut from
    source_meta: LabelSetMetadata
    main: Path  # the main FKD run's labels: --kind, --k, R = --stored-crops
    storage: list[dict]  # bytes per image of each kind/k at R = --stored-crops
    maps_dir: Path
    maps_info: LabelMapsInfo
    prep_seconds: dict  # fkd_seconds, relabel_seconds and their *_cpu_seconds; absent when reused
    vanilla: Path | None = None  # kind full, R = epochs: vanilla KD's targets (None: the source cannot give them)


def _storage_rows(
    prepared: PreparedLabels, images: ImageSource, keys: list[str], settings: Settings, work: Path
) -> list[dict]:
    meta, rows = prepared.source_meta, []
    for kind, k in STORAGE_KINDS:
        k = min(k or meta.num_classes, meta.num_classes)
        if k > meta.k or (kind == "full" and meta.k != meta.num_classes):
            continue  # the label set does not store enough classes for this kind
        path = derive_label_set(
            prepared.source, work / "labels" / f"storage_{kind}_{k}", images, keys, kind, k, settings.stored_crops
        )
        rows.append({"kind": kind, "k": k, "R": settings.stored_crops, "bytes_per_image": label_bytes_per_image(path)})
        shutil.rmtree(path)
    return rows


def prepare_labels(
    args: argparse.Namespace,
    settings: Settings,
    work: Path,
    spec: str,
    images: ImageSource,
    keys: list[str],
    teacher: Teacher,
    class_indices: list[int],
) -> PreparedLabels:
    """FKD labels (one ``--kind full`` generation, or ``--labels``) cut into the main run's and the storage table's,
    and ReLabel maps (made here, or ``--relabel-maps``)."""
    s, prep = settings, {}
    if args.labels:
        source = Path(args.labels)
    else:
        source, cpu = work / "labels" / "generated", sum(cpu_seconds())
        summary = generate(
            GenerateConfig(
                dataset=spec,
                output_dir=str(source),
                teacher=s.teacher,
                class_map="auto",
                stored_crops=s.stored_crops,
                kind="full",
                seed=s.seed,
                batch_size=64,
                replay=s.replay,
            )
        )
        if summary.seconds:  # 0: an earlier generation in the work dir was reused, its cost unknown
            prep["fkd_seconds"], prep["fkd_cpu_seconds"] = summary.seconds, sum(cpu_seconds()) - cpu
    main = derive_label_set(source, work / "labels" / "main", images, keys, s.kind, s.k, s.stored_crops)
    if args.relabel_maps:
        maps_dir = Path(args.relabel_maps)
        _, maps_info = load_label_maps(maps_dir)
    else:
        maps_dir, cpu = work / "relabel_maps", sum(cpu_seconds())
        maps_info = generate_label_maps(images, teacher, class_indices, maps_dir, s.relabel_size, s.relabel_k)
        prep["relabel_seconds"], prep["relabel_cpu_seconds"] = maps_info.seconds, sum(cpu_seconds()) - cpu
    prepared = PreparedLabels(source, read_metadata(source), main, [], maps_dir, maps_info, prep)
    prepared.storage = _storage_rows(prepared, images, keys, s, work)
    meta = prepared.source_meta
    if meta.k == meta.num_classes and meta.stored_crops >= s.epochs:  # every class of E crops: vanilla KD's targets
        prepared.vanilla = derive_label_set(
            source, work / "labels" / "vanilla_kd", images, keys, "full", None, s.epochs
        )
    print(
        f"[compare] labels ready: FKD {prep.get('fkd_seconds') or 'reused'} s, ReLabel "
        f"{prep.get('relabel_seconds') or 'reused'} s",
        flush=True,
    )
    return prepared


def _median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[1:]))


def target_cost(batch_crops: int, map_size: int, k: int, num_classes: int, reps: int = 20) -> dict:
    """Milliseconds to build one batch's targets from stored labels: ReLabel (dense map from top-k, RoIAlign,
    softmax; one map per crop at 1 crop per image) and FKD (:func:`~fkd_hf.labels.reconstruct` of ``batch_crops``
    crops), at ``num_classes`` classes. Median of ``reps`` on random labels."""
    generator = torch.Generator().manual_seed(0)
    k = min(k, num_classes)

    def topk(*shape):
        values, indices = torch.rand(*shape, num_classes, generator=generator).topk(k, dim=-1)
        return indices, values

    map_indices, map_values = topk(batch_crops, map_size, map_size)
    crop_image = torch.arange(batch_crops)
    corner = torch.rand(batch_crops, 2, generator=generator) * 0.5
    boxes = torch.cat([corner, torch.full((batch_crops, 2), 0.5)], dim=1)
    indices, values = topk(batch_crops)
    return {
        "num_classes": num_classes,
        "relabel_ms": _median_ms(
            lambda: relabel_targets(map_indices, map_values, crop_image, boxes, num_classes), reps
        ),
        "fkd_ms": _median_ms(lambda: reconstruct(indices, values, "marginal_smoothing", num_classes), reps),
    }
