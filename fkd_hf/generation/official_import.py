"""``fkd-hf import-fkd``: convert the official FKD label files of an image dataset into an fkd-hf label set.

Row i of the label set holds the file whose stem is that of image i (see :mod:`fkd_hf.labels.official`), with the
``image_key`` computed from image i's bytes, so the set joins the dataset like one made by ``fkd-hf generate``. The
crops are the official ones, stored as float16; nothing is regenerated and no teacher runs. Shards, resuming and
``accelerate launch`` work as in ``generate``: process p converts shards p, p + P, ...; finished shards are kept and a
rerun of the same command converts only the missing ones; ``fkd_labels.json`` is written last.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta
from pathlib import Path

from accelerate import PartialState

from ..labels.format import LabelSetMetadata
from ..labels.images import BadImageError, ImageSource, image_bytes, image_key, load_images
from ..labels.official import (
    GENERATOR,
    GENERATOR_URL,
    OfficialFileError,
    file_stem,
    index_label_files,
    infer_kind,
    label_type_name,
    load_label_file,
    match_label_files,
    resolve_kind,
    to_label_columns,
)
from .import_config import ImportFKDConfig
from .metadata import RecordedTeacher, build_metadata
from .shards import GenerateSummary, ShardedRun, plan_rows_per_shard, run_sharded

__all__ = ["ImportFKDConfig", "import_fkd"]


LAYOUT_SAMPLE = 25  # label files, spread over the folder, read to find the layout most of them share


@dataclasses.dataclass
class _Layout:
    """What every file must agree on, read from the files most of a sample share (``reference`` is one of them)."""

    kind: str
    k: int
    stored_crops: int
    num_classes: int
    label_type: str
    label_dtype: str
    coords_dtype: str
    reference: Path


def _image_paths(source: ImageSource) -> list[str]:
    """The file path of every image row (the official files are named after them)."""
    column = source.dataset.select_columns([source.image_column]).with_format("arrow")[:][source.image_column]
    paths = [path for chunk in column.chunks for path in chunk.field("path").to_pylist()]
    missing = next((row for row, path in enumerate(paths) if not path), None)
    if missing is not None:
        raise ValueError(
            f"Row {missing} of {source.spec} has no file path, and official label files are matched by image file "
            "name: give the images as a folder (imagefolder:PATH)."
        )
    return paths


def _describe_mismatch(config: ImportFKDConfig, images: list[str], files: list[Path]) -> str:
    parts = []
    if images:
        parts.append(
            f"{len(images)} images have no label file (first: {images[0]}, expected "
            f"{file_stem(Path(images[0]).name)}.tar under {config.label_dir})"
        )
    if files:
        parts.append(f"{len(files)} label files have no image in {config.dataset} (first: {files[0]})")
    return " and ".join(parts)


def _label_files(config: ImportFKDConfig, source: ImageSource) -> tuple[list[Path | None], list[str], list[Path]]:
    """Each row's label file (None: none), the images without one, and the label files without an image."""
    paths = _image_paths(source)
    files, orphans = match_label_files(paths, index_label_files(config.label_dir))
    missing = [path for path, file in zip(paths, files) if file is None]
    if len(missing) == len(paths):
        raise FileNotFoundError(
            f"No image of {config.dataset} has a label file in {config.label_dir}: files are matched by name "
            "(image n01440764_10026.JPEG -> label file n01440764_10026.tar)."
        )
    if (missing or orphans) and not config.skip_missing:
        raise FileNotFoundError(
            f"{_describe_mismatch(config, missing, orphans)}. Fix the folders, or rerun with "
            "--skip_missing to record such images as skipped rows and leave such files out."
        )
    return files, missing, orphans


def _reference_file(files: list[Path | None]) -> tuple[Path, tuple]:
    """A label file of the shape most of ``LAYOUT_SAMPLE`` files spread over ``files`` share, and its contents: one
    odd file (another R, say) then stands out as the one that disagrees, whichever file comes first."""
    present = [path for path in files if path is not None]
    picks = sorted({round(i * (len(present) - 1) / max(LAYOUT_SAMPLE - 1, 1)) for i in range(LAYOUT_SAMPLE)})
    by_shape: dict[tuple, list] = {}
    errors = []
    for index in picks:
        try:
            state = load_label_file(present[index])
        except OfficialFileError as err:  # reported with its row when the conversion reaches it
            errors.append(err)
            continue
        by_shape.setdefault(tuple(part.shape for part in state), []).append((present[index], state))
    if not by_shape:
        raise errors[0]
    return max(by_shape.values(), key=len)[0]  # a tie goes to the shape found first


def _layout(config: ImportFKDConfig, source: ImageSource, files: list[Path | None]) -> _Layout:
    """Kind, k and R from the label files (and ``--kind``), and the class count."""
    reference, state = _reference_file(files)
    coords, _, labels = state
    try:
        kind, k = resolve_kind(config.kind) if config.kind else infer_kind(labels)
    except ValueError as err:
        raise OfficialFileError(f"{reference}: {err}.") from err
    if k is None:  # --kind marginal_smoothing / marginal_renorm: k is the files'
        if labels.ndim != 3:
            raise OfficialFileError(f"{reference}: labels of shape {labels.shape} are not R x 2 x k ({kind}).")
        k = int(labels.shape[2])
    num_classes = config.num_classes or len(source.label_names or [])
    if not num_classes:
        raise ValueError(f"{config.dataset} has no class-label column to count the classes: pass --num_classes.")
    to_label_columns(state, reference, kind, k, len(coords), num_classes)  # its errors before any work
    return _Layout(
        kind, k, len(coords), num_classes, label_type_name(kind, k), str(labels.dtype), str(coords.dtype), reference
    )


def _metadata(config: ImportFKDConfig, source: ImageSource, layout: _Layout, counts: dict) -> LabelSetMetadata:
    names = source.label_names
    class_names = (
        list(names)
        if names and len(names) == layout.num_classes
        else [f"class_{index}" for index in range(layout.num_classes)]
    )
    provenance = dict(
        method="converted",
        generator=GENERATOR,
        generator_url=GENERATOR_URL,
        label_type=layout.label_type,
        label_dtype=layout.label_dtype,
        coords_dtype=layout.coords_dtype,
        label_dir=config.label_dir,
        **counts,
    )
    teacher = RecordedTeacher(
        config.teacher,
        None,
        "official FKD generator",
        (config.input_size, config.input_size),
        tuple(config.mean),
        tuple(config.std),
        config.interpolation,
    )
    return build_metadata(
        source,
        teacher,
        plan_rows_per_shard(source.num_rows, config.rows_per_shard, config.num_shards),
        config.max_rows,
        kind=layout.kind,
        k=layout.k,
        num_classes=layout.num_classes,
        class_names=class_names,
        temperature=float(config.temperature),
        stored_crops=layout.stored_crops,
        seed=-1,
        crop_scale=list(config.crop_scale),
        crop_ratio=list(config.crop_ratio),
        teacher_class_indices=None,
        precision="fp32",
        provenance=provenance,
        replay="pil",  # the official generator cut its crops with PIL
    )


def _fingerprint(config: ImportFKDConfig, metadata: LabelSetMetadata) -> dict:
    """What must match for a rerun to resume an existing output folder: the options (not --skip_missing, which a
    resume may add for the shards left), with the values they resolved to where the metadata records them."""
    keep = {
        key: value
        for key, value in dataclasses.asdict(config).items()
        if key not in ("num_workers", "overwrite", "num_shards", "skip_missing")
    }
    values = metadata.to_dict()
    resolved = [*keep, "num_rows", "rows_per_shard", "k", "stored_crops"]
    keep.update({key: values[key] for key in resolved if key in values})
    return keep


class _RowConverter:
    """Per-row work, run in reading threads: the image's key, then its label file as label-set columns."""

    def __init__(self, files: list[Path | None], metadata: LabelSetMetadata, reference: Path):
        self.files, self.metadata, self.reference = files, metadata, reference

    def __call__(self, item) -> dict:
        row, value = item
        result = {"row": row, "key": "", "error": None}
        meta, path = self.metadata, self.files[row]
        try:
            result["key"] = image_key(image_bytes(value))
            if path is None:
                raise OfficialFileError(f"Image {value.get('path')} (row {row}) has no label file.")
            state = load_label_file(path)
            try:
                columns = to_label_columns(state, path, meta.kind, meta.k, meta.stored_crops, meta.num_classes)
            except OfficialFileError as err:
                if state[0].shape[:1] == (meta.stored_crops,):
                    raise
                raise OfficialFileError(
                    f"{err} The label files disagree on R: most hold {meta.stored_crops} crops, "
                    f"as {self.reference} does."
                ) from err
        except (BadImageError, OfficialFileError) as err:
            result["error"] = str(err)
            return result
        result.update(columns)
        return result


def _refusal(row: dict) -> OfficialFileError:
    """The error that stops an import at a row without a usable label file (without --skip_missing)."""
    return OfficialFileError(
        f"{row['error']} Fix it, or rerun with --skip_missing to record such rows as skipped "
        "(finished shards are kept)."
    )


def import_fkd(config: ImportFKDConfig) -> GenerateSummary:
    """Converts ``config.label_dir`` into a label set in ``config.output_dir`` (see the module docstring).

    >>> import_fkd(ImportFKDConfig(label_dir="FKD_soft_label/imagenet/train", dataset="imagefolder:imagenet/train",
    ...                            output_dir="labels/imagenet-fkd"))  # doctest: +SKIP
    """
    start = time.perf_counter()
    state = PartialState(cpu=True, timeout=timedelta(hours=24))
    with state.main_process_first():
        source = load_images(
            config.dataset,
            config.dataset_config,
            config.split,
            config.revision,
            False,
            config.image_column,
            config.label_column,
            config.max_rows,
        )
    files, missing, orphans = _label_files(config, source)
    counts = dict(
        label_files=len(files) - len(missing),
        images_without_label_file=len(missing),
        label_files_without_image=len(orphans),
    )
    layout = _layout(config, source, files)
    metadata = _metadata(config, source, layout, counts)
    notice = (
        (
            f"{_describe_mismatch(config, missing, orphans)}: such images are recorded as skipped rows, such files "
            "left out (--skip_missing)."
        )
        if missing or orphans
        else None
    )
    return run_sharded(
        ShardedRun(
            "import-fkd",
            Path(config.output_dir),
            metadata,
            _fingerprint(config, metadata),
            source,
            prepare=_RowConverter(files, metadata, layout.reference),
            refuse=None if config.skip_missing else _refusal,
            start=start,
            overwrite=config.overwrite,
            num_workers=config.num_workers,
            ahead=4 * max(config.num_workers, 1),
            notice=notice,
        ),
        state,
    )
