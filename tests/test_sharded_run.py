"""The sharded-run skeleton that `generate` and `import-fkd` share: a new producer of label sets is its row work and
its metadata; the skeleton shards, resumes, refuses or skips bad rows and finishes the set."""

from __future__ import annotations

import ast
import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from fkd_hf.generation.metadata import RecordedTeacher, build_metadata
from fkd_hf.generation.shards import ShardedRun, plan_rows_per_shard, run_sharded
from fkd_hf.labels import load_label_set
from fkd_hf.labels.format import METADATA_FILE
from fkd_hf.labels.images import image_bytes, image_key, load_images
from fkd_hf.labels.writer import LabelSetWriter

R, K = 2, 1


@pytest.mark.parametrize(
    "num_rows, rows_per_shard, num_shards, expected",
    [
        (20, None, None, 20),  # one shard, not 8 near-empty ones
        (1000, None, None, 256),  # no shard under 256 rows...
        (3000, None, None, 375),  # ...but 8 for the processes to share where the set is large enough
        (100_000, None, None, 5000),
        (18, None, 5, 4),  # asked for: 5 shards
        (18, 7, 5, 7),  # rows per shard win
        (None, None, None, 5000),  # a stream
    ],
)
def test_shard_plan(num_rows, rows_per_shard, num_shards, expected):
    assert plan_rows_per_shard(num_rows, rows_per_shard, num_shards) == expected


def _hard_label(item) -> dict:
    """A producer's row work: the image's key and a fixed crop labelled as class 0; dogs cannot be labelled."""
    row, value = item
    key = image_key(image_bytes(value))
    if "dog" in value["path"]:
        return {"row": row, "key": key, "error": f"no dogs here ({value['path']})"}
    return {
        "row": row,
        "key": key,
        "error": None,
        "crops": np.full((R, 4), 0.5),
        "flips": np.zeros(R, bool),
        "topk_indices": np.zeros((R, K), np.int64),
        "topk_values": np.ones((R, K)),
    }


def _run(image_folder, output_dir: Path, refuse) -> ShardedRun:
    source = load_images(f"imagefolder:{image_folder}")
    teacher = RecordedTeacher("rule", None, "none", (32, 32), (0.5,) * 3, (0.5,) * 3, "bilinear")
    metadata = build_metadata(
        source,
        teacher,
        plan_rows_per_shard(source.num_rows, num_shards=3),
        None,
        kind="hard",
        k=K,
        num_classes=3,
        class_names=["cat", "dog", "fox"],
        temperature=1.0,
        stored_crops=R,
        seed=-1,
        crop_scale=[0.08, 1.0],
        crop_ratio=[0.75, 1.25],
        teacher_class_indices=None,
        precision="fp32",
        replay="pil",
    )
    return ShardedRun(
        "rule",
        output_dir,
        metadata,
        {"rule": "class 0"},
        source,
        prepare=_hard_label,
        refuse=refuse,
        start=time.perf_counter(),
        num_workers=1,
    )


def test_a_new_producer_is_its_row_work_and_metadata(image_folder, tmp_path, monkeypatch):
    from accelerate import PartialState

    state = PartialState(cpu=True)
    output = tmp_path / "labels"
    with pytest.raises(ValueError, match=r"no dogs here \(.*dog_00"):  # refused: the rows before are kept
        run_sharded(_run(image_folder, output, refuse=lambda row: ValueError(row["error"])), state)
    assert [p.name for p in (output / "data").glob("*.parquet")] == ["shard-00000.parquet"]
    assert not (output / METADATA_FILE).exists()

    written, real_write = [], LabelSetWriter.write_shard

    def recorded_write(self, shard, *args):
        written.append(shard)
        return real_write(self, shard, *args)

    monkeypatch.setattr(LabelSetWriter, "write_shard", recorded_write)
    summary = run_sharded(_run(image_folder, output, refuse=None), state)  # a resume that skips such rows
    assert written == [1, 2]  # the finished shard was kept
    assert (summary.rows, summary.skipped_rows, summary.crops) == (18, 6, 12 * R)
    labels = load_label_set(output)
    assert labels.metadata.num_shards == 3 and len(labels.metadata.skipped_rows) == 6
    assert (output / "README.md").is_file() and labels.metadata.card_digest  # the card, written by the skeleton
    assert run_sharded(_run(image_folder, output, refuse=None), state).seconds == 0.0  # finished: nothing to do


def test_generate_keeps_its_options_as_given(generate_config, tmp_path):
    """What --crops_from and --precision auto fix lives in the run's resolved values, not in the options."""
    from fkd_hf import generate

    first = generate_config(output_dir=str(tmp_path / "a"), num_shards=1)
    generate(first)
    second = generate_config(
        output_dir=str(tmp_path / "b"), crops_from=first.output_dir, stored_crops=5, seed=9, precision="auto"
    )
    before = dataclasses.asdict(second)
    generate(second)
    assert dataclasses.asdict(second) == before
    metadata = load_label_set(second.output_dir).metadata
    assert (metadata.stored_crops, metadata.seed, metadata.precision in ("fp32", "bf16")) == (3, 0, True)


def test_the_label_set_writer_knows_nothing_of_the_hub():
    """labels/ sits below hub/: the writer is handed the card writer; no import of hub, not even in a function."""
    for name in ("writer", "merge", "official"):
        tree = ast.parse((REPO_ROOT / "fkd_hf" / "labels" / f"{name}.py").read_text())
        imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [module for module in imported if "hub" in module.split(".")], (name, imported)
