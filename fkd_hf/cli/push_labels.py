"""``fkd-hf push-labels``: upload a label set to a Hub dataset repo.

    fkd-hf push-labels outputs/labels --repo-id user/imagenette-fkd-labels
    fkd-hf push-labels outputs/labels --repo-id my-org/imagenette-fkd-labels --private --revision v2

Uploads the parquet shards as they are, fkd_labels.json and a dataset card rendered for the repo, in one commit; a
re-push updates the repo in place. Then `fkd-hf train --label_set user/imagenette-fkd-labels` and
`load_label_set("user/imagenette-fkd-labels")` use it. The token comes from HF_TOKEN or `hf auth login`.
"""

from __future__ import annotations

import argparse

from ._push import push_parser, run_push

PROG = "fkd-hf push-labels"


def make_parser() -> argparse.ArgumentParser:
    parser = push_parser(PROG, __doc__, "Label-set folder written by `fkd-hf generate`.", "dataset")
    parser.add_argument("--license", default="other", help="Licence of the dataset card (default: other).")
    return parser


def main(argv: list[str]) -> int:
    args = make_parser().parse_args(argv)
    from ..hub import push_label_set

    return run_push(push_label_set, args, "Label set", license=args.license)
