"""The start-up benchmark (benchmarks/startup.py): fresh-process timings, heavy-import detection, publishing."""

import json
import subprocess
import sys

from conftest import REPO_ROOT

if str(REPO_ROOT) not in sys.path:  # benchmarks/ is not an installed package: import it from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import startup  # noqa: E402
from benchmarks.__main__ import main as bench_main  # noqa: E402


def test_heavy_imports_are_read_from_the_import_profile():
    profiled = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import fkd_hf.models.pixels"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    )
    assert startup.heavy_imports(profiled.stderr) == ["torch"]  # pixels needs torch, not the rest of the stack
    assert startup.heavy_imports("usage: fkd-hf <command>\nimport time: 12 | 34 | json") == []


def test_startup_times_fresh_processes_and_publishes(tmp_path, monkeypatch):
    results_md = tmp_path / "RESULTS.md"
    results_md.write_text("# Results\n\n<!-- startup:begin -->\nOLD\n<!-- startup:end -->\n\n## More\n")
    monkeypatch.setattr(startup, "RESULTS_MD", results_md)
    output = tmp_path / "startup.json"
    argv = [
        "startup",
        "--repeats",
        "2",
        "--commands",
        "python",
        "help",
        "generate",
        "--output",
        str(output),
        "--publish",
    ]
    assert bench_main(argv) == 0
    rows = {row["name"]: row for row in json.loads(output.read_text())["rows"]}
    assert list(rows) == ["python", "help", "generate"]
    for row in rows.values():
        assert len(row["seconds"]) == 2 and min(row["seconds"]) <= row["median_seconds"] <= max(row["seconds"])
        assert row["heavy_modules"] == []  # the interpreter, `fkd-hf --help` and `generate --help` stay torch-free
    assert rows["help"]["argv"][0].endswith("fkd-hf") and rows["help"]["target_seconds"] == 0.5
    text = results_md.read_text()
    assert "OLD" not in text and "## More" in text
    line = next(line for line in text.splitlines() if line.startswith("| `fkd-hf --help`"))
    assert line.endswith(("< 0.5 s: met |", "< 0.5 s: missed |")) and "| none |" in line
