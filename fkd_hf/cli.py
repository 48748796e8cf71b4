"""The ``fkd-hf`` command line: ``fkd-hf <command> [options]``; ``fkd-hf <command> --help`` lists the options."""

from __future__ import annotations

import importlib
import sys

# command -> (module, one-line description)
COMMANDS = {
    "generate": ("fkd_hf.commands.generate", "run the teacher once and store FKD soft labels for every image"),
    "train": ("fkd_hf.commands.train", "train a student on a label set with FKD's multi-crop soft-label loss"),
    "push-labels": ("fkd_hf.commands.push_labels", "upload a label set to a Hub dataset repo, with its dataset card"),
    "push-student": ("fkd_hf.commands.push_student", "upload a trained student to a Hub model repo, with its card"),
    "demo": ("fkd_hf.commands.demo", "FKD end to end on this machine: teacher, labels, student, evaluation, cards"),
}


def _usage() -> str:
    lines = ["usage: fkd-hf <command> [options]", "", "commands:"]
    lines += [f"  {name:<14} {description}" for name, (_, description) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"fkd-hf: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
