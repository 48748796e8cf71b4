"""CI's token guard (.ci/token_guard.py): after the suite, a file the tests wrote that holds a test token fails CI."""

import os
import subprocess
import sys
import time

from conftest import REPO_ROOT
from hub_server import FAKE_TOKEN, SHAPED_TOKEN

GUARD = REPO_ROOT / ".ci" / "token_guard.py"


def _guard(marker, folder) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(GUARD), str(marker), str(folder)], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_guard_names_each_file_written_since_the_marker_that_holds_a_test_token(tmp_path):
    folder = tmp_path / "written"
    (folder / ".git").mkdir(parents=True)
    (folder / "__pycache__").mkdir()
    (folder / "runs").mkdir()
    before = folder / "before.txt"  # changed before the suite started: not the suite's
    before.write_text(FAKE_TOKEN)
    os.utime(before, (time.time() - 3600, time.time() - 3600))
    marker = tmp_path / "started"
    marker.touch()
    os.utime(marker, (time.time() - 60, time.time() - 60))
    leaky = [folder / "runs" / "events.out.tfevents.1.host", folder / "train.log"]
    leaky[0].write_bytes(b"\x00\x01" + SHAPED_TOKEN.encode() + b"\xff")
    leaky[1].write_text(f"token {FAKE_TOKEN}\n")
    (folder / "clean.txt").write_text("no secret here")
    skipped = [folder / ".git" / "objects", folder / "__pycache__" / "hub_server.cpython-311.pyc"]
    for path in skipped:
        path.write_text(FAKE_TOKEN)
    (folder / "link").symlink_to(leaky[1])
    try:
        found = _guard(marker, folder)
        assert found.returncode == 1, found.stdout + found.stderr
        named = sorted(line.split(": ", 1)[1].split(" holds")[0] for line in found.stderr.splitlines())
        assert named == sorted(str(path) for path in leaky)
        assert FAKE_TOKEN not in found.stdout + found.stderr and SHAPED_TOKEN not in found.stdout + found.stderr
    finally:  # the suite leaves no token behind (this guard runs over its files in CI)
        for path in [before, *leaky, *skipped]:
            path.unlink()
    clean = _guard(marker, folder)
    assert clean.returncode == 0 and "0 files written by the tests hold a test token" in clean.stdout


def test_ci_runs_the_guard_over_the_suite_s_files_after_the_suite_and_before_the_demo():
    lines = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    suite = next(i for i, line in enumerate(lines) if "python -m pytest" in line)
    guard = next(i for i, line in enumerate(lines) if line.startswith("python .ci/token_guard.py"))
    demo = lines.index("fkd-hf demo")
    assert suite < guard < demo
    assert '--basetemp "$scratch/pytest"' in lines[suite] and '"$scratch/started" "$scratch" .' in lines[guard]
