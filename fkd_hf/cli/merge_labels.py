"""``fkd-hf merge-labels``: merge label sets that share crops (an ensemble of teachers) into one.

    fkd-hf generate --dataset imagefolder:photos/train --teacher teacher-a --output_dir labels/a
    fkd-hf generate --dataset imagefolder:photos/train --teacher teacher-b --crops_from labels/a --output_dir labels/b
    fkd-hf merge-labels labels/a labels/b --output_dir labels/ensemble --weights 2 1 --kind marginal_smoothing --k 5

Each set's targets are reconstructed, averaged with the weights (default equal), and stored again as --kind with
--k classes (default: those of the first set). The sets must store the same images, crops and flips.
"""

from __future__ import annotations

import dataclasses

from ..labels.kinds import KINDS, check_kind
from .arguments import parse_config

PROG = "fkd-hf merge-labels"


@dataclasses.dataclass
class MergeLabelsConfig:
    """Options of ``fkd-hf merge-labels``; the label sets may also come first, without ``--label_sets``."""

    label_sets: list[str] = dataclasses.field(metadata={"help": "Two or more label sets (folders or Hub ids)."})
    output_dir: str = dataclasses.field(metadata={"help": "New or empty folder for the merged label set."})
    weights: list[float] | None = dataclasses.field(default=None, metadata={"help": "One weight per label set."})
    kind: str | None = dataclasses.field(default=None, metadata={"help": f"One of {', '.join(KINDS)} (default: "
                                                                          "the first set's)."})  # fmt: skip
    k: int | None = dataclasses.field(default=None, metadata={"help": "Classes stored per crop."})

    def __post_init__(self):
        if len(self.label_sets) < 2:
            raise ValueError(f"give at least two label sets to merge, got {len(self.label_sets)}.")
        if self.weights is not None and len(self.weights) != len(self.label_sets):
            raise ValueError(f"give one weight per label set ({len(self.label_sets)}), got {len(self.weights)}.")
        if self.kind is not None:
            check_kind(self.kind)


def main(argv: list[str]) -> int:
    (config,) = parse_config([MergeLabelsConfig], argv, prog=PROG, description=__doc__, positional="label_sets")
    from ..labels import merge_label_sets

    metadata = merge_label_sets(config.label_sets, config.output_dir, config.weights, config.kind, config.k)
    print(f"Merged label set in {config.output_dir}: {metadata.num_rows} rows, {metadata.kind} k={metadata.k}, "
          f"teachers {metadata.teacher}.")  # fmt: skip
    return 0
