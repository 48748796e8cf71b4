"""fkd-hf batches for training loops written for ``(input, target)`` pairs, such as timm's ``train.py``.

timm's ``train_one_epoch`` runs ``for input, target in loader`` and reads ``len(loader)``; with ``--no-prefetcher
--mixup 0 --cutmix 0 --smoothing 0`` its loss is ``nn.CrossEntropyLoss``, which takes probability targets, so FKD's
soft cross-entropy is what it computes. :class:`SoftTargetLoader` turns a loader of :class:`FKDCropDataset` batches
(uint8 crops and stored top-k labels) into such pairs: normalised float pixels and dense soft targets.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from ..labels.kinds import reconstruct
from ..models.pixels import normalize

__all__ = ["SoftTargetLoader"]


class SoftTargetLoader:
    """``(pixels, targets)`` batches from ``loader``, a DataLoader over an :class:`~fkd_hf.training.FKDCropDataset`
    with :func:`~fkd_hf.training.collate_crops`: float32 pixels ``[N, 3, H, W]`` normalised with ``mean`` and
    ``std`` on ``device``, and dense targets ``[N, classes]``.

    Each iteration is one pass over the data and replays the next ``num_crops`` stored crops of every image (it
    calls the dataset's ``set_pass``). :meth:`set_epoch` sets the pass explicitly and is passed on to a
    ``DistributedSampler``; ``sampler`` is the loader itself, for loops that call ``loader.sampler.set_epoch``.

    >>> loader_train = SoftTargetLoader(DataLoader(train_set, 64, shuffle=True, collate_fn=collate_crops),
    ...                                 data_config["mean"], data_config["std"], device)  # doctest: +SKIP
    """

    def __init__(self, loader: DataLoader, mean: Sequence[float], std: Sequence[float], device=None):
        self.loader = loader
        self.dataset = loader.dataset
        self.mean, self.std = list(mean), list(std)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def sampler(self) -> SoftTargetLoader:
        return self

    def set_epoch(self, epoch: int) -> None:
        """Makes the next iteration pass ``epoch``."""
        self.epoch = epoch
        if hasattr(self.loader.sampler, "set_epoch"):
            self.loader.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        metadata = self.dataset.metadata
        self.dataset.set_pass(self.epoch)
        self.epoch += 1
        for batch in self.loader:
            pixels = normalize(batch["pixel_values"].to(self.device, non_blocking=True), self.mean, self.std)
            indices = batch["topk_indices"].to(self.device, non_blocking=True)
            values = batch["topk_values"].to(self.device, non_blocking=True)
            yield pixels, reconstruct(indices, values, metadata.kind, metadata.num_classes)
