"""The ``fkd-hf`` command line: ``fkd-hf <command> [options]``; ``fkd-hf <command> --help`` lists the options.

Every command runs through one runner: an error is one line (two for a Hub authentication failure) naming the
problem, with exit status 2 for a command line or config file that cannot be used (an unknown option, a value of
the wrong type, a missing required option, a folder or Hub repo an option names that does not exist) and 1 for
anything else; ``--debug`` (anywhere on the line) or ``FKD_HF_DEBUG=1`` also prints the traceback. No token is
ever printed. SIGTERM (what a scheduler sends before a kill) stops a command as Ctrl-C does: it says what it kept
and how to resume, and exits with status 143 (130 after Ctrl-C).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from types import ModuleType

# command -> (module, one-line description); a module has ``PROG`` and ``main(argv) -> int``
COMMANDS = {
    "generate": ("fkd_hf.cli.generate", "run the teacher once and store FKD soft labels for every image"),
    "train": ("fkd_hf.cli.train", "train a student on a label set with FKD's multi-crop soft-label loss"),
    "push-labels": ("fkd_hf.cli.push_labels", "upload a label set to a Hub dataset repo, with its dataset card"),
    "push-student": ("fkd_hf.cli.push_student", "upload a trained student to a Hub model repo, with its card"),
    "demo": ("fkd_hf.cli.demo", "FKD end to end on this machine: teacher, labels, student, evaluation, cards"),
    "import-fkd": ("fkd_hf.cli.import_fkd", "convert the official FKD label files (FKD_SLG) into a label set"),
    "merge-labels": ("fkd_hf.cli.merge_labels", "merge label sets that share crops (an ensemble of teachers) into one"),
}
DEBUG_FLAG, DEBUG_ENV = "--debug", "FKD_HF_DEBUG"
# The values of the Trainer's own `--debug` option (`fkd-hf train --debug underflow_overflow`): left to the command.
TRAINER_DEBUG_VALUES = ("underflow_overflow", "tpu_metrics_debug")
# Errors whose message is written for the user; any other type is named in front of its message.
USER_ERRORS = (ValueError, OSError, LookupError, ImportError)
INTERRUPTED = 130  # the exit status of Ctrl-C (128 + SIGINT); a command returns it when interrupted


def dispatch(
    commands: dict[str, tuple[str, str]],
    argv: list[str],
    prog: str,
    kind: str,
    run: Callable[[ModuleType, list[str]], int | None],
    footer: str = "",
) -> int:
    """``prog <name> [options]``: imports the module ``commands`` names for ``argv[0]`` and returns
    ``run(module, argv[1:])``; prints the list of names (and ``footer``) for ``--help`` and, with exit status 2,
    for an unknown one."""
    width = max(map(len, commands)) + 2
    usage = "\n".join(
        [f"usage: {prog} <{kind}> [options]", "", f"{kind}s:"]
        + [f"  {name:<{width}}{description}" for name, (_, description) in commands.items()]
        + (["", footer] if footer else [])
    )
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    if argv[0] not in commands:
        print(f"{prog}: unknown {kind} {argv[0]!r}\n\n{usage}", file=sys.stderr)
        return 2
    return run(importlib.import_module(commands[argv[0]][0]), argv[1:]) or 0


def main(argv: list[str] | None = None) -> int:
    debug, argv = take_debug_flag(list(sys.argv[1:] if argv is None else argv))
    footer = f"{DEBUG_FLAG} (or {DEBUG_ENV}=1) prints the traceback of an error."
    return dispatch(COMMANDS, argv, "fkd-hf", "command", functools.partial(run_command, debug=debug), footer)


def take_debug_flag(argv: list[str]) -> tuple[bool, list[str]]:
    """``(show tracebacks, argv without fkd-hf's --debug)``; ``--debug <Trainer debug value>`` stays in argv."""
    debug = os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")
    kept = []
    for index, word in enumerate(argv):
        following = argv[index + 1] if index + 1 < len(argv) else ""
        if word == DEBUG_FLAG and following not in TRAINER_DEBUG_VALUES:
            debug = True
        else:
            kept.append(word)
    return debug, kept


def error_message(err: BaseException) -> str:
    """``err`` as one line, plus a second line with the fix of a Hub authentication failure; tokens redacted."""
    from ..hub.push import describe_error, redact_tokens

    text = err.args[0] if isinstance(err, KeyError) and err.args else err
    line = " ".join(str(text).split()) or type(err).__name__
    if not isinstance(err, USER_ERRORS) or type(err).__module__.startswith("huggingface_hub"):
        line = f"{type(err).__name__}: {line}"
    described, plain = describe_error(err), redact_tokens(f"{type(err).__name__}: {err}")
    hint = described[len(plain) :].strip() if described.startswith(plain) else ""  # describe_error's added fix
    return redact_tokens(line) + (f"\n{hint}" if hint else "")


def run_command(module: ModuleType, argv: list[str], debug: bool = False) -> int:
    """``module.main(argv)``, with every error reported as :func:`error_message` (and the traceback if ``debug``)
    and SIGTERM handled as Ctrl-C (:func:`terminate_as_interrupt`); off a terminal, the libraries' own progress bars
    are off (:func:`~fkd_hf.progress.library_bars_off_terminal`)."""
    from ..errors import USAGE_ERRORS
    from ..hub.tokens import redact_logs, remember_tokens_in_argv
    from ..progress import library_bars_off_terminal

    prog = getattr(module, "PROG", "fkd-hf")
    remember_tokens_in_argv(argv)  # a --hub_token is redacted like HF_TOKEN, in errors and in every log record
    redact_logs()
    with terminate_as_interrupt() as received, library_bars_off_terminal():
        try:
            status = module.main(argv) or 0
        except KeyboardInterrupt:
            print(f"{prog}: interrupted.", file=sys.stderr)
            status = INTERRUPTED
        except Exception as err:
            if debug:
                from ..hub.push import redact_tokens

                print(redact_tokens("".join(traceback.format_exception(err))), file=sys.stderr, end="")
            print(f"{prog}: error: {error_message(err)}", file=sys.stderr)
            if not debug and not isinstance(err, USER_ERRORS):
                print(f"{prog}: rerun with {DEBUG_FLAG} for the traceback.", file=sys.stderr)
            status = 2 if isinstance(err, USAGE_ERRORS) else 1
        finally:
            _end_process_group()
    return 128 + received[0] if received and status == INTERRUPTED else status


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[list[int]]:
    """Within the block, SIGTERM raises KeyboardInterrupt, so a command stops as on Ctrl-C (keeps what is finished,
    says how to resume); yields the list of SIGTERMs received. The previous handler is restored after. Outside the
    main thread, where no handler can be set, nothing changes."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)  # None: set outside Python


def _end_process_group() -> None:
    """Closes the process group a distributed command opened (torchrun, ``accelerate launch``): left open, its
    communication threads can abort the interpreter's exit, and the launcher then reports a failed run."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
