"""``python -m benchmarks <name> [options]``: one entry point for the benchmarks; ``<name> --help`` lists options.

    python -m benchmarks compare --quick
    python -m benchmarks generate_throughput --images 96
    python -m benchmarks train_throughput --images 1024
    python -m benchmarks demo_time --cases default
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, one-line description); dashes and underscores are interchangeable on the command line.
BENCHMARKS = {
    "compare": ("benchmarks.compare", "FKD vs plain, vanilla KD and ReLabel: crops/s, label storage, accuracy"),
    "generate_throughput": ("benchmarks.generate_throughput", "label generation vs the teacher's bare forward pass"),
    "train_throughput": ("benchmarks.train_throughput", "FKD vs plain training: crops/s and loader speed"),
    "demo_time": ("benchmarks.demo_time", "wall time of `fkd-hf demo` from cold caches, default and imagenette-mini"),
}


def _usage() -> str:
    lines = ["usage: python -m benchmarks <name> [options]", "", "benchmarks:"]
    lines += [f"  {name:<20} {description}" for name, (_, description) in BENCHMARKS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name = argv[0].replace("-", "_")
    if name not in BENCHMARKS:
        print(f"unknown benchmark {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[name][0])
    parser = module.make_parser()
    parser.prog = f"python -m benchmarks {name}"
    module.main(parser.parse_args(argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
