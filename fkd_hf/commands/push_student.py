"""``fkd-hf push-student``: upload a trained student to a Hub model repo, with its model card.

    fkd-hf push-student outputs/student --repo-id user/resnet18-fkd --label-set user/imagenette-fkd-labels
    fkd-hf push-student outputs/student --repo-id my-org/resnet18-fkd --private --license apache-2.0

The card (model-index top-1/top-5, teacher, label set, FKD hyperparameters, licence, citation) is rendered from the
folder's fkd_student.json; checkpoints and optimizer state stay local. The pushed student loads with
`timm.create_model("hf-hub:user/resnet18-fkd", pretrained=True)` and
`AutoModelForImageClassification.from_pretrained("user/resnet18-fkd")`. The token comes from HF_TOKEN or
`hf auth login`.
"""

from __future__ import annotations

import argparse
import sys


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fkd-hf push-student", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("directory", help="Student folder written by `fkd-hf train` (config.json + model.safetensors).")
    parser.add_argument("--repo-id", "--repo_id", dest="repo_id", required=True, help="Hub model repo: user/name.")
    parser.add_argument("--private", action="store_true", default=None, help="Create the repo private.")
    parser.add_argument("--revision", default=None, help="Branch to push to (created if missing); default main.")
    parser.add_argument("--commit-message", "--commit_message", dest="commit_message", default=None)
    parser.add_argument(
        "--label-set", "--label_set", dest="label_set", default=None,
        help="Hub id of the label set the student was trained on (when it was trained from a local folder).",
    )  # fmt: skip
    parser.add_argument("--license", default=None, help="Licence of the weights, e.g. apache-2.0.")
    parser.add_argument("--model-name", "--model_name", dest="model_name", default=None, help="Title of the card.")
    return parser


def main(argv: list[str]) -> int:
    from ..hub import describe_error, push_student

    args = make_parser().parse_args(argv)
    try:
        url = push_student(
            args.directory, args.repo_id, private=args.private, revision=args.revision,
            commit_message=args.commit_message, label_set=args.label_set, license=args.license,
            model_name=args.model_name,
        )  # fmt: skip
    except (OSError, ValueError) as err:
        print(f"fkd-hf push-student: error: {describe_error(err)}", file=sys.stderr)
        return 1
    print(f"Student pushed to {url}")
    return 0
