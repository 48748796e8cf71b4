"""CI's token guard: fails when a file the test suite wrote holds a token the tests use.

    python .ci/token_guard.py SINCE FOLDER...

Every file under each FOLDER changed after the file SINCE was (a marker ``.ci/run`` touches before the suite) is
read whole, of any type, for each of ``TEST_TOKENS`` (tests/hub_server.py) and for ``FKD_HF_TEST_HUB_TOKEN`` when
set; ``.git`` and ``__pycache__`` (compiled test sources, which spell the test tokens) are left out. Each file that
holds one is named (the token never is); the exit status is 1 if any does, else 0.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from hub_server import TEST_TOKENS  # noqa: E402


def written_since(since: float, folders: Iterable[Path]) -> Iterator[Path]:
    """The regular files under ``folders`` (not in ``.git`` or ``__pycache__``, links not followed) modified at or
    after ``since``."""
    for folder in folders:
        for root, dirs, names in os.walk(folder):
            dirs[:] = [name for name in dirs if name not in (".git", "__pycache__")]
            for name in names:
                path = Path(root, name)
                try:
                    if not path.is_symlink() and path.is_file() and path.stat().st_mtime >= since:
                        yield path
                except OSError:  # removed meanwhile
                    continue


def leaks(since: float, folders: Iterable[Path], tokens: Iterable[str]) -> list[Path]:
    """The files written since ``since`` under ``folders`` that hold any of ``tokens``."""
    needles = [token.encode() for token in tokens if token]
    found = []
    for path in written_since(since, folders):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(needle in data for needle in needles):
            found.append(path)
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    since = Path(argv[0]).stat().st_mtime
    folders = [Path(folder) for folder in argv[1:] if Path(folder).is_dir()]
    tokens = [*TEST_TOKENS, os.environ.get("FKD_HF_TEST_HUB_TOKEN", "")]
    found = leaks(since, folders, tokens)
    for path in found:
        print(f"token guard: {path} holds a token the tests used", file=sys.stderr)
    scanned = ", ".join(str(folder) for folder in folders)
    print(f"token guard: {len(found)} files written by the tests hold a test token (searched {scanned})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
