"""``fkd-hf demo``: FKD end to end on this machine (teacher -> labels -> student -> evaluation -> Hub-ready folders).

    fkd-hf demo                       # offline, CPU: 20 ImageNet sample photos (PyPI package foolbox), < 5 min
    fkd-hf demo --compare             # also a plain student on hard labels with the same budget
    fkd-hf demo --dataset imagefolder:../shared/data/imagenette-mini --teacher efficientnet-lite0 --compare

Results go to --output-dir (default outputs/demo): labels/ and student/ (push-ready, with their cards), summary.md,
training_curves.png, demo_config.yaml and demo_result.json. A failed run leaves no result there.
"""

from __future__ import annotations

import errno
import signal
import sys
import threading

from .arguments import parse_config
from ..demo.config import DemoConfig

PROG = "fkd-hf demo"


def _message(err: BaseException, output_dir: str) -> str:
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        detail = err.strerror or str(err)
        return (f"no space left on the disk ({detail}); nothing was written to {output_dir}: free some space or pass "
                "--output-dir on another disk.")  # fmt: skip
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(str(text).split()) or type(err).__name__


def main(argv: list[str]) -> int:
    try:
        (config,) = parse_config([DemoConfig], argv, prog=PROG, description=__doc__)
    except ValueError as err:
        print(f"{PROG}: error: {_message(err, '')}", file=sys.stderr)
        return 2
    def terminate(signum, frame):  # clean up like Ctrl-C does: no half-written result is left behind
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate) if main_thread else None
    try:
        from ..cpu_memory import keep_freed_memory
        from ..demo import run_demo

        keep_freed_memory()
        result = run_demo(config)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was written to {config.output_dir}.", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, ImportError, KeyError, OSError) as err:
        print(f"{PROG}: error: {_message(err, config.output_dir)}", file=sys.stderr)
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    print("\n" + result.summary, flush=True)
    return 0
