"""What a crop layout is: the object an :class:`~fkd_hf.training.FKDCropDataset` asks, in each pass, which crops its
samples hold and how a batch of them is read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Sampler

__all__ = ["CropLayout", "CropSource"]


class CropSource(Protocol):
    """What a layout uses of its dataset (an :class:`~fkd_hf.training.FKDCropDataset`)."""

    num_crops: int
    seed: int

    @property
    def pass_index(self) -> int: ...

    def __len__(self) -> int: ...

    def read_crops(self, photos: Sequence[int], rounds: Sequence[Sequence[int]], out: np.ndarray | None = None):
        """Decodes each photo once and replays its rounds (into ``out``): pixels and stored targets, by photo."""

    def read_plan(self, pairs: Iterable[tuple[int, int]]) -> dict:
        """``{photo: {round: crop}}`` for ``(photo, round)`` pairs; each photo decoded once."""

    def new_pixels(self, samples: int) -> torch.Tensor:
        """Room for a batch's crops, uint8 ``[samples, num_crops, H, W, 3]``."""

    def pack(self, indices: Sequence[int], pixels: torch.Tensor, targets: dict[str, np.ndarray]) -> list[dict]:
        """The samples of ``indices`` from a batch's pixels and stored targets."""

    def assemble(self, indices: Sequence[int], plan: tuple[np.ndarray, np.ndarray], crops) -> list[dict]:
        """The samples of ``indices`` from their plan and ``crops[photo][round]``."""


class CropLayout:
    """Where the ``num_crops`` crops of each photo go in a pass, for one dataset: each loader worker holds its own
    copy, so a layout may keep crops it replayed ahead for later batches.

    A layout is registered by name in :data:`fkd_hf.training.layouts.LAYOUTS`. ``FKDConfig`` runs :meth:`check`;
    :func:`~fkd_hf.training.layouts.plan_layout` reads :meth:`options` from a config (the student card records
    them) and :meth:`create` makes the layout of one process from them. The defaults are those of a layout that
    reads samples in any order from all photos; the single-crop tail (:mod:`.tail`) runs on :meth:`local_samples`,
    :meth:`pass_photos`, ``rank`` and :meth:`tail_window`.
    """

    name: ClassVar[str]
    rank = 0  # the process whose photos this layout lays out (tail orders are drawn per rank)

    @classmethod
    def check(cls, config) -> None:
        """Raises on ``config`` values this layout cannot train with (warns on wasteful ones)."""

    @classmethod
    def options(cls, config, input_size: Sequence[int] | None = None) -> dict[str, Any]:
        """This layout's settings in ``config``, by their ``FKDConfig`` names (some sized for the student's
        ``input_size``)."""
        return {}

    @classmethod
    def create(cls, options: Mapping[str, Any], batch_size: int, rank: int = 0, world_size: int = 1) -> CropLayout:
        """The layout of process ``rank`` of ``world_size``, loading ``batch_size`` samples per step."""
        return cls()

    def sampler(self, dataset: CropSource) -> Sampler | None:
        """The training sampler this layout needs; None: any (the Trainer shuffles)."""
        return None

    def local_samples(self, dataset: CropSource, indices: Sequence[int]) -> np.ndarray:
        """This process's sample positions (into :meth:`pass_photos`) of sampler ``indices``."""
        return np.asarray(indices, dtype=np.int64)

    def pass_photos(self, dataset: CropSource) -> np.ndarray | None:
        """The photos (dataset positions) this process trains on in the current pass; None: all, in dataset order."""
        return None

    def tail_window(self, dataset: CropSource) -> int:
        """How many crops after each crop of a tail pass must be of other photos."""
        return 0

    def crop_plan(self, dataset: CropSource, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Photos (dataset positions) and rounds, each ``[len(indices), m]``, of the samples at ``indices``."""
        raise NotImplementedError

    def read(self, dataset: CropSource, indices: Sequence[int]) -> list[dict]:
        """The samples at ``indices`` (a batch) of a regular pass."""
        raise NotImplementedError
