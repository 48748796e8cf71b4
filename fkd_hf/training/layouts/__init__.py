"""Crop layouts: where the ``num_crops`` crops that each photo replays in a pass go, as registered strategies.

``grouped`` is FKD's loader (a photo's crops in one batch); ``spread`` puts them in different batches, still one
decode per photo and pass. The single-crop tail (:mod:`.tail`) is a schedule on top of either. A new layout is one
module here, whose ``LAYOUT`` is a :class:`~.base.CropLayout` subclass, and one line in :data:`LAYOUTS`.
:func:`plan_layout` is the one place that turns an ``FKDConfig`` into a layout plan.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import CropLayout

__all__ = ["LAYOUTS", "LayoutPlan", "layout_class", "plan_layout"]

LAYOUTS = {"grouped": "grouped", "spread": "spread"}  # crop_layout name -> module of this package


def layout_class(name: str) -> type[CropLayout]:
    """The layout class registered as ``name``."""
    if name not in LAYOUTS:
        raise ValueError(f"crop_layout must be one of {', '.join(LAYOUTS)}, got {name!r}.")
    return importlib.import_module(f"{__name__}.{LAYOUTS[name]}").LAYOUT


@dataclasses.dataclass(frozen=True)
class LayoutPlan:
    """A run's crop layout as its config sets it: the layout's name, its options (by ``FKDConfig`` names) and
    whether the last pass is the single-crop tail. The student card records it."""

    name: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))
    single_crop_tail: bool = False

    def create(self, batch_size: int, rank: int = 0, world_size: int = 1) -> CropLayout:
        """The layout of process ``rank`` of ``world_size``, loading ``batch_size`` samples per step."""
        return layout_class(self.name).create(self.options, batch_size, rank, world_size)


def plan_layout(config, input_size: Sequence[int] | None = None) -> LayoutPlan:
    """The layout plan of ``config`` (an ``FKDConfig``) for a student of ``input_size``."""
    options = layout_class(config.crop_layout).options(config, input_size)
    return LayoutPlan(config.crop_layout, types.MappingProxyType(dict(options)), bool(config.single_crop_tail))
