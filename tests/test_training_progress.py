"""Progress bars are labelled (`train`, `eval`, `generate [rank/processes]`); in a log file (stderr not a terminal)
they are plain lines, with no carriage return or cursor-up escape (from the evaluation bar nested under the training
bar, or from the libraries' own bars)."""

from __future__ import annotations

import io
import sys

import pytest
from _fkd_data import make_label_set, make_splits

from fkd_hf.cli import main as cli_main
from fkd_hf.progress import LogLines
from fkd_hf.training import FKDConfig, build_trainer


@pytest.fixture(scope="module")
def labels(tmp_path_factory, teacher_dir):
    root = tmp_path_factory.mktemp("progress")
    return make_label_set(make_splits(root / "images"), teacher_dir, root / "labels", num_crops=4)


def _options(labels, output_dir) -> dict:
    """Three steps, each evaluated (the nested bar) and saved (transformers' shard bar)."""
    return dict(
        label_set=str(labels),
        student="test_resnet",
        input_size=32,
        num_crops=2,
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=2,
        max_steps=3,
        learning_rate=0.05,
        optim="sgd",
        eval_split="validation",
        eval_strategy="steps",
        eval_steps=1,
        save_strategy="steps",
        save_steps=1,
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_labelled_lines_without_escapes(labels, tmp_path, capsys):
    assert cli_main(["train", *[f"--{key}={value}" for key, value in _options(labels, tmp_path).items()]]) == 0
    err = capsys.readouterr().err
    assert "\x1b[" not in err and "Writing model shards" not in err
    bars = [line for line in err.splitlines() if line.startswith(("train:", "eval:"))]
    assert not any("\r" in line for line in bars)
    assert bars[0].startswith("train:  33% 1/3 [") and bars[-1].startswith("eval: 100% 3/3 [")  # 6 photos / 2
    assert sum(line.startswith("train: 100% 3/3 [") for line in bars) == 1
    assert sum(line.startswith("eval: 100% 3/3 [") for line in bars) == 4  # after each step, and at the end


def test_a_terminal_gets_labelled_bars(labels, tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    build_trainer(FKDConfig(**_options(labels, tmp_path))).trainer.train()
    shown = terminal.getvalue()
    assert "train: 100%" in shown and "3/3 [" in shown and "eval:" in shown and "\r" in shown  # redrawn in place


def test_log_lines_come_at_the_first_update_every_interval_and_at_the_end(monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr("fkd_hf.progress.time.monotonic", lambda: now[0])
    bar = LogLines("train", 100, "step", interval=30)
    for _ in range(100):
        now[0] += 1
        bar.update()
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("|")[0].split(" [")[0] for line in lines] == [
        "train:   1% 1/100",
        "train:  31% 31/100",
        "train:  61% 61/100",
        "train:  91% 91/100",
        "train: 100% 100/100",
    ]


def test_log_lines_without_a_total_show_their_postfix_and_end_at_close(monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr("fkd_hf.progress.time.monotonic", lambda: now[0])
    with LogLines("generate [0/1]", None, "img", interval=30) as bar:
        for _ in range(40):
            now[0] += 1
            bar.update()
            bar.set_postfix(crops_per_s=180, refresh=False)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" [00")[0] for line in lines] == [
        "generate [0/1]: 1img",
        "generate [0/1]: 31img",
        "generate [0/1]: 40img",
    ]
    assert all(line.endswith("crops_per_s=180]") for line in lines[1:]) and not any("\r" in line for line in lines)


def test_generate_writes_labelled_lines_to_a_log_file(image_folder, teacher_dir, tmp_path, capsys):
    from datasets.utils.logging import is_progress_bar_enabled

    enabled = is_progress_bar_enabled()
    argv = ["generate", "--dataset", f"imagefolder:{image_folder}", "--teacher", str(teacher_dir)]
    assert cli_main([*argv, "--output_dir", str(tmp_path / "labels"), "--stored_crops", "2", "--k", "2"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("generate [0/1]:")]
    assert lines and lines[-1].startswith("generate [0/1]: 100% 18/18 [") and "crops_per_s=" in lines[-1]
    assert "\r" not in err and "\x1b[" not in err  # datasets' own bars too, only while the command runs
    assert is_progress_bar_enabled() == enabled
