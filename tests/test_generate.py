import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO_ROOT, make_image_folder

import fkd_hf.generation.generator as generate_module
from fkd_hf import generate, load_label_set
from fkd_hf.labels.crops import crops_to_pixels, replay_crop
from fkd_hf.labels.format import LABEL_COLUMNS, METADATA_FILE
from fkd_hf.labels.images import BadImageError, decode_image, image_bytes, load_images
from fkd_hf.labels.writer import LabelSetWriter
from fkd_hf.models.pixels import normalize, to_uint8_batch
from fkd_hf.models.teachers import load_teacher


def _rows(output_dir) -> dict:
    """All label columns of a finished label set, as numpy arrays in row order."""
    files = sorted(Path(output_dir, "data").glob("*.parquet"))
    table = pq.read_table(files[0]).schema.empty_table()
    import pyarrow as pa

    table = pa.concat_tables([pq.read_table(f) for f in files])
    return {
        name: np.asarray(table.column(name).to_pylist(), dtype=object if name == "image_key" else None)
        for name in LABEL_COLUMNS
    }


def _assert_same_rows(a, b):
    for name in LABEL_COLUMNS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_generation_is_deterministic_and_independent_of_sharding(generate_config, tmp_path):
    one = generate_config(output_dir=str(tmp_path / "one"), num_shards=1)
    again = generate_config(output_dir=str(tmp_path / "again"), num_shards=1)
    sharded = generate_config(output_dir=str(tmp_path / "sharded"), num_shards=4, num_workers=0)
    generate(one), generate(again), generate(sharded)
    assert len(list((tmp_path / "sharded" / "data").glob("*.parquet"))) == 4
    _assert_same_rows(_rows(one.output_dir), _rows(again.output_dir))
    _assert_same_rows(_rows(one.output_dir), _rows(sharded.output_dir))


def test_student_replays_exactly_the_pixels_the_teacher_saw(generate_config, teacher_dir, image_folder, monkeypatch):
    seen = []
    real_load = generate_module.load_teacher

    def recording_teacher(*args, **kwargs):
        teacher = real_load(*args, **kwargs)
        teacher.model.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].clone()))
        return teacher

    monkeypatch.setattr(generate_module, "load_teacher", recording_teacher)
    config = generate_config(num_shards=1, batch_size=3 * 100, replay="pil")  # against PIL's replay_crop
    generate(config)
    teacher_inputs = torch.cat(seen)

    labels = load_label_set(config.output_dir).dataset.with_format("numpy")
    images = load_images(f"imagefolder:{image_folder}").dataset
    teacher = load_teacher(str(teacher_dir))
    replayed = []
    for row, labels_row in zip(images, labels):
        image = decode_image(image_bytes(row["image"]))
        boxes = crops_to_pixels(labels_row["crops"], image.height, image.width)
        replayed += [
            replay_crop(image, box, flip, teacher.input_size, teacher.interpolation)
            for box, flip in zip(boxes, labels_row["flips"])
        ]
    expected = normalize(to_uint8_batch(replayed), teacher.mean, teacher.std)
    assert teacher_inputs.shape == expected.shape == (18 * 3, 3, 32, 32)
    torch.testing.assert_close(teacher_inputs, expected, atol=1e-5, rtol=0)


def test_interrupted_run_resumes_to_the_same_result(generate_config, tmp_path, monkeypatch):
    reference = generate_config(output_dir=str(tmp_path / "reference"), num_shards=3)
    generate(reference)

    interrupted = generate_config(output_dir=str(tmp_path / "resumed"), num_shards=3)
    real_write = LabelSetWriter.write_shard
    calls = []

    def write_then_crash(self, shard, *args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(self.shard_path(shard).name)
        return real_write(self, shard, *args)

    monkeypatch.setattr(LabelSetWriter, "write_shard", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        generate(interrupted)
    assert not (tmp_path / "resumed" / METADATA_FILE).exists()  # nothing presented as done
    with pytest.raises(FileNotFoundError, match="rerun the same command"):
        load_label_set(interrupted.output_dir)

    monkeypatch.setattr(
        LabelSetWriter,
        "write_shard",
        lambda self, shard, *args: (calls.append(self.shard_path(shard).name), real_write(self, shard, *args)),
    )
    generate(interrupted)
    assert calls == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]  # finished shards kept
    _assert_same_rows(_rows(reference.output_dir), _rows(interrupted.output_dir))
    assert load_label_set(interrupted.output_dir).metadata.num_rows == 18


def test_output_made_with_other_options_is_refused_unless_overwrite(generate_config):
    generate(generate_config())
    with pytest.raises(FileExistsError, match=r"different options \(stored_crops\).*--overwrite"):
        generate(generate_config(stored_crops=4))
    generate(generate_config(stored_crops=4, overwrite=True))
    labels = load_label_set(generate_config().output_dir)
    assert labels.metadata.stored_crops == 4 and np.asarray(labels.dataset[0]["crops"]).shape == (4, 4)
    assert generate(generate_config(stored_crops=4)).seconds == 0.0  # a finished, identical run is not redone


@pytest.fixture
def folder_with_truncated_image(tmp_path):
    root = make_image_folder(tmp_path / "photos", per_class=2)
    bad = sorted((root / "dog").glob("*.jpg"))[0]
    bad.write_bytes(bad.read_bytes()[:200])
    return root, bad


def test_truncated_image_names_the_row_and_file(generate_config, folder_with_truncated_image, tmp_path):
    root, bad = folder_with_truncated_image
    config = generate_config(dataset=f"imagefolder:{root}", output_dir=str(tmp_path / "out"))
    with pytest.raises(BadImageError, match=rf"Row \d+ .*{bad.name}.*--skip-bad-images"):
        generate(config)
    assert not (tmp_path / "out" / METADATA_FILE).exists()


def test_skipped_images_are_recorded_not_dropped(generate_config, folder_with_truncated_image, tmp_path):
    root, bad = folder_with_truncated_image
    config = generate_config(dataset=f"imagefolder:{root}", output_dir=str(tmp_path / "out"), skip_bad_images=True)
    summary = generate(config)
    labels = load_label_set(config.output_dir)
    paths = [row["image"]["path"] for row in load_images(f"imagefolder:{root}").dataset]
    assert labels.dataset.num_rows == len(paths) == 6
    assert labels.metadata.skipped_rows == [paths.index(str(bad))]
    assert (summary.rows, summary.skipped_rows, summary.crops) == (6, 1, 5 * 3)  # crops of the rows labelled only
    assert "6 rows, 15 crops, 1 skipped" in str(summary)


def test_a_small_set_is_one_shard_not_many_near_empty_ones(generate_config):
    summary = generate(generate_config())
    metadata = load_label_set(summary.output_dir).metadata
    assert (metadata.num_rows, metadata.num_shards, metadata.rows_per_shard) == (18, 1, 18)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(stored_crops=0), "stored_crops"),
        (dict(k=0), "k must be at least 1"),
        (dict(k=7), "between 1 and the class count"),
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(kind="soft"), "Unknown soft-label kind"),
        (dict(class_map="cat,wolf"), r"no class matching \['wolf'\]"),
        (dict(crop_scale=[0.9, 0.1]), "crop scale"),
    ],
)
def test_bad_options_fail_before_any_work(generate_config, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        generate(generate_config(**overrides))
    assert not (tmp_path / "labels").exists()


def test_streaming_input_gives_the_same_labels(generate_config, tmp_path):
    generate(generate_config(output_dir=str(tmp_path / "map"), rows_per_shard=5))
    generate(generate_config(output_dir=str(tmp_path / "stream"), rows_per_shard=5, streaming=True))
    _assert_same_rows(_rows(tmp_path / "map"), _rows(tmp_path / "stream"))
    assert load_label_set(tmp_path / "stream").metadata.num_shards == 4


def test_cli_reads_a_yaml_config_and_flags_override_it(image_folder, teacher_dir, tmp_path):
    config_file = tmp_path / "gen.yaml"
    config_file.write_text(
        f"dataset: imagefolder:{image_folder}\nteacher: {teacher_dir}\noutput_dir: {tmp_path / 'labels'}\n"
        "stored_crops: 2\nkind: full\nbatch_size: 16\n"
    )
    from fkd_hf.cli import main

    assert main(["generate", "--config", str(config_file), "--num-crops", "3", "--temperature", "2"]) == 0
    meta = json.loads((tmp_path / "labels" / METADATA_FILE).read_text())
    assert (meta["stored_crops"], meta["kind"], meta["k"], meta["temperature"]) == (3, "full", 3, 2.0)


def _generate_command(image_folder, teacher_dir, output_dir):
    return [
        "-m",
        "fkd_hf",
        "generate",
        "--dataset",
        f"imagefolder:{image_folder}",
        "--teacher",
        str(teacher_dir),
        "--output-dir",
        str(output_dir),
        "--num-crops",
        "3",
        "--k",
        "2",
        "--batch-size",
        "6",
        "--num-shards",
        "5",
    ]


@pytest.mark.distributed
def test_two_process_run_equals_one_process_run(image_folder, teacher_dir, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    single = subprocess.run(
        [sys.executable, *_generate_command(image_folder, teacher_dir, tmp_path / "single")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    double = subprocess.run(
        [*torchrun, *_generate_command(image_folder, teacher_dir, tmp_path / "double")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    assert double.stdout.count("Label set in") == 1  # one job of two processes, not two jobs
    _assert_same_rows(_rows(tmp_path / "single"), _rows(tmp_path / "double"))
    assert load_label_set(tmp_path / "double").metadata.num_shards == 5
