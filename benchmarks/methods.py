"""The baselines FKD is compared with: plain training, vanilla (online) KD and ReLabel, on fkd_hf's crop pipeline.

Every method trains through :func:`fkd_hf.training.build_trainer`: a baseline swaps only its training set (the
``train_set_factory`` :func:`crop_set_factory` makes) and its targets (a :class:`BaselineTrainer` subclass, an
:class:`~fkd_hf.FKDTrainer` whose training batches get other targets). The crops are made by fkd_hf's replay rule
(:func:`~fkd_hf.labels.crops_to_pixels` + :func:`~fkd_hf.labels.replay_crops` with the label set's replay method,
so FKD and the baselines decode and cut with the same ops), normalised on the device, and the
loss is FKD's soft cross-entropy (:func:`~fkd_hf.soft_cross_entropy`); evaluation batches and metrics are
FKDTrainer's own. Only the targets differ:

- ``PlainTrainer``: the image's class, one-hot (the soft cross-entropy of a one-hot target is the cross-entropy);
- ``VanillaKDTrainer``: the teacher runs on every training crop inside the training step, as timm's online
  distillation does, through :class:`~fkd_hf.models.TeacherRunner` (as ``fkd-hf generate`` runs it): the same box
  and flip cut from the source image at the teacher's input size and interpolation, its softmax restricted to the
  dataset's classes;
- ``ReLabelTrainer``: RoIAlign of the crop box on the image's stored label map, softmax
  (:func:`benchmarks.relabel.relabel_targets`).

:class:`CropDataset` yields ``num_crops`` crops per decoded image, either freshly sampled each pass (a function
of ``(seed, row, pass)``, torchvision's RandomResizedCrop algorithm with fkd_hf's sampler) or replayed from the
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

from fkd_hf.labels.crops import (
    DEFAULT_REPLAY,
    check_replay_interpolation,
    crops_to_pixels,
    replay_crops,
    sample_crops,
)
from fkd_hf.labels.decode import decode_for_replay, decoded_size
from fkd_hf.labels.format import LabelSetMetadata, fixed_size_to_numpy
from fkd_hf.labels.images import image_bytes
from fkd_hf.models.teacher_runner import TeacherRunner
from fkd_hf.models.teachers import Teacher
from fkd_hf.training.config import FKDConfig
from fkd_hf.training.data import PassDataset, collate_crops, select_crops
from fkd_hf.training.resolved import ResolvedRun
from fkd_hf.training.trainer import FKDTrainer

from .relabel import join_label_maps, relabel_targets

__all__ = [
    "CropDataset",
    "crop_set_factory",
    "collate_batch",
    "BaselineTrainer",
    "PlainTrainer",
    "VanillaKDTrainer",
    "ReLabelTrainer",
]

_FRESH_STREAM = 7  # keeps the baselines' crop stream apart from FKD's generation stream crop_rng(seed, row)


class CropDataset(PassDataset):
    """Image rows as training samples of ``num_crops`` crops each, with their boxes, class and optional extras.

    Each sample: ``pixel_values`` uint8 ``[m, H, W, 3]``, ``labels`` ``[m]`` (the image's class index), ``boxes``
    float32 ``[m, 4]`` (the pixel boxes as fractions ``top/H, left/W, height/H, width/W``); with
    ``teacher_size``, ``teacher_pixels`` uint8 ``[m, h, w, 3]`` (the same boxes and flips at the teacher's size);
    with ReLabel map columns in ``rows`` (see :func:`~benchmarks.relabel.join_label_maps`; ``map_size`` = S),
    ``map_indices``/``map_values`` ``[S, S, k]`` (one map per image).

    ``metadata`` is the label set joined to ``rows`` (its classes are the trainer's). Crops: with ``replay``, its
    stored crops, chosen as :class:`~fkd_hf.FKDCropDataset` chooses them; otherwise fresh RandomResizedCrop boxes
    and flips (in the label set's scale and ratio ranges) from ``default_rng([seed, row, pass, 7])``. Both are
    decoded and cut by the label set's replay (``metadata.replay``), as FKD's crops. Call :meth:`set_pass` when a
    pass begins (a callback does).
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
        metadata: LabelSetMetadata | None = None,
        replay: bool = False,
        teacher_size: Sequence[int] | None = None,
        teacher_interpolation: str = "bicubic",
        map_size: int | None = None,
    ):
        self.ops = DEFAULT_REPLAY if metadata is None else metadata.replay  # decoding and cropping: the set's replay
        check_replay_interpolation(self.ops, interpolation)
        if teacher_size is not None:
            check_replay_interpolation(self.ops, teacher_interpolation)
        super().__init__()
        if replay and (metadata is None or not 1 <= num_crops <= metadata.stored_crops):
            raise ValueError("Replaying crops needs the label set's metadata and 1 <= num_crops <= its stored crops.")
        if replay and metadata.skipped_rows:
            raise ValueError("Replaying a label set with skipped rows is not supported by the benchmark.")
        self.has_maps = "map_indices" in rows.column_names
        if self.has_maps and not map_size:
            raise ValueError("rows carry ReLabel maps: give their side length as map_size.")
        self.map_size = map_size
        columns = [image_column, label_column]
        columns += ["crops", "flips"] if replay else []
        columns += ["map_indices", "map_values"] if self.has_maps else []
        self.rows = rows.select_columns(columns).with_format("arrow")
        self.num_rows = len(rows)
        self.num_crops = int(num_crops)
        self.size = (int(size[0]), int(size[1]))
        self.interpolation = interpolation
        self.seed = int(seed)
        self.image_column, self.label_column = image_column, label_column
        self.metadata, self.replay = metadata, bool(replay)
        # fresh crops sample the label set's RandomResizedCrop ranges, as its generation did
        self.crop_ranges = () if metadata is None else (metadata.crop_scale, metadata.crop_ratio)
        self.teacher_size = None if teacher_size is None else (int(teacher_size[0]), int(teacher_size[1]))
        self.teacher_interpolation = teacher_interpolation

    def __len__(self) -> int:
        return self.num_rows

    def _boxes(self, j: int, row: int, pass_index: int, stored, height: int, width: int):
        if self.replay:
            crops, flips = stored
            chosen = select_crops(self.seed, row, pass_index, self.metadata.stored_crops, self.num_crops)
            crops, flips = crops[j].reshape(-1, 4)[chosen], flips[j][chosen]
        else:
            rng = np.random.default_rng([self.seed, row, pass_index, _FRESH_STREAM])
            crops, flips = sample_crops(height, width, self.num_crops, rng, *self.crop_ranges)
        return crops_to_pixels(crops, height, width), flips

    def _crops(self, image, boxes, flips, size, interpolation) -> torch.Tensor:
        return torch.from_numpy(replay_crops(image, boxes, flips, size, interpolation, self.ops))

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        rows = np.asarray(indices, dtype=np.int64)
        table = self.rows[rows.tolist()]
        n = len(rows)
        images = table.column(self.image_column).to_pylist()
        labels = table.column(self.label_column).to_numpy()
        stored = None
        if self.replay:
            stored = (
                fixed_size_to_numpy(table.column("crops"), (n, -1)).astype(np.float16),
                fixed_size_to_numpy(table.column("flips"), (n, -1)),
            )
        if self.has_maps:
            side = self.map_size
            map_indices = fixed_size_to_numpy(table.column("map_indices"), (n, side, side, -1)).astype(np.int64)
            map_values = fixed_size_to_numpy(table.column("map_values"), (n, side, side, -1)).astype(np.float32)
        pass_index = self.pass_index
        samples = []
        for j, row in enumerate(rows.tolist()):
            image = decode_for_replay(image_bytes(images[j]), self.ops)
            height, width = decoded_size(image)
            boxes, flips = self._boxes(j, row, pass_index, stored, height, width)
            fractions = boxes / np.array([height, width, height, width], dtype=np.float64)
            sample = {
                "pixel_values": self._crops(image, boxes, flips, self.size, self.interpolation),
                "labels": torch.full((self.num_crops,), int(labels[j]), dtype=torch.int64),
                "boxes": torch.from_numpy(fractions.astype(np.float32)),
            }
            if self.teacher_size is not None:
                sample["teacher_pixels"] = self._crops(
                    image, boxes, flips, self.teacher_size, self.teacher_interpolation
                )
            if self.has_maps:
                sample["map_indices"] = torch.from_numpy(map_indices[j])
                sample["map_values"] = torch.from_numpy(map_values[j])
            samples.append(sample)
        return samples


def crop_set_factory(
    replay: bool = False,
    teacher: Teacher | None = None,
    maps: datasets.Dataset | None = None,
    map_size: int | None = None,
):
    """A ``train_set_factory`` for :func:`~fkd_hf.training.build_trainer`: a :class:`CropDataset` of the joined
    rows, at the student's input size, with the config's crops per image and interpolation and the run's seed and
    columns.

    ``replay``: FKD's stored crops; ``teacher``: also the crops at the teacher's size and interpolation;
    ``maps``: ReLabel maps (of side ``map_size``) joined to the rows by image key.
    """

    def factory(rows: datasets.Dataset, metadata: LabelSetMetadata, run: ResolvedRun, config: FKDConfig) -> CropDataset:
        if maps is not None:
            rows = join_label_maps(rows, run.data.image_column, maps)
        return CropDataset(
            rows,
            config.num_crops,
            run.input_size,
            config.train_interpolation,
            run.data_seed,
            run.data.image_column,
            run.data.label_column,
            metadata,
            replay,
            teacher.input_size if teacher else None,
            teacher.interpolation if teacher else "bicubic",
            map_size,
        )

    return factory


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


class BaselineTrainer(FKDTrainer):
    """An :class:`~fkd_hf.FKDTrainer` on :class:`CropDataset` batches whose targets subclasses define.

    Training batches (with ``boxes``): crops normalised on the device as FKDTrainer does, dense targets from
    :meth:`targets`, ``soft_cross_entropy(logits, targets, args.temperature)`` reduced as FKDTrainer reduces it.
    Evaluation batches: FKDTrainer's (the model's own loss, top-1/top-5 metrics).
    """

    def __init__(self, model, args: FKDConfig, train_dataset: CropDataset | None = None, **kwargs):
        if train_dataset is not None and train_dataset.metadata is None:
            raise ValueError("A baseline trains on a CropDataset made with the label set's metadata (its classes).")
        kwargs.setdefault("data_collator", collate_batch)
        super().__init__(model, args, train_dataset, **kwargs)
        self.num_classes = model.config.num_labels

    def is_training_batch(self, inputs: dict) -> bool:
        return "boxes" in inputs

    def targets(self, inputs: dict) -> torch.Tensor:
        raise NotImplementedError


class PlainTrainer(BaselineTrainer):
    """Hard labels: one-hot targets, i.e. the cross-entropy."""

    def targets(self, inputs: dict) -> torch.Tensor:
        return F.one_hot(inputs["labels"], self.num_classes).float()


class VanillaKDTrainer(BaselineTrainer):
    """Online KD: the teacher runs on every training crop in the training step, through a
    :class:`~fkd_hf.models.TeacherRunner` on the training device (``precision``: as the generation's).

    ``teacher_seconds`` accumulates the wall time spent in the teacher, ``teacher_cpu_seconds`` this process's CPU
    time in it (every thread) and ``teacher_crops`` the crops it labelled.
    """

    def __init__(
        self,
        model,
        args: FKDConfig,
        train_dataset=None,
        *,
        teacher: Teacher,
        class_indices: Sequence[int] | None,
        label_temperature: float = 1.0,
        precision: str = "fp32",
        **kwargs,
    ):
        super().__init__(model, args, train_dataset, **kwargs)
        self.runner = TeacherRunner(teacher, precision, self.args.device, class_indices, label_temperature)
        self.teacher_seconds = self.teacher_cpu_seconds = 0.0
        self.teacher_crops = 0

    def teacher_targets(self, pixels: torch.Tensor) -> torch.Tensor:
        """The targets of the teacher's input crops ``pixels``: its softmax over the runner's classes."""
        return self.runner.probs(pixels)

    def targets(self, inputs: dict) -> torch.Tensor:
        start, cpu = time.perf_counter(), time.process_time()
        targets = self.teacher_targets(inputs["teacher_pixels"])
        self.teacher_seconds += time.perf_counter() - start
        self.teacher_cpu_seconds += time.process_time() - cpu
        self.teacher_crops += len(targets)
        return targets


class ReLabelTrainer(BaselineTrainer):
    """ReLabel: RoIAlign of each crop's box on its image's label map, softmax."""

    def targets(self, inputs: dict) -> torch.Tensor:
        return relabel_targets(
            inputs["map_indices"], inputs["map_values"], inputs["crop_image"], inputs["boxes"], self.num_classes
        )
