"""The SIGKILL soak benchmark (benchmarks/generate_soak.py) on tiny photos with the tiny teacher."""

import shutil
import sys

import pytest
from conftest import REPO_ROOT

if str(REPO_ROOT) not in sys.path:  # benchmarks/ is not an installed package: import it from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import generate_soak  # noqa: E402


def test_differing_files_names_each_changed_or_missing_file(tmp_path):
    (tmp_path / "a" / "data").mkdir(parents=True)
    for name, data in (("fkd_labels.json", b"{}"), ("data/shard-00000.parquet", b"PAR1"), ("README.md", b"#")):
        (tmp_path / "a" / name).write_bytes(data)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert generate_soak.differing_files(tmp_path / "a", tmp_path / "b") == []
    (tmp_path / "b" / "data" / "shard-00000.parquet").write_bytes(b"PAR2")
    (tmp_path / "b" / "README.md").unlink()
    assert generate_soak.differing_files(tmp_path / "a", tmp_path / "b") == ["README.md", "data/shard-00000.parquet"]


@pytest.mark.slow
def test_killed_and_resumed_runs_give_the_uninterrupted_result(image_folder, teacher_dir, tmp_path):
    args = generate_soak.make_parser().parse_args(
        [
            "--dataset",
            f"imagefolder:{image_folder}",
            "--teacher",
            str(teacher_dir),
            "--kills",
            "3",
            "--stored-crops",
            "3",
            "--num-shards",
            "6",
            "--batch-size",
            "6",
            "--num-workers",
            "1",
            "--work-dir",
            str(tmp_path / "work"),
            "--output",
            str(tmp_path / "soak.md"),
            "--extra",
            "--k",
            "2",
        ]
    )
    text = generate_soak.main(args)
    assert (tmp_path / "soak.md").read_text() == text + "\n"
    assert "byte-identical to the uninterrupted run (every file): yes" in text
    assert "refused as unfinished by `load_label_set`: yes" in text and "6 shards" in text
    assert generate_soak.differing_files(tmp_path / "work" / "reference", tmp_path / "work" / "killed") == []
