"""The README cannot drift: every command in it is parsed by the real command line, the cheap ones run for real,
the test command is the one CI runs, and the demo command is run by CI (`.ci/run`)."""

from __future__ import annotations

import re
import shlex
import types

import pytest
import yaml

from conftest import IMAGENETTE, REPO_ROOT
from fkd_hf.cli import COMMANDS, main

README = (REPO_ROOT / "README.md").read_text()
CI_SCRIPT = (REPO_ROOT / ".ci" / "run").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        lines += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return lines


def _fkd_hf_argv(command: str) -> list[str] | None:
    """The fkd-hf arguments of a README command (after `pip install ... &&`, or after `accelerate launch -m fkd_hf`)."""
    command = command.split("&&")[-1].strip()
    words = shlex.split(command.split("#")[0])
    if words[:1] == ["fkd-hf"]:
        return words[1:]
    if words[:2] == ["accelerate", "launch"]:
        config = words[words.index("--config_file") + 1]
        assert yaml.safe_load((REPO_ROOT / config).read_text())["distributed_type"]
        return words[words.index("fkd_hf") + 1:]
    return None


def test_every_readme_command_is_known():
    commands = _commands()
    assert commands, "the README has no bash commands"
    for command in commands:
        first = command.split("&&")[0].split()
        assert first[0] in ("pip", "fkd-hf", "accelerate", "python"), f"unchecked README command: {command}"


def test_ci_runs_the_readme_test_command_and_first_command():
    install_and_test = [c for c in _commands() if "pytest" in c]
    assert len(install_and_test) == 1
    assert install_and_test[0] in CI_SCRIPT
    first = _commands()[0]
    assert first.startswith("pip install") and first.split("&&")[-1].strip() in CI_SCRIPT


@pytest.fixture
def recorded(monkeypatch):
    """Replaces the work behind each command with a recorder, so a README command is parsed but not run."""
    import fkd_hf.demo
    import fkd_hf.generation
    import fkd_hf.hub
    import fkd_hf.labels
    import fkd_hf.training

    calls = []

    def recorder(name, result=None):
        return lambda *args, **kwargs: calls.append((name, args, kwargs)) or result

    monkeypatch.setattr(fkd_hf.generation, "generate", recorder("generate"))
    monkeypatch.setattr(fkd_hf.training, "train", recorder("train"))
    monkeypatch.setattr(fkd_hf.demo, "run_demo", recorder("demo", types.SimpleNamespace(summary="")))
    monkeypatch.setattr(fkd_hf.hub, "push_label_set", recorder("push-labels", "url"))
    monkeypatch.setattr(fkd_hf.hub, "push_student", recorder("push-student", "url"))
    monkeypatch.setattr(fkd_hf.generation, "import_fkd", recorder("import-fkd"))
    merged = types.SimpleNamespace(num_rows=0, kind="full", k=0, teacher="")
    monkeypatch.setattr(fkd_hf.labels, "merge_label_sets", recorder("merge-labels", merged))
    monkeypatch.setattr(fkd_hf.generation, "import_fkd", recorder("import-fkd"))
    merged = types.SimpleNamespace(num_rows=0, kind="full", k=0, teacher="")
    monkeypatch.setattr(fkd_hf.labels, "merge_label_sets", recorder("merge-labels", merged))
    return calls


def test_every_fkd_hf_command_in_the_readme_parses(recorded, monkeypatch):
    import transformers.training_args

    monkeypatch.chdir(REPO_ROOT)
    # The GPU recipes ask for bf16, which TrainingArguments checks against the device at parse time.
    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda: True)
    argvs = [argv for argv in map(_fkd_hf_argv, _commands()) if argv is not None]
    assert {argv[0] for argv in argvs} == set(COMMANDS), "document every command in the README"
    for argv in argvs:
        before = len(recorded)
        assert main(argv) == 0, argv
        assert len(recorded) == before + 1 and recorded[-1][0] == argv[0]


@pytest.mark.skipif(not IMAGENETTE.is_dir(), reason="needs ../shared/data/imagenette-mini")
def test_quickstart_labels_and_their_python_snippet(tmp_path, monkeypatch):
    """Runs the README's labelling command as written (from a temporary working folder) and its Python snippet."""
    quickstart = next(c for c in _commands() if "fkd-hf generate" in c and "--max-rows" in c)
    argv = _fkd_hf_argv(quickstart)
    workdir = tmp_path / "project"
    workdir.mkdir()
    (tmp_path / "shared").symlink_to(IMAGENETTE.parent.parent)  # the README's ../shared/data/... path
    monkeypatch.chdir(workdir)
    assert main(argv) == 0
    snippet = next(block for block in _blocks("python") if "outputs/quickstart-labels" in block)
    exec(compile(snippet, "README.md", "exec"), {})


def test_python_snippets_compile():
    for block in _blocks("python"):
        compile(block, "README.md", "exec")
