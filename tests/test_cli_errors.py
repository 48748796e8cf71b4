"""Every fkd-hf command reports an error as one line (exit 2 for usage, 1 otherwise), without a token; --debug adds
the traceback; config-file values are converted or refused by field type before anything is written."""

from __future__ import annotations

import sys
import types

import pytest
import yaml
from hub_server import RUNNER_TOKEN as SECRET

from fkd_hf.cli import COMMANDS, main, run_command, take_debug_flag
from fkd_hf.cli.arguments import UsageError


def _command(error: BaseException) -> types.SimpleNamespace:
    """A command module whose main raises ``error``."""

    def failing_main(argv):
        raise error

    return types.SimpleNamespace(PROG="fkd-hf fake", main=failing_main)


def _error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unknown_option_is_one_line_with_exit_status_two(command, capsys):
    assert main([command, "--no-such-option", "x"]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"fkd-hf {command}: error: ")
    assert lines[0].endswith(f"(run `fkd-hf {command} --help` for the options)")


@pytest.mark.parametrize(
    "error, status, expected",
    [
        (UsageError("bad value for --x"), 2, "fkd-hf fake: error: bad value for --x"),
        (
            FileNotFoundError("labels/ is not a label set:\n  give a folder"),
            1,
            "fkd-hf fake: error: labels/ is not a label set: give a folder",
        ),
        (KeyError("Dataset 'd' has no image column 'img'"), 1, "fkd-hf fake: error: Dataset 'd' has no image column"),
    ],
)
def test_errors_are_one_line_with_their_exit_status(error, status, expected, capsys):
    assert run_command(_command(error), []) == status
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith(expected)


def test_an_unexpected_error_is_named_and_points_to_debug(capsys):
    assert run_command(_command(ZeroDivisionError("division by zero")), []) == 1
    lines = _error_lines(capsys)
    assert lines == [
        "fkd-hf fake: error: ZeroDivisionError: division by zero",
        "fkd-hf fake: rerun with --debug for the traceback.",
    ]


def test_debug_flag_or_variable_adds_the_traceback(capsys, monkeypatch):
    assert run_command(_command(ValueError("broken")), [], debug=True) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and err.rstrip().endswith("error: broken")
    monkeypatch.setenv("FKD_HF_DEBUG", "1")
    assert main(["push-labels", "/no/such/folder", "--repo-id", "user/never"]) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("FKD_HF_DEBUG", "0")
    assert main(["push-labels", "/no/such/folder", "--repo-id", "user/never", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    assert main(["push-labels", "/no/such/folder", "--repo-id", "user/never"]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_debug_is_taken_out_of_the_arguments_except_as_the_trainers_option(monkeypatch):
    monkeypatch.delenv("FKD_HF_DEBUG", raising=False)
    assert take_debug_flag(["--debug", "train", "--x", "1"]) == (True, ["train", "--x", "1"])
    assert take_debug_flag(["train", "--x", "1", "--debug"]) == (True, ["train", "--x", "1"])
    trainer_debug = ["train", "--debug", "underflow_overflow", "--x", "1"]
    assert take_debug_flag(trainer_debug) == (False, trainer_debug)


def test_no_token_is_printed_even_with_the_traceback(capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert run_command(_command(OSError(f"request with {SECRET} failed")), [], debug=True) == 1
    err = capsys.readouterr().err
    assert SECRET not in err and "request with *** failed" in err


def test_a_hub_authentication_failure_says_how_to_log_in(capsys):
    from huggingface_hub.errors import LocalTokenNotFoundError

    assert run_command(_command(LocalTokenNotFoundError("Token is required")), []) == 1
    lines = _error_lines(capsys)
    assert lines[0] == "fkd-hf fake: error: LocalTokenNotFoundError: Token is required"
    assert len(lines) == 2 and "hf auth login" in lines[1]


def test_ctrl_c_exits_with_130_and_one_line(capsys):
    assert run_command(_command(KeyboardInterrupt()), []) == 130
    assert _error_lines(capsys) == ["fkd-hf fake: interrupted."]


# --- values of the wrong type, before any work ------------------------------------------------------------------------

COMMAND_CONFIGS = {
    "generate": {"dataset": "imagefolder:photos", "stored_crops": 2},
    "train": {"label_set": "labels", "student": "resnet18", "num_crops": 2},
    "demo": {"num_crops": 2},
}
BAD_VALUES = [
    ("num_crops", 2.7, "invalid int value: '2.7'"),
    ("temperature", "warm", "invalid float value: 'warm'"),
    ("seed", True, "invalid int value: 'True'"),
    ("seed", None, "seed takes int, got None"),
    ("seed", [2, 3], "seed takes int, got [2, 3]"),
    ("seed", {"a": 1}, "seed takes int, got {'a': 1}"),
]


@pytest.fixture
def no_work(monkeypatch):
    """Makes the work behind generate, train and demo fail the test if a command gets that far."""
    import fkd_hf.demo
    import fkd_hf.generation
    import fkd_hf.training

    def never(*args, **kwargs):
        raise AssertionError("the command started its work")

    for module, name in ((fkd_hf.generation, "generate"), (fkd_hf.training, "train"), (fkd_hf.demo, "run_demo")):
        monkeypatch.setattr(module, name, never)


@pytest.mark.parametrize("command", sorted(COMMAND_CONFIGS))
@pytest.mark.parametrize("key, value, message", BAD_VALUES)
def test_a_config_value_of_the_wrong_type_is_refused_before_any_file(
    command, key, value, message, tmp_path, capsys, no_work
):
    values = dict(COMMAND_CONFIGS[command])
    if command == "generate" and key == "num_crops":
        key = "stored_crops"  # generate's R
        message = message.replace("num_crops", "stored_crops")
    values.update({key: value, "output_dir": str(tmp_path / "out")})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(values))
    assert main([command, "--config", str(recipe)]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"fkd-hf {command}: error: ") and message in lines[0], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", sorted(COMMAND_CONFIGS))
def test_a_flag_of_the_wrong_type_is_refused_before_any_file(command, tmp_path, capsys, no_work):
    argv = [f"--{key}={value}" for key, value in COMMAND_CONFIGS[command].items()]
    assert main([command, *argv, "--output_dir", str(tmp_path / "out"), "--seed", "1.5"]) == 2
    assert "invalid int value: '1.5'" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_config_file_value_of_a_convertible_type_is_converted(tmp_path):
    from fkd_hf.cli.arguments import parse_config
    from fkd_hf.training import FKDConfig

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("output_dir: out\nnum_crops: '3'\ntemperature: 2\nstudent_pretrained: 'yes'\nmean: null\n")
    (config,) = parse_config([FKDConfig], ["--config", str(recipe)], "fkd-hf train", "")
    assert (config.num_crops, config.temperature, config.student_pretrained, config.mean) == (3, 2.0, True, None)


def test_train_help_lists_fkd_options_before_the_trainers(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    body = out[out.index("\n\n", out.index("usage:")) :]  # after the usage line, which lists every flag
    own, trainer = body.index("\nFKDConfig options:\n"), body.index("\nTrainingArguments options:\n")
    for name in ("label_set", "student", "num_crops", "fkd_epochs", "temperature", "overwrite_output_dir"):
        assert own < body.index(f"\n  --{name} ") < trainer, name
    for name in ("learning_rate", "per_device_train_batch_size", "seed", "dataloader_num_workers"):
        assert trainer < body.index(f"\n  --{name} "), name


def _nested_aliases(depth: int) -> str:
    """A small YAML config whose ``dataset`` holds aliases nested in each other: 9**depth values once expanded."""
    levels = ["&a0 [x, x, x, x, x, x, x, x, x]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, depth)]
    return f"dataset: [{', '.join(levels)}]\noutput_dir: out\n"


@pytest.mark.parametrize("command", sorted(COMMAND_CONFIGS))
def test_a_config_of_nested_aliases_is_refused_at_once_in_one_line(command, tmp_path, capsys, no_work):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(_nested_aliases(6))  # half a million values; the 443 bytes held 9**9
    assert len(recipe.read_bytes()) < 500
    assert main([command, "--config", str(recipe)]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "expands to more than 10000 values (YAML aliases" in lines[0], lines
    assert len(lines[0]) < 300  # the expanded value is never written out


def test_a_config_may_still_repeat_a_value_through_an_alias(tmp_path):
    from fkd_hf.cli.arguments import parse_config
    from fkd_hf.generation import GenerateConfig

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset: d\noutput_dir: o\nmean: &half [0.5, 0.5, 0.5]\nstd: *half\n")
    (config,) = parse_config([GenerateConfig], ["--config", str(recipe)], "fkd-hf generate", "")
    assert config.mean == config.std == [0.5, 0.5, 0.5]


# --- one exit-status rule for every command ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--student", "resnet18"], "the following arguments are required: --label_set"),
        (["train", "--label_set", "labels"], "the following arguments are required: --student"),
        (["train"], "the following arguments are required: --label_set, --student"),
        (
            ["train", "--label_set", "outputs/nonexistent", "--student", "resnet18"],
            "no label-set folder outputs/nonexistent (and no Hub dataset of that name",
        ),
        (["train", "--label_set", "./no/such/folder", "--student", "resnet18"], "neither a label-set folder nor"),
        (["generate", "--dataset", "imagefolder:/no/such/folder"], "Image folder /no/such/folder does not exist"),
        (["generate", "--dataset", "./no/such/folder"], "is neither an existing folder nor a Hub id"),
        (["demo", "--dataset", "imagefolder:/no/such/folder"], "is neither an existing folder nor a Hub dataset id"),
    ],
)
def test_a_command_line_that_cannot_be_used_exits_with_two_in_every_command(
    argv, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    assert main([*argv, "--output_dir", str(tmp_path / "out")]) == 2
    lines = _error_lines(capsys)
    assert lines[-1].startswith(f"fkd-hf {argv[0]}: error: ") and message in lines[-1], lines
    assert not (tmp_path / "out").exists()


def test_a_full_disk_in_the_demo_is_exit_one_with_its_advice_once(tmp_path, capsys, monkeypatch):
    import shutil
    from pathlib import Path

    import fkd_hf.demo
    from fkd_hf.demo import output as demo_output

    full = shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20)
    monkeypatch.setattr(demo_output.shutil, "disk_usage", lambda path: full)
    monkeypatch.setattr(fkd_hf.demo, "run_demo", lambda config: demo_output.prepare_output(Path(config.output_dir)))
    assert main(["demo", "--output_dir", str(tmp_path / "out")]) == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("fkd-hf demo: error: no space left on the disk (only 1 MiB free")
    assert lines[0].count("free some space") == 1 and lines[0].count("--output-dir") == 1


# --- SIGTERM stops a command as Ctrl-C does ---------------------------------------------------------------------------


def _signalling(signum: int, returned: int | None = None) -> types.SimpleNamespace:
    """A command that signals itself, then returns ``returned`` if it catches the interrupt (as generate, train and
    demo do) or lets it reach the runner."""
    import os
    import time

    def signalled_main(argv):
        try:
            os.kill(os.getpid(), signum)
            time.sleep(30)  # the handler interrupts this at once
            raise AssertionError("the signal did not interrupt the command")
        except KeyboardInterrupt:
            if returned is None:
                raise
            print("fkd-hf fake: interrupted; 2 shards kept", file=sys.stderr)
            return returned

    return types.SimpleNamespace(PROG="fkd-hf fake", main=signalled_main)


@pytest.mark.parametrize("caught", [True, False])
def test_sigterm_is_handled_as_ctrl_c_with_exit_status_143(caught, capsys):
    import signal

    def before(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, before)
    try:
        assert run_command(_signalling(signal.SIGTERM, 130 if caught else None), []) == 143
        assert signal.getsignal(signal.SIGTERM) is before  # the handler the runner found is back
    finally:
        signal.signal(signal.SIGTERM, previous)
    expected = "fkd-hf fake: interrupted; 2 shards kept" if caught else "fkd-hf fake: interrupted."
    assert _error_lines(capsys) == [expected]


def test_ctrl_c_keeps_exit_status_130(capsys):
    import signal

    assert run_command(_signalling(signal.SIGINT, 130), []) == 130
    assert run_command(_signalling(signal.SIGINT), []) == 130
    assert _error_lines(capsys) == ["fkd-hf fake: interrupted; 2 shards kept", "fkd-hf fake: interrupted."]


SIGTERM_AFTER_TWO_SHARDS = """
import os, signal, sys, time
from fkd_hf.labels.writer import LabelSetWriter

write_shard = LabelSetWriter.write_shard

def write_then_wait(self, shard, *args):
    path = write_shard(self, shard, *args)
    if shard == 1:
        print("two shards written", flush=True)
        time.sleep(120)  # the test sends SIGTERM now
    return path

LabelSetWriter.write_shard = write_then_wait
from fkd_hf.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_to_generate_keeps_the_finished_shards_and_the_rerun_resumes(image_folder, teacher_dir, tmp_path):
    import os
    import signal
    import subprocess

    from conftest import REPO_ROOT

    from fkd_hf import load_label_set

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
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", SIGTERM_AFTER_TWO_SHARDS, *argv],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        try:
            assert "two shards written\n" in iter(child.stdout.readline, "")  # reads up to the marker, or to the end
            child.send_signal(signal.SIGTERM)
            child.communicate(timeout=120)
        finally:
            child.kill()
    err = log.read_text()
    assert child.returncode == 143, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == (
        f"fkd-hf generate: interrupted; 2 of 6 shards kept in {output}: rerun the same command to resume."
    )
    assert "Traceback" not in err
    assert main(argv) == 0
    assert load_label_set(output).metadata.num_shards == 6


# --- usage and help ---------------------------------------------------------------------------------------------------


def _help(command: str, capsys, monkeypatch) -> tuple[str, object]:
    """``fkd-hf <command> --help`` as printed, and the parser that printed it."""
    import argparse

    printed, print_help = [], argparse.ArgumentParser.print_help

    def recording(parser, file=None):
        printed.append(parser)
        print_help(parser, file)

    monkeypatch.setattr(argparse.ArgumentParser, "print_help", recording)
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0 and len(printed) == 1
    return capsys.readouterr().out, printed[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_the_default_of_every_option_that_has_one(command, capsys, monkeypatch):
    import argparse
    import re

    text, parser = _help(command, capsys, monkeypatch)
    blocks = {block.split()[0].rstrip(","): " ".join(block.split()) for block in re.split(r"\n(?=  -)", text)[1:]}
    with_default = [
        action.option_strings[0]
        for action in parser._actions
        if action.option_strings
        and action.default not in (None, "", argparse.SUPPRESS)
        and action.help is not argparse.SUPPRESS
        and not isinstance(action, argparse._StoreConstAction)
    ]
    missing = [flag for flag in with_default if "default" not in blocks[flag].lower()]
    assert missing == [], f"no default shown for {missing}"
    assert command in ("push-student", "merge-labels") or "(default: " in text


def test_help_shows_defaults_as_they_are_typed(capsys, monkeypatch):
    text = " ".join(_help("generate", capsys, monkeypatch)[0].split())
    assert "R: crops stored per image. (default: 8)" in text
    assert "(default: 0.08 1.0)" in text and "(default: false)" in text  # a list, a true|false flag


@pytest.mark.parametrize(
    "command, name", [("import-fkd", "LABEL_DIR"), ("merge-labels", "LABEL_SETS [LABEL_SETS ...]")]
)
def test_the_positional_argument_is_shown_as_one(command, name, capsys, monkeypatch):
    text, _ = _help(command, capsys, monkeypatch)
    usage = " ".join(text[: text.index("\n\n")].split())
    flag = "--" + name.split()[0].lower()
    assert usage.endswith(f" {name}") and flag not in usage
    assert f"\npositional arguments:\n  {name.split()[0]} " in text


def test_the_positional_argument_comes_from_the_command_line_a_flag_or_the_config(tmp_path):
    from fkd_hf.cli.arguments import parse_config
    from fkd_hf.generation.import_config import ImportFKDConfig

    def label_dir(*argv):
        (config,) = parse_config(
            [ImportFKDConfig],
            [*argv, "--dataset", "d", "--output_dir", "o"],
            "fkd-hf import-fkd",
            "",
            positional="label_dir",
        )
        return config.label_dir

    recipe = tmp_path / "import.yaml"
    recipe.write_text("label_dir: from-config\n")
    assert label_dir("files") == label_dir("--label_dir", "files") == label_dir("--label-dir=files") == "files"
    assert label_dir("--config", str(recipe)) == "from-config"
    assert label_dir("--config", str(recipe), "files") == label_dir("--config", str(recipe), "--label_dir", "files")
    assert label_dir("--dataset", "d2", "files") == "files"  # after an option too
    with pytest.raises(UsageError, match=r"the following arguments are required: LABEL_DIR \(run `fkd-hf import-fkd"):
        label_dir()


def test_more_crops_per_image_than_the_label_set_stores_exits_with_two(image_folder, teacher_dir, tmp_path, capsys):
    from _fkd_data import make_label_set

    labels = make_label_set(image_folder, teacher_dir, tmp_path / "labels", num_crops=2)
    capsys.readouterr()
    argv = ["train", "--label_set", str(labels), "--student", "test_resnet", "--num_crops", "3", "--use_cpu", "true"]
    assert main([*argv, "--output_dir", str(tmp_path / "out")]) == 2
    lines = _error_lines(capsys)
    assert "num_crops must be between 1 and the 2 crops" in lines[-1] and "--stored_crops 3" in lines[-1]


def test_an_image_column_the_dataset_lacks_exits_with_two(image_folder, tmp_path, capsys):
    argv = ["generate", "--dataset", f"imagefolder:{image_folder}", "--image_column", "img"]
    assert main([*argv, "--output_dir", str(tmp_path / "out")]) == 2
    lines = _error_lines(capsys)
    assert "has no image column 'img'" in lines[-1] and "--image-column" in lines[-1]
    assert not (tmp_path / "out").exists()
