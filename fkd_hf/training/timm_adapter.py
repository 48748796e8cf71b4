"""fkd-hf batches for training loops written for ``(input, target)`` pairs, such as timm's ``train.py``.

timm's ``train_one_epoch`` runs ``for input, target in loader`` and reads ``len(loader)``; with ``--no-prefetcher
--mixup 0 --cutmix 0 --smoothing 0`` its loss is ``nn.CrossEntropyLoss``, which takes probability targets, so FKD's
soft cross-entropy is what it computes. :class:`SoftTargetLoader` turns a loader of :class:`FKDCropDataset` batches
(uint8 crops and stored targets) into such pairs: normalised float pixels and dense targets.

What ``train.py`` reads of its ``loader_train`` (the interface of timm's own ``PrefetchLoader``, which this class
keeps): ``len(loader)``; ``loader.batch_sampler`` and ``loader.sampler``, whose ``set_epoch`` it calls at each epoch
where they have one (every epoch in timm's main branch, distributed runs only in timm 1.0.28 and before);
``loader.dataset``; and the ``(input, target)`` pairs of each epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from ..models.pixels import normalize

__all__ = ["SoftTargetLoader"]


class _EpochSampler:
    """``loader.sampler`` or ``loader.batch_sampler`` of a :class:`SoftTargetLoader`: the wrapped loader's, read
    through, whose ``set_epoch`` sets the loader's pass (and is passed on where the wrapped one has it)."""

    def __init__(self, owner: SoftTargetLoader, wrapped):
        self._owner, self._wrapped = owner, wrapped

    def __iter__(self):
        return iter(self._wrapped)

    def __len__(self) -> int:
        return len(self._wrapped)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._wrapped, name)

    def set_epoch(self, epoch: int) -> None:
        self._owner.set_epoch(epoch)


class SoftTargetLoader:
    """``(pixels, targets)`` batches from ``loader``, a DataLoader over an :class:`~fkd_hf.training.FKDCropDataset`
    with :func:`~fkd_hf.training.collate_crops`: float32 pixels ``[N, 3, H, W]`` normalised with ``mean`` and
    ``std`` on ``device``, and dense targets ``[N, D]`` (decoded by the label set's target type: for class
    probabilities, ``D`` is the class count).

    Each iteration is one pass over the data and replays the next ``num_crops`` stored crops of every image (it
    calls the dataset's ``set_pass``). :meth:`set_epoch` makes the next iteration pass ``epoch`` (a resumed run
    replays the crops of its epoch), and so does ``set_epoch`` on ``sampler`` and ``batch_sampler``, which are the
    wrapped loader's (a ``DistributedSampler`` still gets its ``set_epoch``). ``dataset`` is the training set.

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
    def sampler(self) -> _EpochSampler:
        return _EpochSampler(self, self.loader.sampler)

    @property
    def batch_sampler(self) -> _EpochSampler | None:
        batch_sampler = self.loader.batch_sampler
        return None if batch_sampler is None else _EpochSampler(self, batch_sampler)

    def set_epoch(self, epoch: int) -> None:
        """Makes the next iteration pass ``epoch``, and passes ``epoch`` on to the wrapped loader's samplers."""
        self.epoch = epoch
        for sampler in {id(s): s for s in (self.loader.sampler, self.loader.batch_sampler)}.values():
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        metadata = self.dataset.metadata
        self.dataset.set_pass(self.epoch)
        self.epoch += 1
        for batch in self.loader:
            pixels = normalize(batch["pixel_values"].to(self.device, non_blocking=True), self.mean, self.std)
            stored = {name: batch[name].to(self.device, non_blocking=True) for name in metadata.target.columns}
            yield pixels, metadata.target.decode(stored, metadata)
