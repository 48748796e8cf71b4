"""Leading positional words of a command line, as the flag they stand for (``fkd-hf merge-labels A B --x 1``)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["with_positionals"]


def with_positionals(argv: Sequence[str], field: str) -> list[str]:
    """``argv`` with its leading words that are not options passed as ``--field`` (``cmd A B --x 1``)."""
    count = next((i for i, word in enumerate(argv) if word.startswith("-")), len(argv))
    return [f"--{field}", *argv] if count else list(argv)
