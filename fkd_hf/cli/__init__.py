"""The ``fkd-hf`` command line: ``fkd-hf <command> [options]``; ``fkd-hf <command> --help`` lists the options."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType

# command -> (module, one-line description)
COMMANDS = {
    "generate": ("fkd_hf.cli.generate", "run the teacher once and store FKD soft labels for every image"),
    "train": ("fkd_hf.cli.train", "train a student on a label set with FKD's multi-crop soft-label loss"),
    "push-labels": ("fkd_hf.cli.push_labels", "upload a label set to a Hub dataset repo, with its dataset card"),
    "push-student": ("fkd_hf.cli.push_student", "upload a trained student to a Hub model repo, with its card"),
    "demo": ("fkd_hf.cli.demo", "FKD end to end on this machine: teacher, labels, student, evaluation, cards"),
}


def dispatch(commands: dict[str, tuple[str, str]], argv: list[str], prog: str, kind: str,
             run: Callable[[ModuleType, list[str]], int | None]) -> int:  # fmt: skip
    """``prog <name> [options]``: imports the module ``commands`` names for ``argv[0]`` and returns
    ``run(module, argv[1:])``; prints the list of names for ``--help`` and, with exit status 2, for an unknown one."""
    width = max(map(len, commands)) + 2
    usage = "\n".join([f"usage: {prog} <{kind}> [options]", "", f"{kind}s:"]
                      + [f"  {name:<{width}}{description}" for name, (_, description) in commands.items()])  # fmt: skip
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    if argv[0] not in commands:
        print(f"{prog}: unknown {kind} {argv[0]!r}\n\n{usage}", file=sys.stderr)
        return 2
    return run(importlib.import_module(commands[argv[0]][0]), argv[1:]) or 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return dispatch(COMMANDS, argv, "fkd-hf", "command", _run_command)


def _run_command(module: ModuleType, argv: list[str]) -> int | None:
    from .arguments import UsageError

    try:
        return module.main(argv)
    except UsageError as err:
        print(f"{module.PROG}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
