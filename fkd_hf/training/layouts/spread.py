"""The spread crop layout (``--crop_layout spread``): each photo is still decoded once per pass, but its ``num_crops``
crops go to different batches, so a batch of B crops holds B different photos, as in single-crop training.

Batch semantics are those of the grouped layout: ``per_device_train_batch_size`` = b counts samples of
``num_crops`` = m crops, a step holds ``B = b x m`` crops per device, a pass holds ``len(dataset)`` samples (one
per photo) and counts m FKD epochs. A spread sample is m crops of m different photos.

Layout of one pass on one process (a pure function of ``(seed, pass, rank, world_size, b, m, lanes, n)``):

* Photos: the pass's permutation of all photos, cut into chunks of b; chunk g belongs to rank ``g % world_size``,
  which is the rank that Accelerate hands global batch g (``BatchSamplerShard``), so each rank decodes only its own
  photos. Its local step s (global batch ``s * world_size + rank``) holds its samples ``s*b .. s*b + b - 1``.
* Superblocks of ``lanes x m`` steps and ``lanes x B`` photos: lane l of a superblock is a block of B photos; in
  round j (j = 0..m-1) step ``start + j*lanes + l`` holds crop j (the j-th of :func:`select_crops`) of each of the
  block's B photos, in a random order. A photo's crops are thus ``lanes`` steps apart and all in steps that are
  equal modulo ``lanes``. The last photos of a rank fill a superblock with fewer lanes; the final r < B photos
  (the rest) go round-major: all r with round 0, then all with round 1, ..., so their steps hold r photos each.
* Decoding: the first time a loader worker needs a photo it decodes it once and replays all the crops it will serve
  itself (DataLoader workers serve batches in turn: worker w gets the steps ``w, w + W, ...``); it keeps them until
  they are served. With ``dataloader_num_workers`` (W) dividing ``lanes``, each photo is decoded once per pass;
  otherwise photos are decoded up to ``W / gcd(W, lanes)`` times (same batches). The rest, and a last superblock
  whose lanes W does not divide, are spread over consecutive steps: their photos may be decoded by several workers.
* Resuming: the Trainer skips batches in the sampler, so skipped batches are not read; the first batches after the
  skip decode the photos they need and replay exactly the same crops.
* The single-crop tail (:mod:`.tail`) runs over this process's photos of the pass, with a window of ``B - 1`` crops,
  so a step's crops are of different photos there too.

Memory: the crops waiting in a process's workers peak at ``lanes x B x (m - 1)`` crops, after the first round of a
superblock: 55 MiB per lane at ImageNet size (224 px, 147 KiB a crop) with m = 4 and B = 128 (FKD's ``-b 1024``
on 8 GPUs: 32 photos x 4 per device), 110 MiB at B = 256; 441 MiB and 882 MiB with the default 8 lanes.
``spread_memory`` (GiB per process) sizes the lanes from a memory budget instead (:func:`lanes_for_memory`): the
most that fit, at most :data:`MAX_SPREAD_LANES`, a multiple of the loader workers (one decode per photo); at
224 px with 4 workers, 2 GiB gives 36 lanes at B = 128 (1.94 GiB) and 16 at B = 256 (1.72 GiB). It is not the
default: more lanes space a photo's crops further, but every round of a superblock repeats its lanes' batches (the
same photos together), and on imagewoof-mini 25 lanes scored 2.9 points below 8 (benchmarks/RESULTS.md).
Each worker also holds the pass's photo order of its rank (8 bytes a photo: 10 MiB for ImageNet on one process), and
in a single-crop tail pass its m single-crop orders (4 bytes a photo each) instead of waiting crops.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..data import Crop, FKDCropDataset
from .base import CropLayout, CropSource

__all__ = [
    "MAX_SPREAD_LANES",
    "SPREAD_STREAM",
    "lanes_for_memory",
    "rank_photos",
    "SpreadSteps",
    "SpreadLayout",
    "SpreadCropDataset",
]

logger = logging.getLogger(__name__)

SPREAD_STREAM = 0x5B2EAD  # keeps the layout's random streams apart from select_crops' and the tail's
MAX_SPREAD_LANES = 64  # lanes sized from memory stop here: a photo's crops are then a quarter of a pass apart or more


def lanes_for_memory(
    memory_gib: float, batch_size: int, num_crops: int, input_size: Sequence[int], workers: int = 0
) -> int:
    """The lanes whose waiting crops (``lanes x B x (m - 1)`` uint8 crops of ``input_size``, B = ``batch_size`` x
    m) fit ``memory_gib`` GiB: at least 1, at most :data:`MAX_SPREAD_LANES`, rounded down to a multiple of
    ``workers`` where one fits (each photo is then decoded once per pass)."""
    per_lane = batch_size * num_crops * (num_crops - 1) * 3 * int(input_size[0]) * int(input_size[1])
    lanes = MAX_SPREAD_LANES if per_lane == 0 else int(memory_gib * 2**30 // per_lane)
    lanes = max(1, min(MAX_SPREAD_LANES, lanes))
    return lanes - lanes % workers if workers > 1 and lanes >= workers else lanes


def rank_photos(seed: int, pass_index: int, num_photos: int, batch_size: int, rank: int, world_size: int) -> np.ndarray:
    """The photos (dataset positions) that process ``rank`` trains on in pass ``pass_index``, in pass order."""
    order = np.random.default_rng([seed, SPREAD_STREAM, pass_index]).permutation(num_photos)
    return order[(np.arange(num_photos) // batch_size) % world_size == rank]


class SpreadSteps:
    """Where the crops of ``num_photos`` photos go, step by step (module doc); photos are local indices."""

    def __init__(
        self,
        num_photos: int,
        batch_size: int,
        num_crops: int,
        lanes: int,
        seed: int = 0,
        pass_index: int = 0,
        rank: int = 0,
    ):
        self.num_photos, self.batch_size, self.num_crops = num_photos, batch_size, num_crops
        self.seed, self.pass_index, self.rank = seed, pass_index, rank
        self.block = batch_size * num_crops  # B: photos of a lane's block, crops of a step
        self.lanes = min(lanes, num_photos // self.block)
        self.superblocks = num_photos // (self.lanes * self.block) if self.lanes else 0
        spread = self.superblocks * self.lanes
        self.tail_lanes = (num_photos - spread * self.block) // self.block
        self.rest_step = (spread + self.tail_lanes) * num_crops  # the first step of the rest, fewer than B photos
        self.rest_photo = (spread + self.tail_lanes) * self.block
        self.rest = num_photos - self.rest_photo

    @property
    def max_cached_crops(self) -> int:
        """The most crops waiting to be served at once, in one process (reached after a superblock's first round)."""
        return max(self.lanes * self.block, self.rest) * (self.num_crops - 1)

    def step(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Step ``step``'s crops: photos and rounds, ``[B]`` (fewer in the last step)."""
        m, crops = self.num_crops, self.block
        if step >= self.rest_step:  # round-major: every photo of the rest, then again with the next round
            position = (step - self.rest_step) * crops + np.arange(crops)
            rounds, photos = np.divmod(position[position < self.rest * m], self.rest)
            return self.rest_photo + photos, rounds
        superblock, rel = divmod(step, self.lanes * m)
        round_, lane = divmod(rel, self.lanes if superblock < self.superblocks else self.tail_lanes)
        order = np.random.default_rng([self.seed, SPREAD_STREAM, self.pass_index, self.rank, step])
        return (superblock * self.lanes + lane) * crops + order.permutation(crops), np.full(crops, round_)

    def round_steps(self, photos: np.ndarray) -> np.ndarray:
        """``[len(photos), m]``: the step that serves each round of each photo."""
        photos, rounds = np.asarray(photos, dtype=np.int64), np.arange(self.num_crops)
        steps = np.empty((len(photos), self.num_crops), dtype=np.int64)
        rest = photos >= self.rest_photo
        steps[rest] = self.rest_step + (photos[rest, None] - self.rest_photo + rounds * self.rest) // self.block
        if not rest.all():
            spread = photos[~rest]
            superblock, offset = np.divmod(spread, self.lanes * self.block)
            lanes = np.where(superblock < self.superblocks, self.lanes, self.tail_lanes)
            first = superblock * self.lanes * self.num_crops + offset // self.block
            steps[~rest] = first[:, None] + rounds * lanes[:, None]
        return steps


@dataclasses.dataclass
class _Waiting:
    """Crops of one photo that this worker replayed and will serve later."""

    last_step: int
    crops: dict[int, Crop]


class SpreadLayout(CropLayout):
    """The spread layout of one process (module doc): samples are read in order, and a sample holds ``num_crops``
    crops of different photos. ``batch_size`` is the loader's batch (samples per device step); ``rank`` and
    ``world_size`` are the process's."""

    name = "spread"

    def __init__(self, batch_size: int, lanes: int = 8, rank: int = 0, world_size: int = 1):
        if batch_size < 1 or lanes < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"Need batch_size >= 1, lanes >= 1 and 0 <= rank < world_size, got {batch_size}, "
                f"{lanes}, {rank}, {world_size}."
            )
        self.batch_size, self.lanes, self.rank, self.world_size = batch_size, lanes, rank, world_size
        self._steps: SpreadSteps | None = None
        self._photos = np.zeros(0, dtype=np.int64)
        self._waiting: dict[int, _Waiting] = {}

    @classmethod
    def check(cls, config) -> None:
        if config.spread_lanes < 1:
            raise ValueError(f"spread_lanes must be at least 1, got {config.spread_lanes}.")
        if config.spread_memory is not None and not 0 < config.spread_memory < math.inf:
            raise ValueError(f"spread_memory must be a positive number of GiB, got {config.spread_memory}.")
        if config.accelerator_config.split_batches or config.accelerator_config.dispatch_batches:
            raise ValueError(
                "crop_layout 'spread' gives each process its own photos: turn off the accelerator_config "
                "options split_batches and dispatch_batches."
            )
        workers = config.dataloader_num_workers
        if workers > 1 and config.spread_memory is None and config.spread_lanes % workers:
            logger.warning(
                f"spread_lanes={config.spread_lanes} is not a multiple of dataloader_num_workers={workers}: "
                "photos are decoded more than once per pass; set dataloader_num_workers to a divisor of "
                "spread_lanes."
            )

    @classmethod
    def options(cls, config, input_size: Sequence[int] | None = None) -> dict[str, Any]:
        """``spread_lanes``, or the lanes sized from ``spread_memory`` at ``input_size`` (default: the config's, else
        224 px), recorded with it."""
        if config.spread_memory is None:
            return {"spread_lanes": config.spread_lanes}
        size = input_size or (config.input_size or 224,) * 2
        lanes = lanes_for_memory(
            config.spread_memory,
            config.per_device_train_batch_size,
            config.num_crops,
            size,
            config.dataloader_num_workers,
        )
        return {"spread_lanes": lanes, "spread_memory": config.spread_memory}

    @classmethod
    def create(cls, options: Mapping[str, Any], batch_size: int, rank: int = 0, world_size: int = 1) -> SpreadLayout:
        return cls(batch_size, options["spread_lanes"], rank, world_size)

    def steps(self, dataset: CropSource) -> SpreadSteps:
        """The steps of the current pass on this process (built, with the pass's photos, when a pass begins)."""
        if self._steps is None or self._steps.pass_index != dataset.pass_index:
            pass_index = dataset.pass_index
            self._photos = rank_photos(
                dataset.seed, pass_index, len(dataset), self.batch_size, self.rank, self.world_size
            )
            self._steps = SpreadSteps(
                len(self._photos), self.batch_size, dataset.num_crops, self.lanes, dataset.seed, pass_index, self.rank
            )
            self._waiting.clear()
        return self._steps

    @property
    def cached_crops(self) -> int:
        """Crops this process (worker) holds for later batches."""
        return sum(len(waiting.crops) for waiting in self._waiting.values())

    def sampler(self, dataset: CropSource) -> torch.utils.data.Sampler:
        return torch.utils.data.SequentialSampler(dataset)

    def local_samples(self, dataset: CropSource, indices: Sequence[int]) -> np.ndarray:
        """Global batch g = index // b is local step g // world_size; indices past this process's photos wrap
        around, as Accelerate's ``even_batches`` padding does."""
        indices = np.asarray(indices, dtype=np.int64)
        batch, offset = np.divmod(indices, self.batch_size)
        return ((batch // self.world_size) * self.batch_size + offset) % max(1, self.steps(dataset).num_photos)

    def pass_photos(self, dataset: CropSource) -> np.ndarray:
        self.steps(dataset)
        return self._photos

    def tail_window(self, dataset: CropSource) -> int:
        return self.batch_size * dataset.num_crops - 1  # a step's crops are of different photos

    def _plan_steps(self, dataset: CropSource, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Local photos and rounds ``[len(indices), m]`` of the samples at ``indices``, and the steps they are in."""
        local, layout = self.local_samples(dataset, indices), self.steps(dataset)
        m, steps = dataset.num_crops, {}
        photos, rounds = np.empty((len(local), m), np.int64), np.empty((len(local), m), np.int64)
        for i, (step, offset) in enumerate(zip(*np.divmod(local, self.batch_size))):
            if step not in steps:
                steps[step] = layout.step(int(step))
            photos[i], rounds[i] = (a[offset * m : (offset + 1) * m] for a in steps[step])
        return photos, rounds, sorted(steps)

    def crop_plan(self, dataset: CropSource, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        local, rounds, _ = self._plan_steps(dataset, indices)
        return self._photos[local], rounds

    def read(self, dataset: CropSource, indices: Sequence[int]) -> list[dict]:
        """Serves a batch from the crops waiting in this worker, decoding only the photos it has not seen."""
        local, rounds, steps = self._plan_steps(dataset, indices)
        photos = self._photos[local]
        self._replay_missing(dataset, local, rounds, steps[0])
        crops = {}
        for photo, round_ in zip(photos.ravel().tolist(), rounds.ravel().tolist()):
            crops.setdefault(photo, {})[round_] = self._waiting[photo].crops.pop(round_)
        self._waiting = {p: w for p, w in self._waiting.items() if w.crops and w.last_step > steps[-1]}
        return dataset.assemble(indices, (photos, rounds), crops)

    def _replay_missing(self, dataset: CropSource, local: np.ndarray, rounds: np.ndarray, step: int) -> None:
        """Decodes the photos of this batch whose crops are not waiting; on a photo's first sight, also replays its
        later crops in the steps this worker serves (``step``, ``step + W``, ...), and keeps them."""
        info = torch.utils.data.get_worker_info()
        workers = 1 if info is None else info.num_workers
        wanted: dict[int, set[int]] = {}
        for photo, round_ in zip(local.ravel().tolist(), rounds.ravel().tolist()):
            waiting = self._waiting.get(int(self._photos[photo]))
            if waiting is None or round_ not in waiting.crops:
                wanted.setdefault(photo, set()).add(round_)
        new = [photo for photo in wanted if int(self._photos[photo]) not in self._waiting]
        last = {}
        for photo, steps in zip(new, self.steps(dataset).round_steps(np.asarray(new, dtype=np.int64))):
            wanted[photo].update(np.flatnonzero((steps >= step) & ((steps - step) % workers == 0)).tolist())
            last[int(self._photos[photo])] = int(steps[-1])
        pairs = [(self._photos[photo], round_) for photo, rs in wanted.items() for round_ in sorted(rs)]
        for photo, crops in dataset.read_plan(pairs).items():
            self._waiting.setdefault(photo, _Waiting(last.get(photo, step), {})).crops.update(crops)


class SpreadCropDataset(FKDCropDataset):
    """:class:`FKDCropDataset` (its arguments) in the spread layout: ``batch_size``, ``lanes``, ``rank`` and
    ``world_size`` as in :class:`SpreadLayout`."""

    def __init__(self, *args, batch_size: int, lanes: int = 8, rank: int = 0, world_size: int = 1, **kwargs):
        super().__init__(*args, layout=SpreadLayout(batch_size, lanes, rank, world_size), **kwargs)


LAYOUT = SpreadLayout
