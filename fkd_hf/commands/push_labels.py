"""``fkd-hf push-labels``: upload a label set to a Hub dataset repo.

    fkd-hf push-labels outputs/labels --repo-id user/imagenette-fkd-labels
    fkd-hf push-labels outputs/labels --repo-id my-org/imagenette-fkd-labels --private --revision v2

Uploads the parquet shards as they are, fkd_labels.json and a dataset card rendered for the repo, in one commit; a
re-push updates the repo in place. Then `fkd-hf train --label_set user/imagenette-fkd-labels` and
`load_label_set("user/imagenette-fkd-labels")` use it. The token comes from HF_TOKEN or `hf auth login`.
"""

from __future__ import annotations

import argparse
import sys


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fkd-hf push-labels", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("directory", help="Label-set folder written by `fkd-hf generate`.")
    parser.add_argument("--repo-id", "--repo_id", dest="repo_id", required=True, help="Hub dataset repo: user/name.")
    parser.add_argument("--private", action="store_true", default=None, help="Create the repo private.")
    parser.add_argument("--revision", default=None, help="Branch to push to (created if missing); default main.")
    parser.add_argument("--commit-message", "--commit_message", dest="commit_message", default=None)
    parser.add_argument("--license", default="other", help="Licence of the dataset card (default: other).")
    return parser


def main(argv: list[str]) -> int:
    from ..hub import describe_error, push_label_set

    args = make_parser().parse_args(argv)
    try:
        url = push_label_set(
            args.directory, args.repo_id, private=args.private, revision=args.revision,
            commit_message=args.commit_message, license=args.license,
        )  # fmt: skip
    except (OSError, ValueError) as err:
        print(f"fkd-hf push-labels: error: {describe_error(err)}", file=sys.stderr)
        return 1
    print(f"Label set pushed to {url}")
    return 0
