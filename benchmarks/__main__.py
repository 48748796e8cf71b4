"""``python -m benchmarks <name> [options]``: one entry point for the benchmarks; ``<name> --help`` lists options.

python -m benchmarks compare --quick
python -m benchmarks compare --preset imagewoof
python -m benchmarks generate_throughput --images 96
python -m benchmarks train_throughput --images 1024
python -m benchmarks demo_time --cases default
python -m benchmarks cpu_memory
python -m benchmarks generate_soak --kills 5
python -m benchmarks startup
python -m benchmarks ssl --quick
"""

from __future__ import annotations

import sys

from fkd_hf.cli import dispatch
from fkd_hf.cpu_memory import keep_freed_memory

# name -> (module, one-line description); dashes and underscores are interchangeable on the command line.
BENCHMARKS = {
    "compare": (
        "benchmarks.compare",
        "FKD vs plain, vanilla KD and ReLabel: accuracy, whole-run CPU time, crops/s, "
        "label storage (imagenette-mini or imagewoof-mini)",
    ),
    "generate_throughput": ("benchmarks.generate_throughput", "label generation vs the teacher's bare forward pass"),
    "train_throughput": ("benchmarks.train_throughput", "FKD vs plain training: crops/s and loader speed"),
    "cpu_memory": ("benchmarks.cpu_memory", "CPU speed with freed memory kept in the process vs returned to the OS"),
    "demo_time": ("benchmarks.demo_time", "wall time of `fkd-hf demo` from cold caches, default and imagenette-mini"),
    "generate_soak": (
        "benchmarks.generate_soak",
        "generation survives SIGKILL: killed at random moments, resumed, compared with an uninterrupted run",
    ),
    "pipeline": ("benchmarks.pipeline", "input-pipeline CPU-seconds per crop: plain, ReLabel, FKD; cores per A100"),
    "ssl": (
        "benchmarks.self_supervised",
        "self-supervised FKD: stored distribution/embedding targets vs the teacher online, k-NN and linear probe "
        "(imagewoof-mini, imagenette-mini)",
    ),
    "startup": (
        "benchmarks.startup",
        "start-up time of `import fkd_hf` and `fkd-hf ... --help`, and their heavy imports",
    ),
}


def _run(module, argv: list[str]) -> int:
    keep_freed_memory()  # as every fkd-hf command does; process-wide, so the same for every method compared
    parser = module.make_parser()
    parser.prog = f"python -m benchmarks {module.__name__.rsplit('.', 1)[-1]}"
    module.main(parser.parse_args(argv))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        argv[0] = argv[0].replace("-", "_")
    return dispatch(BENCHMARKS, argv, "python -m benchmarks", "benchmark", _run)


if __name__ == "__main__":
    sys.exit(main())
