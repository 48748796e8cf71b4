"""ReLabel (Yun et al., CVPR 2021) with the same teacher as FKD: one dense label map per image, pooled per crop.

Label maps: the teacher sees the whole image, resized to ``size`` x ``size`` (default: the teacher's own input
size), without global pooling. timm's ``forward_features`` gives ``[B, D, S, S]`` and the classifier is applied at
every position (an ``einsum`` with its weights), restricted to the dataset's classes; the top-k logits of each
position are stored (int16 indices, float16 values), one parquet row per image, keyed by ``image_key`` as FKD
labels are. Since the classifier is linear, the mean of the map over all positions is the teacher's own logits.

Training targets (ReLabel's ``get_labelmaps`` + ``get_relabel``): the stored top-k are scattered into a dense
``[C, S, S]`` logit map (every other class 0), RoIAlign pools the crop's box to ``1 x 1`` (``aligned=True``, which
is ReLabel's ``- 0.5``), and a softmax turns the pooled logits into the target. The 1 x 1 pooling is the same for a
mirrored crop, so flips need no handling. (ReLabel's released code passes ``(y1, x1, y2, x2)`` where RoIAlign
expects ``(x1, y1, x2, y2)``; here the box is given in RoIAlign's order.)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn
from torchvision.ops import roi_align

from fkd_hf.generation.prefetch import prefetch_map
from fkd_hf.labels.crops import resample_filter
from fkd_hf.labels.images import ImageSource, decode_image, image_bytes, image_key
from fkd_hf.models.pixels import normalize, to_uint8_batch
from fkd_hf.models.teachers import Teacher

__all__ = [
    "MAPS_FILE",
    "LabelMapsInfo",
    "dense_logit_map",
    "generate_label_maps",
    "load_label_maps",
    "join_label_maps",
    "relabel_targets",
]

MAPS_FILE = "relabel_maps.json"
DATA_FILE = "maps.parquet"


@dataclasses.dataclass
class LabelMapsInfo:
    """How a set of ReLabel maps was made; saved as ``relabel_maps.json`` next to ``maps.parquet``."""

    teacher: str
    teacher_revision: str | None
    input_size: int
    map_size: int
    k: int
    num_classes: int
    class_names: list[str]
    teacher_class_indices: list[int]
    dataset: str
    num_rows: int
    seconds: float
    bytes_per_image: float

    def save(self, directory: Path) -> None:
        (directory / MAPS_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")


def _linear_head(model: nn.Module) -> nn.Linear:
    """The classifier of a timm model whose head is global pooling then one linear layer."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Linear) or not hasattr(model, "forward_features"):
        raise ValueError(
            f"ReLabel maps need a timm teacher whose head is global pooling + one nn.Linear (EfficientNet, ResNet, "
            f"...); {type(model).__name__} has {type(head).__name__}."
        )
    return head


def dense_logit_map(model: nn.Module, pixels: torch.Tensor, class_indices: Sequence[int] | None = None) -> torch.Tensor:
    """``[B, C, S, S]`` logits: the teacher's classifier at every position of its last feature map.

    ``pixels`` is a normalised ``[B, 3, H, W]`` batch; ``class_indices`` restricts (and orders) the classes.
    """
    head = _linear_head(model)
    weight, bias = head.weight, head.bias
    if class_indices is not None:
        index = torch.as_tensor(list(class_indices), device=weight.device)
        weight = weight.index_select(0, index)
        bias = None if bias is None else bias.index_select(0, index)
    features = model.forward_features(pixels)
    logits = torch.einsum("bdhw,cd->bchw", features.float(), weight.float())
    return logits if bias is None else logits + bias.float().view(1, -1, 1, 1)


def _top_maps(
    images: ImageSource,
    teacher: Teacher,
    class_indices: Sequence[int],
    size: int,
    k: int,
    batch_size: int,
    num_workers: int,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(image keys, top-k indices int16 ``[N, S, S, k]``, their logits float16) of every image's label map."""
    column = images.image_column
    resample = resample_filter(teacher.interpolation)

    def prepare(value):
        data = image_bytes(value)
        return image_key(data), decode_image(data).resize((size, size), resample)

    keys, indices, values, batch = [], [], [], []

    def flush():
        x = normalize(to_uint8_batch([image for _, image in batch]), teacher.mean, teacher.std)
        with torch.inference_mode():
            logits = dense_logit_map(teacher.model.eval(), x, class_indices)  # [B, C, S, S]
        top_values, top_indices = logits.permute(0, 2, 3, 1).topk(k, dim=-1)  # [B, S, S, k]
        keys.extend(key for key, _ in batch)
        indices.append(top_indices.to(torch.int16).numpy())
        values.append(top_values.to(torch.float16).numpy())
        batch.clear()

    rows = (row[column] for row in images.dataset.select_columns([column]))
    for item in prefetch_map(prepare, rows, num_workers, ahead=2 * batch_size):
        batch.append(item)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return keys, np.concatenate(indices), np.concatenate(values)


def generate_label_maps(
    images: ImageSource,
    teacher: Teacher,
    class_indices: Sequence[int],
    output_dir: str | Path,
    size: int | None = None,
    k: int = 5,
    batch_size: int = 32,
    num_workers: int = 2,
) -> LabelMapsInfo:
    """Writes one top-``k`` label map per image of ``images`` to ``output_dir`` (see the module docstring).

    Times the whole job (reading, decoding, resizing, the teacher, top-k and parquet writing), as
    ``fkd-hf generate`` is timed, and returns what was written.
    """
    if teacher.library != "timm":
        raise ValueError("ReLabel maps need a timm teacher (forward_features + linear classifier).")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    size, k = int(size or teacher.input_size[0]), min(int(k), len(class_indices))
    keys, indices, values = _top_maps(images, teacher, class_indices, size, k, batch_size, num_workers)
    table = pa.table(
        {
            "image_key": pa.array(keys, pa.string()),
            "map_indices": _fixed_list(indices.reshape(len(keys), -1)),
            "map_values": _fixed_list(values.reshape(len(keys), -1)),
        }
    )
    path = output_dir / DATA_FILE
    pq.write_table(table, path, compression="zstd")  # the same codec as FKD's label shards
    info = LabelMapsInfo(
        teacher=teacher.name,
        teacher_revision=teacher.revision,
        input_size=size,
        map_size=int(indices.shape[1]),
        k=k,
        num_classes=len(class_indices),
        class_names=list(images.label_names or []),
        teacher_class_indices=[int(i) for i in class_indices],
        dataset=images.spec,
        num_rows=len(keys),
        seconds=time.perf_counter() - start,
        bytes_per_image=path.stat().st_size / max(len(keys), 1),
    )
    info.save(output_dir)
    return info


def _fixed_list(array: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(array).reshape(-1)), array.shape[1])


def load_label_maps(directory: str | Path) -> tuple[datasets.Dataset, LabelMapsInfo]:
    """The maps (columns ``image_key``, ``map_indices``, ``map_values``) and their info."""
    directory = Path(directory)
    info_path = directory / MAPS_FILE
    if not info_path.is_file():
        raise FileNotFoundError(f"{directory} has no {MAPS_FILE}: it is not a finished set of ReLabel maps.")
    info = LabelMapsInfo(**json.loads(info_path.read_text()))
    maps = datasets.Dataset(pq.read_table(directory / DATA_FILE))
    return maps, info


def join_label_maps(rows: datasets.Dataset, image_column: str, maps: datasets.Dataset) -> datasets.Dataset:
    """``rows`` with the map columns attached, in ``rows``' order, matched by ``image_key`` (every row checked)."""
    keys = [
        image_key(image_bytes(value))
        for value in rows.select_columns([image_column]).with_format("arrow")[image_column].to_pylist()
    ]
    position = {key: i for i, key in enumerate(maps["image_key"])}
    missing = [key for key in keys if key not in position]
    if missing:
        raise ValueError(
            f"{len(missing)} training images have no ReLabel map (first key {missing[0]}): regenerate "
            "the maps for this dataset."
        )
    ordered = maps.select([position[key] for key in keys]).remove_columns("image_key")
    return datasets.concatenate_datasets([rows, ordered], axis=1)


def relabel_targets(
    map_indices: torch.Tensor,
    map_values: torch.Tensor,
    crop_image: torch.Tensor,
    boxes: torch.Tensor,
    num_classes: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """ReLabel's LabelPooling: dense targets ``[N, C]`` for N crops.

    Args:
        map_indices: ``[B, S, S, k]`` stored classes of B images' maps.
        map_values: ``[B, S, S, k]`` their logits.
        crop_image: ``[N]`` the image (0..B-1) each crop comes from.
        boxes: ``[N, 4]`` crop boxes ``(top, left, height, width)`` as fractions of the image.
        num_classes: C.
        temperature: divides the pooled logits before the softmax (ReLabel: 1).

    >>> idx = torch.tensor([[[[0]]]]); val = torch.tensor([[[[2.0]]]])
    >>> relabel_targets(idx, val, torch.tensor([0]), torch.tensor([[0.0, 0.0, 1.0, 1.0]]), 2)
    tensor([[0.8808, 0.1192]])
    """
    b, s, _, _ = map_indices.shape
    dense = torch.zeros(b, num_classes, s, s, device=map_values.device)
    dense.scatter_(1, map_indices.long().permute(0, 3, 1, 2), map_values.float().permute(0, 3, 1, 2))
    top, left, height, width = boxes.float().unbind(-1)
    rois = torch.stack([crop_image.float(), left * s, top * s, (left + width) * s, (top + height) * s], dim=1).to(
        dense.device
    )
    pooled = roi_align(dense, rois, output_size=1, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    return torch.softmax(pooled.flatten(1) / temperature, dim=-1)
