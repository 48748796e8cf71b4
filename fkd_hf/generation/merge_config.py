"""``MergeLabelsConfig``: the options of ``fkd-hf merge-labels``. Importing it loads neither torch nor the datasets
library, so ``fkd-hf merge-labels --help`` prints at once."""

from __future__ import annotations

import dataclasses
import math

from ..labels.kinds import KINDS, check_kind

__all__ = ["MergeLabelsConfig"]


@dataclasses.dataclass
class MergeLabelsConfig:
    """Options of ``fkd-hf merge-labels``; the label sets may also come first, without ``--label_sets``."""

    label_sets: list[str] = dataclasses.field(metadata={"help": "Two or more label sets (folders or Hub ids)."})
    output_dir: str = dataclasses.field(metadata={"help": "New or empty folder for the merged label set."})
    weights: list[float] | None = dataclasses.field(default=None, metadata={"help": "One weight per label set."})
    kind: str | None = dataclasses.field(
        default=None, metadata={"help": f"One of {', '.join(KINDS)} (default: the first set's)."}
    )
    k: int | None = dataclasses.field(default=None, metadata={"help": "Classes stored per crop."})

    def __post_init__(self):
        if len(self.label_sets) < 2:
            raise ValueError(f"give at least two label sets to merge, got {len(self.label_sets)}.")
        if self.weights is not None and len(self.weights) != len(self.label_sets):
            raise ValueError(f"give one weight per label set ({len(self.label_sets)}), got {len(self.weights)}.")
        if self.weights is not None and not (
            all(0 < w < math.inf for w in self.weights) and math.isfinite(sum(self.weights))
        ):
            raise ValueError(f"--weights must be positive finite numbers with a finite sum, got {self.weights}.")
        if self.kind is not None:
            check_kind(self.kind)
