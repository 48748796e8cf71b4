"""A checkpoint is complete or absent: stopped while saving (Ctrl-C, SIGTERM, SIGKILL), `fkd-hf train` names only a
complete checkpoint and its advice resumes from it; `--resume_from_checkpoint last` skips an incomplete one, naming it.
A non-finite loss stops training in one line, before its step, keeping the last complete checkpoint."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _fkd_data import make_label_set, make_splits
from safetensors.torch import load_file

from fkd_hf.cli import main as cli_main
from fkd_hf.training import FKDConfig, build_trainer
from fkd_hf.training.checkpoints import STAGING_DIR, is_complete, last_complete_checkpoint
from fkd_hf.training.data import collate_crops
from fkd_hf.training.trainer import NonFiniteLossError

REPO = Path(__file__).resolve().parent.parent
ADVICE = "is kept: rerun the same command with --resume_from_checkpoint last to continue from it."


@pytest.fixture(scope="module")
def labels(tmp_path_factory, teacher_dir):
    root = tmp_path_factory.mktemp("checkpoints")
    return make_label_set(make_splits(root / "images"), teacher_dir, root / "labels", num_crops=4)


def _options(labels, output_dir, **overrides) -> dict:
    options = dict(
        label_set=str(labels),
        student="test_resnet",
        input_size=32,
        num_crops=2,
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        max_steps=4,
        learning_rate=0.05,
        optim="sgd",
        warmup_steps=0,
        save_strategy="steps",
        save_steps=1,
        eval_split="none",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    return {**options, **overrides}


def _argv(options: dict) -> list[str]:
    return [f"--{key}={value}" for key, value in options.items()]


def _checkpoints(output_dir: Path) -> list[str]:
    return sorted(path.name for path in output_dir.glob("checkpoint-*"))


def _state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "trainer_state.json").read_text())


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_signal_while_saving_leaves_complete_checkpoints_and_advice_that_resumes(
    labels, tmp_path, signal_name, capsys, caplog
):
    """SIGTERM (what Slurm sends before a kill) is handled as Ctrl-C."""
    out = tmp_path / "out"
    argv = _argv(_options(labels, out))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, str(REPO / "tests" / "_interrupted_train.py"), signal_name, "3", *argv]
    stopped = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert _checkpoints(out) == ["checkpoint-1", "checkpoint-2"], stopped.stderr[-2000:]  # no half-written 3
    assert all(is_complete(out / name) for name in _checkpoints(out))
    if signal_name == "SIGKILL":  # no chance to clean up: the partial checkpoint stays out of sight
        assert stopped.returncode == -signal.SIGKILL and (out / STAGING_DIR / "checkpoint-3").is_dir()
    else:
        assert stopped.returncode == 128 + getattr(signal, signal_name), stopped.stderr[-2000:]  # 130, 143
        assert f"fkd-hf train: interrupted; {out / 'checkpoint-2'} {ADVICE}" in stopped.stderr.splitlines()
        assert not (out / STAGING_DIR).exists()
    first = (out / "checkpoint-1" / "trainer_state.json").stat().st_mtime_ns

    assert cli_main(["train", *argv, "--resume_from_checkpoint", "last"]) == 0  # the advice, followed
    assert _checkpoints(out) == [f"checkpoint-{step}" for step in (1, 2, 3, 4)] and not (out / STAGING_DIR).exists()
    assert (out / "checkpoint-1" / "trainer_state.json").stat().st_mtime_ns == first  # resumed, not restarted
    assert _state(out / "checkpoint-4")["global_step"] == 4 and (out / "model.safetensors").is_file()
    assert "incomplete" not in capsys.readouterr().err + caplog.text


def test_sigterm_to_fkd_hf_train_is_handled_as_ctrl_c(labels, tmp_path):
    """`fkd-hf train` stopped as a scheduler stops it, at whatever moment."""
    out = tmp_path / "out"
    argv = _argv(_options(labels, out, max_steps=1000))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    with subprocess.Popen(
        [sys.executable, "-m", "fkd_hf", "train", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as running:
        deadline = time.monotonic() + 300
        while not (out / "checkpoint-2").is_dir() and running.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        running.send_signal(signal.SIGTERM)
        err = running.communicate(timeout=120)[1]
    assert running.returncode == 128 + signal.SIGTERM, err[-2000:]
    kept = last_complete_checkpoint(out)
    assert kept and f"fkd-hf train: interrupted; {kept} {ADVICE}" in err.splitlines()
    assert all(is_complete(path) for path in out.glob("checkpoint-*")) and not (out / STAGING_DIR).exists()


def test_resume_last_names_and_skips_an_incomplete_checkpoint(labels, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    options = _options(labels, out, max_steps=2)
    assert cli_main(["train", *_argv(options)]) == 0
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-3")  # as a save cut short leaves it (older versions)
    (out / "checkpoint-3" / "trainer_state.json").unlink()
    (out / "checkpoint-10").mkdir()  # sorted by step, not by name
    caplog.clear()

    assert last_complete_checkpoint(out) == str(out / "checkpoint-2")
    assert caplog.messages == [
        f"{out / name} is incomplete (no readable trainer_state.json: its save was cut short): skipped."
        for name in ("checkpoint-10", "checkpoint-3")
    ]

    assert cli_main(["train", *_argv({**options, "max_steps": 3}), "--resume_from_checkpoint", "last"]) == 0
    assert is_complete(out / "checkpoint-3") and _state(out / "checkpoint-3")["global_step"] == 3  # replaced

    (out / "checkpoint-3" / "trainer_state.json").write_text('{"global_st')  # cut short while written
    assert cli_main(["train", *_argv(options), "--resume_from_checkpoint", str(out / "checkpoint-3")]) == 1
    assert f"{out / 'checkpoint-3'} is an incomplete checkpoint" in capsys.readouterr().err


def test_the_interrupt_message_names_only_a_complete_checkpoint(labels, tmp_path, monkeypatch, capsys):
    import fkd_hf.training

    def interrupted(config):
        Path(config.output_dir, "checkpoint-7").mkdir(parents=True)
        Path(config.output_dir, "checkpoint-7", "trainer_state.json").write_text('{"global_step": 7}')
        Path(config.output_dir, "checkpoint-8").mkdir()  # being written when the interrupt came
        raise KeyboardInterrupt

    monkeypatch.setattr(fkd_hf.training, "train", interrupted)
    assert cli_main(["train", *_argv(_options(labels, tmp_path / "out"))]) == 130
    err = capsys.readouterr().err
    assert f"fkd-hf train: interrupted; {tmp_path / 'out' / 'checkpoint-7'} {ADVICE}" in err.splitlines()


# --- a non-finite loss ------------------------------------------------------------------------------------------------


def test_non_finite_soft_labels_stop_training_before_their_step(labels, tmp_path):
    batches = []

    def poisoned(samples):  # the third batch carries a NaN soft label
        batch = collate_crops(samples)
        batches.append(batch)
        if len(batches) == 3:
            batch["topk_values"][1, 0] = float("nan")
        return batch

    trainer = build_trainer(FKDConfig(**_options(labels, tmp_path, crop_layout="grouped"))).trainer
    trainer.data_collator = poisoned
    with pytest.raises(NonFiniteLossError) as caught:
        trainer.train()
    message = str(caught.value)
    assert message.startswith(
        "training stopped at step 3: the loss is nan; 1 of the batch's 8 crops have non-finite "
        f"targets in the label set {labels}"
    )
    assert message.endswith(f"{tmp_path / 'checkpoint-2'} is kept (the last complete checkpoint).")
    assert _checkpoints(tmp_path) == ["checkpoint-1", "checkpoint-2"] and trainer.state.global_step == 2
    kept = load_file(tmp_path / "checkpoint-2" / "model.safetensors")
    assert all(value.isfinite().all() for value in kept.values())
    assert all(param.isfinite().all() for param in trainer.model.parameters())  # the step was not applied
    assert torch.equal(trainer.model.state_dict()["timm_model.fc.weight"], kept["timm_model.fc.weight"])


def test_a_diverging_run_stops_in_one_line_that_names_the_step_and_the_cause(labels, tmp_path, capsys):
    options = _options(labels, tmp_path / "out", learning_rate=1e30)
    assert cli_main(["train", *_argv(options)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fkd-hf train")]
    assert len(errors) == 1 and re.fullmatch(
        r"fkd-hf train: error: training stopped at step 2: the loss is (nan|inf); the batch's targets are finite, "
        rf"so the student diverged: lower --learning_rate \(1e\+30\)\. {re.escape(str(tmp_path / 'out'))}/checkpoint-1 "
        r"is kept \(the last complete checkpoint\)\.",
        errors[0],
    ), errors
