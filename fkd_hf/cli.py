"""The ``fkd-hf`` command line: ``fkd-hf <command> [options]``; ``fkd-hf <command> --help`` lists the options."""

from __future__ import annotations

import importlib
import sys

# command -> (module, one-line description)
COMMANDS = {
    "generate": ("fkd_hf.commands.generate", "run the teacher once and store FKD soft labels for every image"),
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
