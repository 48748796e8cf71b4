"""The multi-crop loader: decode each image once and replay ``num_crops`` of its stored crops with their targets.

Batch semantics: a batch of B samples (``per_device_train_batch_size`` counts samples) holds ``B x num_crops``
crops. A sample of :class:`FKDCropDataset` holds ``num_crops`` crops; which ones is its crop layout's choice
(:mod:`fkd_hf.training.layouts`): in the grouped layout, FKD's, a sample is one image with its crops (image-major:
the crops of image 0, then of image 1, ...); FKD's ``-b 1024 --num_crops 4`` is 256 images x 4 crops per optimizer
step over all devices. The spread layout keeps these numbers and puts each photo's crops in different batches.

Crop selection, without replacement as in FKD: with R stored crops and ``num_crops = m`` per pass, image ``i`` in
pass ``p`` draws the permutation ``perm = default_rng([seed, i, p // (R // m)]).permutation(R)`` and uses the slice
``perm[(p % (R // m)) * m : ... + m]`` (its *rounds* 0..m-1). Every R // m passes see each stored crop once; the
crops depend only on ``(seed, i, p)``, never on worker count, layout or resuming.

The single-crop tail (``FKDConfig.single_crop_tail``, :mod:`fkd_hf.training.layouts.tail`) replays the last pass as m
passes of one crop per photo over either layout's photos.

Pixels stay uint8 (``[N, 3, H, W]`` in channels-last memory) until the device: :func:`normalize` runs there, four
times less data to move than float32 and no float work on the loader's CPUs. A batch's crops are replayed straight
into one array (in shared memory inside a loader worker), whose slices are the samples' ``pixel_values``;
:func:`collate_crops` then returns that array without copying it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import datasets
import numpy as np
import torch
import xxhash
from PIL import Image
from torch.utils.data import default_collate

from ..errors import UsageError
from ..labels.attach import LabelMismatchError
from ..labels.crops import check_replay_interpolation, crops_to_pixels, replay_crops, resample_filter
from ..labels.decode import decode_for_replay, decoded_size
from ..labels.format import LabelSetMetadata, fixed_size_to_numpy
from ..labels.images import decode_image, image_bytes, image_key
from .layouts.base import CropLayout
from .layouts.grouped import GroupedLayout
from .layouts.tail import SingleCropTail

__all__ = [
    "select_crops",
    "PassDataset",
    "FKDCropDataset",
    "EvalDataset",
    "eval_transform",
    "collate_crops",
]

# One replayed crop: uint8 pixels [H, W, 3] and its stored targets (a value per column of the label set's target type).
Crop = tuple[np.ndarray, dict[str, np.ndarray]]


def select_crops(seed: int, row: int, pass_index: int, num_stored: int, num_crops: int) -> np.ndarray:
    """Indices of the ``num_crops`` stored crops that image ``row`` replays in pass ``pass_index`` (see module doc)."""
    passes_per_cycle = num_stored // num_crops
    cycle, slot = divmod(pass_index, passes_per_cycle)
    order = np.random.default_rng([seed, row, cycle]).permutation(num_stored)
    return order[slot * num_crops : (slot + 1) * num_crops]


class PassDataset(torch.utils.data.Dataset):
    """A map-style dataset whose samples depend on the pass over the data: :class:`~fkd_hf.FKDTrainer` calls
    :meth:`set_pass` when a pass begins, and the pass index is shared with (persistent) loader workers.
    Subclasses implement ``__getitems__`` (a batch of indices -> a list of samples) and ``__len__``."""

    def __init__(self):
        self._pass = torch.zeros(2, dtype=torch.int64).share_memory_()  # [pass index, single-crop tail]

    @property
    def pass_index(self) -> int:
        return int(self._pass[0])

    @property
    def in_tail(self) -> bool:
        """Whether this pass is the single-crop tail."""
        return bool(self._pass[1])

    def set_pass(self, pass_index: int, tail: bool = False) -> None:
        """Selects the crops of pass ``pass_index`` (the single-crop tail if ``tail``) for every sample read from
        now on, in every worker."""
        self._pass[0], self._pass[1] = pass_index, int(tail)

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]


class FKDCropDataset(PassDataset):
    """Joined image + label rows (see :func:`~fkd_hf.labels.attach.join_labels`) as FKD training samples.

    Each sample holds ``num_crops`` crops: ``pixel_values`` uint8 ``[num_crops, H, W, 3]``, each column of the label
    set's target type ``[num_crops, size]`` as stored (for class probabilities: the top-k indices and values), and
    ``sample_id`` (``pass * len(rows) + row``, a stable id for batch-level randomness). ``layout`` (a
    :class:`~fkd_hf.training.layouts.base.CropLayout`) says which crops: by default the grouped layout, where sample
    i is image i with its crops; a pass set with ``tail=True`` is the single-crop tail on top of it. Rows the label
    set records as skipped are left out. Call :meth:`set_pass` when a pass over the data begins (FKDTrainer does).
    Crops are replayed the way the label set records (``metadata.replay``), so they are the teacher's pixels.

    Every row is checked against its stored image key each time it is read: the first time this dataset object
    (each loader worker holds its own) reads the row, by the BLAKE2b key itself; after that, by comparing a 64-bit
    xxh3 of the bytes, some 50x cheaper to compute, with that of the bytes it verified (kept: 8 bytes a row).
    """

    def __init__(
        self,
        rows: datasets.Dataset,
        metadata: LabelSetMetadata,
        num_crops: int,
        size: Sequence[int],
        interpolation: str = "bilinear",
        seed: int = 0,
        image_column: str = "image",
        layout: CropLayout | None = None,
    ):
        if not 1 <= num_crops <= metadata.stored_crops:
            raise UsageError(
                f"num_crops must be between 1 and the {metadata.stored_crops} crops the label set stores per "
                f"image, got {num_crops}: lower num_crops, or generate labels with "
                f"`fkd-hf generate --stored_crops {num_crops}`."
            )
        check_replay_interpolation(metadata.replay, interpolation)  # fail early
        super().__init__()
        self.rows = rows.select_columns([image_column, *metadata.columns]).with_format("arrow")
        self.metadata = metadata
        self.num_crops = num_crops
        self.size = (int(size[0]), int(size[1]))
        self.interpolation = interpolation
        self.seed = int(seed)
        self.image_column = image_column
        skipped = np.asarray(metadata.skipped_rows, dtype=np.int64)
        self.row_ids = np.setdiff1d(np.arange(len(rows)), skipped)
        self.layout = layout if layout is not None else GroupedLayout()
        self.tail = SingleCropTail()
        self._verified = np.zeros(len(rows), dtype=np.uint64)  # xxh3 of each row's verified bytes (0: none yet)

    def __len__(self) -> int:
        return len(self.row_ids)

    def crop_plan(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The crops that the samples at ``indices`` replay: photos (positions in this dataset) and rounds (indices
        into the pass's :func:`select_crops`), each ``[len(indices), num_crops]``."""
        if self.in_tail:
            return self.tail.crop_plan(self, self.layout, indices)
        return self.layout.crop_plan(self, indices)

    def train_sampler(self) -> torch.utils.data.Sampler | None:
        """The sampler the layout needs for training; None: any (the Trainer shuffles)."""
        return self.layout.sampler(self)

    def _checked_bytes(self, row: int, value, key: str) -> bytes:
        """The encoded image of ``row`` after checking it against its stored ``key`` (see the class doc)."""
        data = image_bytes(value)
        fingerprint = xxhash.xxh3_64_intdigest(data) or 1  # 0 marks a row not verified yet
        if self._verified[row] != fingerprint:
            if image_key(data) != key:
                raise LabelMismatchError(row, key, image_key(data), self.metadata)
            self._verified[row] = fingerprint
        return data

    def read_crops(self, photos: Sequence[int], rounds: Sequence[Sequence[int]], out: np.ndarray | None = None):
        """Reads ``photos`` (dataset positions) with one Arrow take, decodes each once and replays its ``rounds``,
        into ``out[j]`` (uint8 ``[len(rounds[j]), H, W, 3]``) where given. Returns two lists, one item a photo: its
        crops' pixels, and their stored targets (``{column: [len(rounds[j]), size]}``)."""
        rows = self.row_ids[np.asarray(photos, dtype=np.int64)]
        table = self.rows[rows.tolist()]
        n, stored = len(rows), self.metadata.stored_crops
        boxes_all = fixed_size_to_numpy(table.column("crops"), (n, stored, 4))
        flips = fixed_size_to_numpy(table.column("flips"), (n, stored))
        stored_targets = {
            name: fixed_size_to_numpy(table.column(name), (n, stored, -1)) for name in self.metadata.target.columns
        }
        keys = table.column("image_key").to_pylist()
        images = table.column(self.image_column).to_pylist()
        pass_index, replay, pixels, targets = self.pass_index, self.metadata.replay, [], []
        for j, row in enumerate(rows.tolist()):
            image = decode_for_replay(self._checked_bytes(row, images[j], keys[j]), replay)
            chosen = select_crops(self.seed, row, pass_index, stored, self.num_crops)[np.asarray(rounds[j])]
            boxes = crops_to_pixels(boxes_all[j][chosen], *decoded_size(image))
            pixels.append(
                replay_crops(
                    image,
                    boxes,
                    flips[j][chosen],
                    self.size,
                    self.interpolation,
                    replay,
                    None if out is None else out[j],
                )
            )
            targets.append({name: values[j][chosen] for name, values in stored_targets.items()})
        return pixels, targets

    def read_plan(self, pairs: Iterable[tuple[int, int]]) -> dict[int, dict[int, Crop]]:
        """``{photo: {round: crop}}`` for ``(photo, round)`` pairs; each photo is decoded once."""
        wanted: dict[int, dict[int, None]] = {}
        for photo, round_ in pairs:
            wanted.setdefault(int(photo), {})[int(round_)] = None
        if not wanted:
            return {}
        read = zip(*self.read_crops(list(wanted), [list(r) for r in wanted.values()]))
        return {
            photo: {
                round_: (pixels[t], {name: values[t] for name, values in targets.items()})
                for t, round_ in enumerate(rounds)
            }
            for (photo, rounds), (pixels, targets) in zip(wanted.items(), read)
        }

    def new_pixels(self, samples: int) -> torch.Tensor:
        """Uninitialised uint8 ``[samples, num_crops, H, W, 3]`` for a batch; inside a loader worker in shared
        memory, as ``default_collate`` allocates a worker's batches, so it reaches the main process uncopied."""
        shape = (samples, self.num_crops, *self.size, 3)
        if torch.utils.data.get_worker_info() is None:
            return torch.empty(shape, dtype=torch.uint8)
        return torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(math.prod(shape))).view(shape)

    def pack(self, indices: Sequence[int], pixels: torch.Tensor, targets: dict[str, np.ndarray]) -> list[dict]:
        """Samples of ``indices`` whose tensors are slices of the batch's ``pixels`` and ``targets``
        (``{column: [samples, num_crops, size]}``)."""
        ids = self.pass_index * len(self.rows) + self.row_ids[np.asarray(indices, dtype=np.int64)]
        targets = {name: torch.from_numpy(values) for name, values in targets.items()}
        return [
            {"pixel_values": pixels[i], **{name: values[i] for name, values in targets.items()}, "sample_id": sample_id}
            for i, sample_id in enumerate(ids.tolist())
        ]

    def assemble(self, indices: Sequence[int], plan: tuple[np.ndarray, np.ndarray], crops) -> list[dict]:
        """Samples of ``indices`` from their ``plan`` (:meth:`crop_plan`) and ``crops`` (``crops[photo][round]``)."""
        chosen = [[crops[p][r] for p, r in zip(photos, rounds)] for photos, rounds in zip(*(a.tolist() for a in plan))]
        pixels = self.new_pixels(len(chosen))
        out = pixels.numpy()
        for i, sample in enumerate(chosen):
            for j, crop in enumerate(sample):
                out[i, j] = crop[0]
        targets = {
            name: np.array([[crop[1][name] for crop in sample] for sample in chosen])
            for name in self.metadata.target.columns
        }
        return self.pack(indices, pixels, targets)

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """The samples at ``indices`` (a batch), read as the layout reads them; in the tail, each crop decodes its
        photo."""
        if not self.in_tail:
            return self.layout.read(self, indices)
        plan = self.crop_plan(indices)
        return self.assemble(indices, plan, self.read_plan(zip(plan[0].ravel(), plan[1].ravel())))


def eval_transform(image: Image.Image, size: Sequence[int], crop_pct: float, interpolation: str) -> Image.Image:
    """timm's evaluation transform: resize the shorter side to ``floor(size / crop_pct)``, then centre-crop ``size``.

    Matches ``timm.data.create_transform(..., is_training=False)`` (torchvision ``Resize`` + ``CenterCrop``).
    """
    height, width = int(size[0]), int(size[1])
    scale = math.floor(min(height, width) / crop_pct)
    short, long = sorted((image.width, image.height))
    new_short, new_long = scale, int(scale * long / short)
    new_w, new_h = (new_short, new_long) if image.width <= image.height else (new_long, new_short)
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), resample_filter(interpolation))
    top, left = int(round((new_h - height) / 2.0)), int(round((new_w - width) / 2.0))
    return image.crop((left, top, left + width, top + height))


class EvalDataset(torch.utils.data.Dataset):
    """A labelled image split for evaluation: ``pixel_values`` uint8 ``[H, W, 3]`` after :func:`eval_transform`, and
    ``labels`` mapped to the label set's class order by ``label_map`` (dataset label -> class index)."""

    def __init__(
        self,
        rows: datasets.Dataset,
        size: Sequence[int],
        crop_pct: float,
        interpolation: str,
        image_column: str = "image",
        label_column: str = "label",
        label_map: Sequence[int] | None = None,
    ):
        self.rows = rows.select_columns([image_column, label_column])
        self.size, self.crop_pct, self.interpolation = (int(size[0]), int(size[1])), float(crop_pct), interpolation
        self.image_column, self.label_column = image_column, label_column
        self.label_map = None if label_map is None else np.asarray(label_map, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        batch = self.rows[list(indices)]
        samples = []
        for value, label in zip(batch[self.image_column], batch[self.label_column]):
            image = eval_transform(decode_image(image_bytes(value)), self.size, self.crop_pct, self.interpolation)
            label = int(label) if self.label_map is None else int(self.label_map[label])
            samples.append({"pixel_values": torch.from_numpy(np.array(image)), "labels": label})
        return samples


def _stacked(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``default_collate`` of tensors; no copy where they are the consecutive slices of one tensor (as the samples of
    one :class:`FKDCropDataset` batch are), which is then returned."""
    first = tensors[0]
    storage, offset, size = first.untyped_storage(), first.storage_offset(), first.numel()
    if all(
        t.is_contiguous()
        and t.dtype == first.dtype
        and t.shape == first.shape
        and t.storage_offset() == offset + i * size
        and t.untyped_storage().data_ptr() == storage.data_ptr()
        for i, t in enumerate(tensors)
    ):
        return first.new_empty(0).set_(storage, offset, (len(tensors), *first.shape))
    return default_collate(tensors)


def collate_crops(samples: list[dict]) -> dict:
    """Stacks samples of :class:`FKDCropDataset` or :class:`EvalDataset` into a batch.

    ``pixel_values`` becomes uint8 ``[N, 3, H, W]`` in channels-last memory (N = samples x crops, sample-major). A
    training batch (its samples have a ``sample_id``) also holds the stored targets, each ``[N, size]``, and the list
    ``sample_ids``; an evaluation batch holds ``labels``.
    """
    batch = {
        key: _stacked(values) if isinstance(values[0], torch.Tensor) else default_collate(values)
        for key, values in ((key, [sample[key] for sample in samples]) for key in samples[0])
    }
    batch["pixel_values"] = batch["pixel_values"].flatten(0, -4).permute(0, 3, 1, 2)
    if "sample_id" in batch:
        batch["sample_ids"] = batch.pop("sample_id").tolist()
        for name in batch.keys() - {"pixel_values", "sample_ids"}:  # the stored targets, [samples, crops, size]
            batch[name] = batch[name].flatten(0, 1)
    return batch
