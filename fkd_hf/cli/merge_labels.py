"""``fkd-hf merge-labels``: merge label sets that share crops (an ensemble of teachers) into one.

    fkd-hf generate --dataset imagefolder:photos/train --teacher teacher-a --output_dir labels/a
    fkd-hf generate --dataset imagefolder:photos/train --teacher teacher-b --crops_from labels/a --output_dir labels/b
    fkd-hf merge-labels labels/a labels/b --output_dir labels/ensemble --weights 2 1 --kind marginal_smoothing --k 5

Each set's targets are reconstructed, averaged with the weights (default equal), and stored again as --kind with
--k classes (default: those of the first set). The sets must store the same images, crops and flips.
"""

from __future__ import annotations

from ..generation.merge_config import MergeLabelsConfig
from .arguments import parse_config

PROG = "fkd-hf merge-labels"


def main(argv: list[str]) -> int:
    (config,) = parse_config([MergeLabelsConfig], argv, prog=PROG, description=__doc__, positional="label_sets")
    from ..hub.label_card import write_label_set_card
    from ..labels import merge_label_sets

    metadata = merge_label_sets(
        config.label_sets, config.output_dir, config.weights, config.kind, config.k, card=write_label_set_card
    )
    print(
        f"Merged label set in {config.output_dir}: {metadata.num_rows} rows, {metadata.kind} k={metadata.k}, "
        f"teachers {metadata.teacher}."
    )
    return 0
