"""`fkd-hf generate` never loses or misstates a user's data: --overwrite, reruns that verify and repair, resumes,
bad dataset paths, Ctrl-C."""

import dataclasses
import errno
import json
from pathlib import Path

import pytest
from conftest import make_image_folder

from fkd_hf import generate, load_label_set
from fkd_hf.cli import main as cli_main
from fkd_hf.labels.format import METADATA_FILE, RUN_FILE
from fkd_hf.labels.images import BadImageError, load_images
from fkd_hf.labels.writer import LabelSetWriter


def _shards(output_dir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(output_dir, "data").glob("*.parquet"))}


@pytest.fixture
def photos(tmp_path):
    """Photos of this test only (tests here change them)."""
    return make_image_folder(tmp_path / "photos", per_class=4)


def _user_folder(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "README.md").write_text("# my project\n")
    (root / "data" / "mydata.csv").write_text("a,b\n1,2\n")
    (root / "notes.txt").write_text("notes\n")
    return root


def test_overwrite_refuses_a_folder_that_is_not_a_label_set(generate_config, tmp_path):
    folder = _user_folder(tmp_path / "mine")
    for overwrite in (False, True):
        with pytest.raises(
            FileExistsError,
            match=r"not an FKD label set \(it holds README.md, data/mydata.csv, "
            r"notes.txt\).*--overwrite replaces only a label set",
        ):
            generate(generate_config(output_dir=str(folder), overwrite=overwrite))
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == [
        "README.md",
        "data",
        "data/mydata.csv",
        "notes.txt",
    ]
    assert (folder / "README.md").read_text() == "# my project\n"


def test_overwrite_deletes_only_what_fkd_hf_wrote(generate_config, tmp_path, capsys):
    folder = tmp_path / "labels"
    generate(generate_config(output_dir=str(folder), num_shards=3))
    (folder / "notes.txt").write_text("mine\n")
    (folder / "data" / "mydata.csv").write_text("mine\n")
    (folder / "data" / ".shard-00001.parquet.999.tmp").write_bytes(b"left by a killed run")
    generate(generate_config(output_dir=str(folder), stored_crops=2, num_shards=2, overwrite=True))
    assert "kept data/mydata.csv, notes.txt" in capsys.readouterr().out
    assert (folder / "notes.txt").read_text() == (folder / "data" / "mydata.csv").read_text() == "mine\n"
    assert sorted(_shards(folder)) == ["shard-00000.parquet", "shard-00001.parquet"]  # the old shard 2 is gone
    assert not list((folder / "data").glob(".*.tmp"))
    assert load_label_set(folder).metadata.stored_crops == 2

    # A README.md that is not the card fkd-hf wrote is the user's: --overwrite stops before deleting anything.
    (folder / "README.md").write_text("# my notes on these labels\n")
    with pytest.raises(FileExistsError, match=r"README.md is not the card fkd-hf wrote.*move it out"):
        generate(generate_config(output_dir=str(folder), overwrite=True))
    assert (folder / "README.md").read_text() == "# my notes on these labels\n"
    assert len(_shards(folder)) == 2


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_rerun_relabels_a_missing_or_truncated_shard(generate_config, tmp_path, capsys, damage):
    config = generate_config(num_shards=3)
    generate(config)
    original = _shards(config.output_dir)
    shard = Path(config.output_dir, "data", "shard-00001.parquet")
    if damage == "delete":
        shard.unlink()
    else:
        shard.write_bytes(shard.read_bytes()[:-100])
    capsys.readouterr()
    summary = generate(config)
    expected = "is missing" if damage == "delete" else "is unreadable (truncated"
    assert len(summary.repaired) == 1 and summary.repaired[0].startswith(f"data/shard-00001.parquet {expected}")
    assert "Redone: data/shard-00001.parquet" in capsys.readouterr().out
    assert _shards(config.output_dir) == original  # the same bytes an uninterrupted run wrote
    assert load_label_set(config.output_dir).metadata.num_rows == 18


def test_a_rerun_without_replay_resumes_a_run_made_with_the_other_replay(generate_config, capsys):
    """An unfinished run started while pil was the default resumes when the same command (no --replay) is rerun."""
    config = generate_config(num_shards=3, replay="pil")
    generate(config)
    Path(config.output_dir, "data", "shard-00001.parquet").unlink()
    Path(config.output_dir, "fkd_labels.json").unlink()  # unfinished
    original = _shards(config.output_dir)
    summary = generate(dataclasses.replace(config, replay=None))
    assert load_label_set(config.output_dir).metadata.replay == "pil" and summary.rows == 18
    resumed = _shards(config.output_dir)
    assert all(resumed[name] == data for name, data in original.items())  # the finished shards were kept
    fresh = generate(generate_config(output_dir=str(Path(config.output_dir).parent / "fresh"), num_shards=3))
    assert load_label_set(fresh.output_dir).metadata.replay == "tensor"  # a new set gets the default


def test_rerun_relabels_the_shard_of_a_changed_image(generate_config, photos):
    config = generate_config(dataset=f"imagefolder:{photos}", num_shards=3)
    generate(config)
    paths = [row["image"]["path"] for row in load_images(f"imagefolder:{photos}").dataset]
    changed = 7  # in shard 1 (rows 4..7)
    Path(paths[changed]).write_bytes(Path(paths[0]).read_bytes())
    assert generate(generate_config(dataset=f"imagefolder:{photos}", num_shards=3, verify_images="none")).seconds == 0

    summary = generate(config)
    assert summary.repaired == [f"data/shard-00001.parquet holds the keys of other images (rows {changed})"]
    keys = load_label_set(config.output_dir).dataset["image_key"]
    assert keys[changed] == keys[0]  # relabelled from the new image
    assert generate(config).seconds == 0.0  # and now verified clean


def test_rerun_rewrites_an_edited_fkd_labels_json(generate_config):
    config = generate_config(num_shards=2)
    generate(config)
    original = _shards(config.output_dir)
    path = Path(config.output_dir, METADATA_FILE)
    meta = json.loads(path.read_text())
    path.write_text(json.dumps(dict(meta, temperature=4.0)))
    summary = generate(config)
    assert summary.repaired == [f"{METADATA_FILE} disagrees with this run's options (temperature)"]
    assert json.loads(path.read_text())["temperature"] == 1.0 and _shards(config.output_dir) == original


def test_resume_after_a_bad_image_accepts_skip_bad_images(generate_config, photos, tmp_path):
    bad = min((photos / "fox").glob("*.jpg"))
    bad.write_bytes(bad.read_bytes()[:200])
    config = generate_config(dataset=f"imagefolder:{photos}", output_dir=str(tmp_path / "out"), num_shards=4)
    with pytest.raises(BadImageError, match="--skip-bad-images"):
        generate(config)
    kept = _shards(config.output_dir)
    assert kept  # the shards before the bad image are on disk
    summary = generate(
        generate_config(
            dataset=f"imagefolder:{photos}", output_dir=str(tmp_path / "out"), num_shards=4, skip_bad_images=True
        )
    )
    assert summary.skipped_rows == 1 and summary.rows == 12
    assert {name: data for name, data in _shards(config.output_dir).items() if name in kept} == kept


def test_dataset_paths_that_hold_no_images(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("data/empty").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"^data/empty holds no images"):
        load_images("data/empty")
    with pytest.raises(FileNotFoundError, match=r"^no folder data/nonexistent \(and no Hub dataset of that name"):
        load_images("data/nonexistent")


def test_ctrl_c_prints_one_line_and_the_rerun_resumes(
    generate_config, image_folder, teacher_dir, tmp_path, monkeypatch, capsys
):
    real_write, written = LabelSetWriter.write_shard, []

    def write_then_interrupt(self, shard, *args):
        if len(written) == 2:
            raise KeyboardInterrupt
        written.append(shard)
        return real_write(self, shard, *args)

    monkeypatch.setattr(LabelSetWriter, "write_shard", write_then_interrupt)
    output = tmp_path / "labels"
    argv = [
        "generate",
        "--dataset",
        f"imagefolder:{image_folder}",
        "--teacher",
        str(teacher_dir),
        "--output_dir",
        str(output),
        "--stored_crops",
        "3",
        "--k",
        "2",
        "--num_shards",
        "6",
        "--num_workers",
        "1",
    ]
    assert cli_main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"fkd-hf generate: interrupted; 2 of 6 shards kept in {output}: rerun the same command to resume."
    )
    assert "Traceback" not in "\n".join(err)
    monkeypatch.setattr(LabelSetWriter, "write_shard", real_write)
    assert cli_main(argv) == 0
    assert load_label_set(output).metadata.num_shards == 6 and (output / RUN_FILE).is_file()


def test_verify_images_all_finds_a_change_the_sample_misses(generate_config, photos, monkeypatch):
    import fkd_hf.generation.verify as verify

    monkeypatch.setattr(verify, "VERIFY_SAMPLE", 2)  # rows 0 and 11 of the 12
    config = generate_config(dataset=f"imagefolder:{photos}", num_shards=3)
    generate(config)
    paths = [row["image"]["path"] for row in load_images(f"imagefolder:{photos}").dataset]
    Path(paths[5]).write_bytes(Path(paths[0]).read_bytes())
    assert generate(config).repaired == []  # the sample holds rows 0 and 11 only
    summary = generate(generate_config(dataset=f"imagefolder:{photos}", num_shards=3, verify_images="all"))
    assert summary.repaired == ["data/shard-00001.parquet holds the keys of other images (rows 5)"]


def test_a_streamed_label_set_is_verified_and_repaired_too(generate_config, photos):
    config = generate_config(dataset=f"imagefolder:{photos}", rows_per_shard=5, streaming=True)
    generate(config)
    original = _shards(config.output_dir)
    Path(config.output_dir, "data", "shard-00002.parquet").unlink()
    paths = [row["image"]["path"] for row in load_images(f"imagefolder:{photos}").dataset]
    Path(paths[1]).write_bytes(Path(paths[0]).read_bytes())
    summary = generate(config)
    assert summary.repaired == [
        "data/shard-00000.parquet holds the keys of other images (rows 1)",
        "data/shard-00002.parquet is missing",
    ]
    assert _shards(config.output_dir)["shard-00002.parquet"] == original["shard-00002.parquet"]
    assert load_label_set(config.output_dir).metadata.num_shards == 3
    assert generate(config).seconds == 0.0  # a sound streamed set is left as it is


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_run_stopped_before_it_saved_its_options_does_not_block_the_rerun(
    generate_config, tmp_path, monkeypatch, overwrite
):
    """A full disk (or a kill) while fkd_run.json is written: the rerun, with or without --overwrite, takes the
    folder, which holds only fkd-hf's temporary files, as new and writes the set a clean run writes."""
    reference = generate_config(output_dir=str(tmp_path / "reference"))
    generate(reference)
    folder = tmp_path / "labels"
    real_write = Path.write_text

    def full_disk(self, text, *args, **kwargs):
        if self.name == f"{RUN_FILE}.tmp":
            real_write(self, text[:10])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        generate(generate_config(output_dir=str(folder)))
    monkeypatch.setattr(Path, "write_text", real_write)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == ["data"]  # no half-written file kept

    # what a kill -9 at that moment (or at any other) leaves
    (folder / f"{RUN_FILE}.tmp").write_text('{"kind": "marg')
    (folder / f"{METADATA_FILE}.tmp").write_text("{")
    (folder / "data" / ".shard-00000.parquet.4242.tmp").write_bytes(b"PAR1")
    generate(generate_config(output_dir=str(folder), overwrite=overwrite))
    assert _shards(folder) == _shards(reference.output_dir) and not list(folder.rglob("*.tmp"))
    assert load_label_set(folder).metadata.num_rows == 18

    # a folder that also holds a file of the user's is still refused, and the file named
    (tmp_path / "mine" / "data").mkdir(parents=True)
    (tmp_path / "mine" / f"{RUN_FILE}.tmp").write_text("{")
    (tmp_path / "mine" / "empty").mkdir()
    with pytest.raises(FileExistsError, match=r"not an FKD label set \(it holds empty\)"):
        generate(generate_config(output_dir=str(tmp_path / "mine"), overwrite=overwrite))
    assert (tmp_path / "mine" / f"{RUN_FILE}.tmp").is_file()
