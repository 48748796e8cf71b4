"""The baselines FKD is compared with: plain training, vanilla (online) KD and ReLabel, on fkd_hf's crop pipeline.

Every method is a ``transformers.Trainer`` fed by the same machinery as :class:`~fkd_hf.FKDTrainer`: uint8 crops
made by fkd_hf's replay rule (:func:`~fkd_hf.crops.crops_to_pixels` + :func:`~fkd_hf.crops.replay_crop`), normalised
on the device, a soft cross-entropy (:func:`~fkd_hf.soft_cross_entropy`), and the same evaluation batches and
metrics. Only the targets differ:

- ``PlainTrainer``: the image's class, one-hot (the soft cross-entropy of a one-hot target is the cross-entropy);
- ``VanillaKDTrainer``: the teacher runs on every training crop inside the training step, as timm's online
  distillation does: the same box and flip cut from the source image at the teacher's input size and
  interpolation (as ``fkd-hf generate`` cuts it), its logits restricted to the dataset's classes, softmax;
- ``ReLabelTrainer``: RoIAlign of the crop box on the image's stored label map, softmax
  (:func:`benchmarks.relabel.relabel_targets`).

:class:`CropDataset` yields ``num_crops`` crops per decoded image, either freshly sampled each pass (a function
of ``(seed, row, pass)``, torchvision's RandomResizedCrop algorithm with fkd_hf's sampler) or replayed from a
label set's stored crops with FKD's own selection, so a baseline can see exactly FKD's pixels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate
from transformers import Trainer, TrainerCallback

from fkd_hf.labels.crops import crops_to_pixels, replay_crop, resample_filter, sample_crops
from fkd_hf.labels.images import decode_image, image_bytes
from fkd_hf.labels.format import LabelSetMetadata, fixed_size_to_numpy
from fkd_hf.models.pixels import normalize
from fkd_hf.training.data import PassDataset, collate_crops, select_crops
from fkd_hf.training.loss import soft_cross_entropy
from fkd_hf.models.students import student_data_config
from fkd_hf.models.teachers import Teacher
from fkd_hf.training.trainer import topk_accuracy
from fkd_hf.training.config import FKDConfig

from .relabel import relabel_targets

__all__ = [
    "CropDataset",
    "collate_batch",
    "BaselineTrainer",
    "PlainTrainer",
    "VanillaKDTrainer",
    "ReLabelTrainer",
    "teacher_targets",
]

_FRESH_STREAM = 7  # keeps the baselines' crop stream apart from FKD's generation stream crop_rng(seed, row)


class CropDataset(PassDataset):
    """Image rows as training samples of ``num_crops`` crops each, with their boxes, class and optional extras.

    Each sample: ``pixel_values`` uint8 ``[m, H, W, 3]``, ``labels`` ``[m]`` (the image's class index), ``boxes``
    float32 ``[m, 4]`` (the pixel boxes as fractions ``top/H, left/W, height/H, width/W``); with
    ``teacher_size``, ``teacher_pixels`` uint8 ``[m, h, w, 3]`` (the same boxes and flips at the teacher's size);
    with ReLabel map columns in ``rows`` (see :func:`~benchmarks.relabel.join_label_maps`; ``map_size`` = S),
    ``map_indices``/``map_values`` ``[S, S, k]`` (one map per image).

    Crops: with ``replay`` (the metadata of a label set joined to ``rows``), FKD's stored crops, chosen as
    :class:`~fkd_hf.FKDCropDataset` chooses them; otherwise fresh RandomResizedCrop boxes and flips from
    ``default_rng([seed, row, pass, 7])``. Call :meth:`set_pass` when a pass begins (a callback does).
    """

    def __init__(
        self,
        rows: datasets.Dataset,
        num_crops: int,
        size: Sequence[int],
        interpolation: str = "bilinear",
        seed: int = 0,
        image_column: str = "image",
        label_column: str = "label",
        label_map: Sequence[int] | None = None,
        replay: LabelSetMetadata | None = None,
        teacher_size: Sequence[int] | None = None,
        teacher_interpolation: str = "bicubic",
        crop_scale: Sequence[float] = (0.08, 1.0),
        crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
        map_size: int | None = None,
    ):
        resample_filter(interpolation)
        super().__init__()
        if replay is not None and not 1 <= num_crops <= replay.stored_crops:
            raise ValueError(f"num_crops must be between 1 and the label set's {replay.stored_crops} stored crops.")
        if replay is not None and replay.skipped_rows:
            raise ValueError("Replaying a label set with skipped rows is not supported by the benchmark.")
        self.has_maps = "map_indices" in rows.column_names
        if self.has_maps and not map_size:
            raise ValueError("rows carry ReLabel maps: give their side length as map_size.")
        self.map_size = map_size
        columns = [image_column, label_column]
        columns += ["crops", "flips"] if replay is not None else []
        columns += ["map_indices", "map_values"] if self.has_maps else []
        self.rows = rows.select_columns(columns).with_format("arrow")
        self.num_rows = len(rows)
        self.num_crops = int(num_crops)
        self.size = (int(size[0]), int(size[1]))
        self.interpolation = interpolation
        self.seed = int(seed)
        self.image_column, self.label_column = image_column, label_column
        self.label_map = None if label_map is None else np.asarray(label_map, dtype=np.int64)
        self.replay = replay
        self.teacher_size = None if teacher_size is None else (int(teacher_size[0]), int(teacher_size[1]))
        self.teacher_interpolation = teacher_interpolation
        self.crop_scale, self.crop_ratio = tuple(crop_scale), tuple(crop_ratio)

    def __len__(self) -> int:
        return self.num_rows

    def _boxes(self, j: int, row: int, pass_index: int, stored, height: int, width: int):
        if self.replay is not None:
            crops, flips = stored
            chosen = select_crops(self.seed, row, pass_index, self.replay.stored_crops, self.num_crops)
            crops, flips = crops[j].reshape(-1, 4)[chosen], flips[j][chosen]
        else:
            rng = np.random.default_rng([self.seed, row, pass_index, _FRESH_STREAM])
            crops, flips = sample_crops(height, width, self.num_crops, rng, self.crop_scale, self.crop_ratio)
        return crops_to_pixels(crops, height, width), flips

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        rows = np.asarray(indices, dtype=np.int64)
        table = self.rows[rows.tolist()]
        n = len(rows)
        images = table.column(self.image_column).to_pylist()
        labels = table.column(self.label_column).to_numpy()
        if self.label_map is not None:
            labels = self.label_map[labels]
        stored = None
        if self.replay is not None:
            stored = (fixed_size_to_numpy(table.column("crops"), (n, -1)).astype(np.float16),
                      fixed_size_to_numpy(table.column("flips"), (n, -1)))  # fmt: skip
        if self.has_maps:
            map_indices = fixed_size_to_numpy(table.column("map_indices"), (n, -1))
            map_values = fixed_size_to_numpy(table.column("map_values"), (n, -1))
        pass_index = self.pass_index
        samples = []
        for j, row in enumerate(rows.tolist()):
            image = decode_image(image_bytes(images[j]))
            boxes, flips = self._boxes(j, row, pass_index, stored, image.height, image.width)
            crops = [replay_crop(image, box, bool(flip), self.size, self.interpolation)
                     for box, flip in zip(boxes, flips)]
            fractions = boxes / np.array([image.height, image.width, image.height, image.width], dtype=np.float64)
            sample = {
                "pixel_values": torch.from_numpy(np.stack([np.asarray(c) for c in crops])),
                "labels": torch.full((self.num_crops,), int(labels[j]), dtype=torch.int64),
                "boxes": torch.from_numpy(fractions.astype(np.float32)),
            }
            if self.teacher_size is not None:
                teacher_crops = [replay_crop(image, box, bool(flip), self.teacher_size, self.teacher_interpolation)
                                 for box, flip in zip(boxes, flips)]
                sample["teacher_pixels"] = torch.from_numpy(np.stack([np.asarray(c) for c in teacher_crops]))
            if self.has_maps:
                side = self.map_size
                sample["map_indices"] = torch.from_numpy(map_indices[j].reshape(side, side, -1).astype(np.int64))
                sample["map_values"] = torch.from_numpy(map_values[j].reshape(side, side, -1).astype(np.float32))
            samples.append(sample)
        return samples


def collate_batch(samples: list[dict]) -> dict:
    """Stacks :class:`CropDataset` samples (crops image-major, as FKD's collator) or evaluation samples.

    Training batches: ``pixel_values`` uint8 ``[N, 3, H, W]`` channels-last, ``labels`` ``[N]``, ``boxes``
    ``[N, 4]``, ``teacher_pixels`` ``[N, 3, h, w]``, per-image ``map_*`` ``[B, S, S, k]`` with ``crop_image``
    ``[N]`` (the image each crop comes from).
    """
    if "boxes" not in samples[0]:
        return collate_crops(samples)
    crops_per_image = samples[0]["pixel_values"].shape[0]
    batch = default_collate(samples)
    batch["pixel_values"] = batch["pixel_values"].flatten(0, 1).permute(0, 3, 1, 2)
    batch["labels"] = batch["labels"].flatten()
    batch["boxes"] = batch["boxes"].flatten(0, 1)
    if "teacher_pixels" in batch:
        batch["teacher_pixels"] = batch["teacher_pixels"].flatten(0, 1).permute(0, 3, 1, 2)
    if "map_indices" in batch:
        batch["crop_image"] = torch.arange(len(samples)).repeat_interleave(crops_per_image)
    return batch


def _top5(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return logits.topk(min(5, logits.shape[-1]), dim=-1).indices


class _PassCallback(TrainerCallback):
    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_pass(int(state.epoch or 0))


class BaselineTrainer(Trainer):
    """A Trainer on :class:`CropDataset` batches with FKD's loss and evaluation; subclasses define the targets.

    Training batches: crops normalised on the device with the student's mean/std (as FKDTrainer), dense targets
    from :meth:`targets`, ``soft_cross_entropy(logits, targets, args.temperature)`` reduced exactly as FKDTrainer
    reduces it. Evaluation batches (``labels`` without ``boxes``): the model's own loss, top-1/top-5 metrics.
    """

    def __init__(self, model, args: FKDConfig, train_dataset: CropDataset | None = None, **kwargs):
        kwargs.setdefault("data_collator", collate_batch)
        kwargs.setdefault("compute_metrics", topk_accuracy)
        kwargs.setdefault("preprocess_logits_for_metrics", _top5)
        model.to(memory_format=torch.channels_last)  # as FKDTrainer does
        super().__init__(model=model, args=args, train_dataset=train_dataset, **kwargs)
        if train_dataset is not None:
            self.add_callback(_PassCallback(train_dataset))
        data = student_data_config(self.model, mean=args.mean, std=args.std)
        self._stats = torch.tensor([data["mean"], data["std"]], dtype=torch.float32)
        self.num_classes = model.config.num_labels

    def _normalize(self, pixels: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        stats = (self._stats if stats is None else stats).to(pixels.device)
        return normalize(pixels, stats[0], stats[1])

    def targets(self, inputs: dict) -> torch.Tensor:
        raise NotImplementedError

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pixels = self._normalize(inputs["pixel_values"])
        if "boxes" not in inputs:
            inputs = {"pixel_values": pixels, "labels": inputs["labels"]}
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        targets = self.targets(inputs)
        outputs = model(pixel_values=pixels)
        if num_items_in_batch is None:
            loss = soft_cross_entropy(outputs.logits, targets, self.args.temperature)
        else:
            loss = soft_cross_entropy(outputs.logits, targets, self.args.temperature, reduction="sum") / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss


class PlainTrainer(BaselineTrainer):
    """Hard labels: one-hot targets, i.e. the cross-entropy."""

    def targets(self, inputs: dict) -> torch.Tensor:
        return F.one_hot(inputs["labels"], self.num_classes).float()


def teacher_targets(
    teacher: Teacher, pixels: torch.Tensor, class_indices: Sequence[int] | None, temperature: float = 1.0
) -> torch.Tensor:
    """The teacher's softmax on normalised ``pixels`` ``[N, 3, h, w]``, restricted to ``class_indices``, as
    ``fkd-hf generate`` computes it before quantization."""
    with torch.no_grad():
        logits = teacher.logits(pixels).float()
    if class_indices is not None:
        logits = logits.index_select(-1, torch.as_tensor(list(class_indices), device=logits.device))
    return torch.softmax(logits / temperature, dim=-1)


class VanillaKDTrainer(BaselineTrainer):
    """Online KD: the teacher (eval mode, no gradient) runs on every training crop in the training step.

    ``teacher_seconds`` accumulates the time spent in the teacher.
    """

    def __init__(self, model, args: FKDConfig, train_dataset=None, *, teacher: Teacher,
                 class_indices: Sequence[int] | None, label_temperature: float = 1.0, **kwargs):
        super().__init__(model, args, train_dataset, **kwargs)
        self.teacher = teacher
        self.teacher.model.eval().requires_grad_(False).to(self.args.device)
        self.class_indices = class_indices
        self.label_temperature = label_temperature
        self._teacher_stats = torch.tensor([teacher.mean, teacher.std], dtype=torch.float32)
        self.teacher_seconds = 0.0

    def targets(self, inputs: dict) -> torch.Tensor:
        start = time.perf_counter()
        pixels = self._normalize(inputs["teacher_pixels"], self._teacher_stats)
        targets = teacher_targets(self.teacher, pixels, self.class_indices, self.label_temperature)
        self.teacher_seconds += time.perf_counter() - start
        return targets


class ReLabelTrainer(BaselineTrainer):
    """ReLabel: RoIAlign of each crop's box on its image's label map, softmax."""

    def targets(self, inputs: dict) -> torch.Tensor:
        return relabel_targets(
            inputs["map_indices"], inputs["map_values"], inputs["crop_image"], inputs["boxes"], self.num_classes
        )
