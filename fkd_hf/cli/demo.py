"""``fkd-hf demo``: FKD end to end on this machine (teacher -> labels -> student -> evaluation -> Hub-ready folders).

    fkd-hf demo                       # offline, CPU: 20 ImageNet sample photos (PyPI package foolbox), < 5 min
    fkd-hf demo --compare             # also a plain student on hard labels with the same budget
    fkd-hf demo --dataset imagefolder:$IMAGENETTE --teacher efficientnet-lite0 --compare

Results go to --output-dir (default outputs/demo): labels/ and student/ (push-ready, with their cards), summary.md,
training_curves.png, demo_config.yaml and demo_result.json. A failed run leaves no result there.
"""

from __future__ import annotations

import errno
import sys

from ..demo.config import DemoConfig
from .arguments import parse_config

PROG = "fkd-hf demo"


def main(argv: list[str]) -> int:
    (config,) = parse_config([DemoConfig], argv, prog=PROG, description=__doc__)
    from ..cpu_memory import keep_freed_memory
    from ..demo import run_demo

    keep_freed_memory()
    try:
        result = run_demo(config)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the command runner raises it): no half-written result is left
        print(f"{PROG}: interrupted; nothing was written to {config.output_dir}.", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        advice = "free some space or pass --output-dir on another disk"
        print(
            f"{PROG}: error: no space left on the disk ({err.strerror or err}); nothing was written to "
            f"{config.output_dir}: {advice}.",
            file=sys.stderr,
        )
        return 1
    print("\n" + result.summary, flush=True)
    return 0
