"""`fkd-hf train` keeps a user's files and secrets: the output-dir rule, the Hub token in no file, loader workers that
fit the machine, evaluation on the validation split by default."""

from __future__ import annotations

import os
import warnings

import pytest
from _fkd_data import make_label_set, make_splits
from conftest import make_image_folder
from hub_server import TRAIN_TOKEN as SECRET

import fkd_hf.training.runner as runner
from fkd_hf.cli import main as cli_main
from fkd_hf.training import FKDConfig, build_trainer, train
from fkd_hf.training.config import default_loader_workers
from fkd_hf.training.layouts import plan_layout
from fkd_hf.training.runner import CONFIG_FILE, check_output_dir, resolve_eval_split


@pytest.fixture(scope="module")
def data(tmp_path_factory, teacher_dir):
    root = tmp_path_factory.mktemp("train_safety")
    images = make_splits(root / "images")
    return images, make_label_set(images, teacher_dir, root / "labels", num_crops=4)


def _options(data, output_dir, **overrides) -> dict:
    options = dict(
        label_set=str(data[1]),
        student="test_resnet",
        input_size=32,
        num_crops=2,
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=6,
        max_steps=2,
        learning_rate=0.05,
        optim="sgd",
        warmup_steps=0,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    options.update(overrides)
    return options


def _argv(options: dict) -> list[str]:
    return [f"--{key}={value}" for key, value in options.items()]


# --- the output folder ------------------------------------------------------------------------------------------------


def test_a_folder_of_user_files_is_refused_and_left_as_it_was(data, tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")
    (folder / "config.json").write_text('{"mine": true}')
    (folder / "runs").mkdir()
    assert cli_main(["train", *_argv(_options(data, folder))]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"fkd-hf train: error: --output_dir {folder} is not empty")
    assert "(README.md, config.json, runs/)" in errors[0] and "--overwrite_output_dir" in errors[0]
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "runs"]
    assert (folder / "README.md").read_text() == "my notes" and (folder / "config.json").read_text() == '{"mine": true}'


def test_the_output_dir_rule(tmp_path):
    def check(folder, resume=None, **options):
        check_output_dir(FKDConfig(output_dir=str(folder), **options), resume)

    check(tmp_path / "new")  # new
    (tmp_path / "empty").mkdir()
    check(tmp_path / "empty")
    user = tmp_path / "user"
    (user / "checkpoint-3").mkdir(parents=True)
    (user / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match=r"\(checkpoint-3/, notes.txt\)"):
        check(user)
    with pytest.raises(FileExistsError):  # a checkpoint of another folder is not this one's
        check(user, resume=str(tmp_path / "elsewhere" / "checkpoint-3"))
    check(user, resume=str(user / "checkpoint-3"))  # resuming this folder's run
    check(user, overwrite_output_dir=True)
    (user / CONFIG_FILE).write_text("student: resnet18\n")  # an earlier fkd-hf run
    check(user)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        check(tmp_path / "file")
    many = tmp_path / "many"
    many.mkdir()
    for i in range(9):
        (many / f"f{i}").write_text("x")
    with pytest.raises(FileExistsError, match=r"f5, \.\.\. \(9 entries\)"):
        check(many)


# --- the Hub token ----------------------------------------------------------------------------------------------------


def test_the_hub_token_reaches_the_push_and_no_file(data, tmp_path, monkeypatch, capfd):
    pushed = []
    monkeypatch.setattr(runner, "push_student", lambda folder, repo_id, **kw: pushed.append(kw["token"]) or "url")
    config = FKDConfig(
        **_options(
            data,
            tmp_path / "out",
            hub_token=SECRET,
            push_to_hub=True,
            hub_model_id="u/s",
            save_strategy="steps",
            save_steps=1,
        )
    )
    metrics = train(config)
    assert pushed == [SECRET] and config.hub_token == SECRET and config.push_to_hub
    written = [path for path in (tmp_path / "out").rglob("*") if path.is_file()]
    assert {"checkpoint-1/training_args.bin", "checkpoint-2/training_args.bin", CONFIG_FILE} <= {
        path.relative_to(tmp_path / "out").as_posix() for path in written
    }
    assert [path for path in written if SECRET.encode() in path.read_bytes()] == []
    out, err = capfd.readouterr()
    assert SECRET not in out + err
    # No --eval_split: the dataset's validation split (val/), and the start-up line says so and counts processes.
    assert "eval_top1" in metrics
    assert "FKD on 1 process: 12 images" in out and "evaluating on split 'validation' (--eval_split none" in out


# --- evaluation by default --------------------------------------------------------------------------------------------


def test_the_validation_split_is_found_or_its_absence_said(data, tmp_path, monkeypatch):
    def resolved(**options):
        config = FKDConfig(output_dir=str(tmp_path / "o"), train_split="train", **options)
        return resolve_eval_split(config)

    line, split = resolved(dataset=f"imagefolder:{data[0]}")
    assert split == "validation" and "evaluating on split 'validation'" in line
    flat = make_image_folder(tmp_path / "flat", per_class=1)
    line, split = resolved(dataset=f"imagefolder:{flat}")
    assert split == "" and "no validation split" in line
    line, split = resolved(dataset=f"imagefolder:{data[0]}", eval_split="none")
    assert split == "" and line == "no evaluation (--eval_split none)"
    assert resolved(dataset=f"imagefolder:{data[0]}", eval_split="val")[1] == "val"

    import datasets

    monkeypatch.setattr(datasets, "get_dataset_split_names", lambda *a, **kw: ["train", "validation", "test"])
    assert resolved(dataset="user/photos")[1] == "validation"
    monkeypatch.setattr(datasets, "get_dataset_split_names", lambda *a, **kw: ["train", "test"])
    assert resolved(dataset="user/photos")[1] == ""

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "get_dataset_split_names", offline)
    assert resolved(dataset="user/photos")[1] == ""


def test_eval_split_none_trains_without_evaluation(data, tmp_path, capsys):
    metrics = train(FKDConfig(**_options(data, tmp_path / "out", eval_split="none", max_steps=1)))
    assert not any(key.startswith("eval_") for key in metrics)
    assert "no evaluation (--eval_split none)" in capsys.readouterr().out


# --- loader workers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cores, processes, workers", [(1, 1, 0), (2, 1, 1), (2, 2, 0), (4, 1, 2), (8, 1, 4), (16, 2, 4), (8, 2, 2)]
)
def test_default_loader_workers_fit_the_machine(cores, processes, workers, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(processes))
    assert default_loader_workers() == workers
    config = FKDConfig(output_dir="out")
    lanes = plan_layout(config, (224, 224)).options["spread_lanes"]
    assert config.dataloader_num_workers == workers and lanes % max(workers, 1) == 0  # one decode each


def _worker_warnings(config: FKDConfig) -> list[str]:
    """The warnings about worker counts that building the Trainer's loaders and starting their workers give."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = build_trainer(config).trainer
        for loader in (trainer.get_train_dataloader(), trainer.get_eval_dataloader()):
            loader.check_worker_number_rationality()  # what torch runs when the workers start
    return [str(warning.message) for warning in caught if "worker" in str(warning.message)]


def test_the_default_workers_raise_no_warning_and_too_many_do(data, tmp_path):
    options = _options(data, tmp_path / "out", eval_split="validation")
    del options["dataloader_num_workers"]
    config = FKDConfig(**options)
    assert config.dataloader_num_workers < len(os.sched_getaffinity(0))
    assert _worker_warnings(config) == []
    too_many = FKDConfig(**options, dataloader_num_workers=len(os.sched_getaffinity(0)) + 1)
    assert any("suggested max number of worker" in message for message in _worker_warnings(too_many))
