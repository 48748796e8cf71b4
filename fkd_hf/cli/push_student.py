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

from ._push import push_parser, run_push

PROG = "fkd-hf push-student"


def make_parser() -> argparse.ArgumentParser:
    parser = push_parser(
        PROG, __doc__, "Student folder written by `fkd-hf train` (config.json + model.safetensors).", "model"
    )
    parser.add_argument(
        "--label-set",
        "--label_set",
        dest="label_set",
        default=None,
        help="Hub id of the label set the student was trained on (when it was trained from a local folder).",
    )
    parser.add_argument("--license", default=None, help="Licence of the weights, e.g. apache-2.0.")
    parser.add_argument("--model-name", "--model_name", dest="model_name", default=None, help="Title of the card.")
    return parser


def main(argv: list[str]) -> int:
    args = make_parser().parse_args(argv)
    from ..hub import push_student

    return run_push(
        push_student, args, "Student", label_set=args.label_set, license=args.license, model_name=args.model_name
    )
