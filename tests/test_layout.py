"""The package's shape: lazy imports, torch-free help, one definition of each shared job, renamed options."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

HEAVY = ("torch", "transformers", "datasets", "timm")


def _imported_after(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has imported after running ``code``."""
    probe = f"import sys\n{code}\nprint(__import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_fkd_hf_loads_no_heavy_library_until_a_name_needs_it():
    assert _imported_after("import fkd_hf; fkd_hf.__version__; fkd_hf.GenerateConfig") == []
    assert "torch" in _imported_after("import fkd_hf; fkd_hf.FKDTrainer")


@pytest.mark.parametrize(
    "command", [[], ["generate"], ["demo"], ["push-labels"], ["push-student"], ["import-fkd"], ["merge-labels"]]
)
def test_help_prints_without_importing_torch(command):
    code = (
        f"import contextlib, io\nfrom fkd_hf.cli import main\nwith contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try:\n        main({[*command, '--help']!r})\n    except SystemExit:\n        pass"
    )
    assert _imported_after(code) == []


def test_public_names_resolve_and_unknown_ones_raise():
    import fkd_hf

    for name in fkd_hf.__all__:
        assert getattr(fkd_hf, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fkd_hf.nope  # noqa: B018


def _definitions(name: str) -> list[str]:
    """Modules of fkd_hf and benchmarks that define a top-level function or class called ``name``."""
    found = []
    for path in [*(REPO_ROOT / "fkd_hf").rglob("*.py"), *(REPO_ROOT / "benchmarks").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                found.append(path.relative_to(REPO_ROOT).as_posix())
    return found


@pytest.mark.parametrize(
    "name, home",
    [
        ("TeacherRunner", "fkd_hf/models/teacher_runner.py"),
        ("LabelSetWriter", "fkd_hf/labels/writer.py"),
        ("build_trainer", "fkd_hf/training/builder.py"),
        ("normalize", "fkd_hf/models/pixels.py"),
        ("is_repo_id", "fkd_hf/repo_ids.py"),
    ],
)
def test_each_shared_job_is_defined_once(name, home):
    assert _definitions(name) == [home]


def test_generate_accepts_the_old_flag_name_with_a_note(capsys):
    from fkd_hf.cli.arguments import parse_config
    from fkd_hf.cli.generate import PROG, RENAMED
    from fkd_hf.generation import GenerateConfig

    (config,) = parse_config(
        [GenerateConfig], ["--dataset", "d", "--output_dir", "o", "--num-crops", "3"], PROG, "", renamed=RENAMED
    )
    assert config.stored_crops == 3
    assert "--num_crops is deprecated" in capsys.readouterr().err


def test_config_values_are_converted_by_field_type_before_any_work(tmp_path):
    from fkd_hf.cli.arguments import UsageError, parse_config
    from fkd_hf.generation import GenerateConfig

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset: d\noutput_dir: o\nstored_crops: 2.7\n")
    with pytest.raises(UsageError, match="--stored_crops.*invalid int value: '2.7'"):
        parse_config([GenerateConfig], ["--config", str(recipe)], "fkd-hf generate", "")
    recipe.write_text("dataset: d\noutput_dir: o\nstored_crops: 3\nmean: [0.5, 0.5, 0.5]\nstreaming: true\n")
    (config,) = parse_config([GenerateConfig], ["--config", str(recipe), "--stored_crops", "5"], "fkd-hf generate", "")
    assert (config.stored_crops, config.mean, config.streaming) == (5, [0.5, 0.5, 0.5], True)


def test_version_one_metadata_reads_with_r_under_its_old_name():
    from fkd_hf.labels.format import FORMAT_VERSION, LabelSetMetadata

    fields = {name: None for name in LabelSetMetadata.__dataclass_fields__}
    fields.update(
        kind="hard",
        k=1,
        num_classes=2,
        class_names=["a", "b"],
        temperature=1.0,
        seed=0,
        crop_scale=[0.08, 1.0],
        crop_ratio=[0.75, 1.33],
        skipped_rows=[],
    )
    version_one = {key: value for key, value in fields.items() if key not in ("stored_crops", "replay")}
    version_one.update(num_crops=6, format_version=1)
    metadata = LabelSetMetadata.from_dict(version_one)
    assert metadata.stored_crops == 6 and metadata.format_version == FORMAT_VERSION
    assert metadata.replay == "pil"  # every set made before replays were named


def test_no_public_name_is_shadowed_by_a_submodule_of_the_same_name():
    import importlib
    import pkgutil

    for package in [
        "fkd_hf",
        "fkd_hf.labels",
        "fkd_hf.models",
        "fkd_hf.generation",
        "fkd_hf.training",
        "fkd_hf.hub",
        "fkd_hf.demo",
        "fkd_hf.cli",
    ]:
        module = importlib.import_module(package)
        submodules = {info.name for info in pkgutil.iter_modules(module.__path__)}
        assert set(getattr(module, "__all__", [])) & submodules == set(), package


# --- layers: imports point down only ----------------------------------------------------------------------------------

# Each top-level module or subpackage of fkd_hf by layer, lowest first. A module may import its own subpackage and any
# lower layer; two subpackages of one layer (generation and training) import neither each other nor anything above.
LAYERS = (
    ("_lazy", "version", "errors", "config_io", "repo_ids", "cpu_memory", "progress"),  # used by every layer
    ("labels",),
    ("hub",),
    ("models",),
    ("generation", "training"),
    ("demo",),
    ("cli",),
    ("__main__",),  # `python -m fkd_hf` runs the command line
    ("",),  # fkd_hf/__init__.py: the lazy facade over every layer
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _module_name(path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _lazy_structure(tree: ast.Module) -> dict[str, str]:
    """A package ``__init__``'s lazy names (``lazy_namespace(..., {module: [names]})``) as name -> submodule."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_namespace":
            return {name: module for module, names in ast.literal_eval(node.args[2]).items() for name in names}
    return {}


def _import_graph() -> dict[str, set[str]]:
    """module -> the fkd_hf modules it imports, anywhere in it (inside functions and ``TYPE_CHECKING`` too). A name
    taken from a lazy package counts as an import of the submodule that defines it."""
    trees = {_module_name(path): (path, ast.parse(path.read_text())) for path in (REPO_ROOT / "fkd_hf").rglob("*.py")}
    lazy = {name: _lazy_structure(tree) for name, (path, tree) in trees.items() if path.name == "__init__.py"}
    graph: dict[str, set[str]] = {}
    for name, (path, tree) in trees.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = graph.setdefault(name, set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name.split(".")[0] == "fkd_hf")
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                if module.split(".")[0] != "fkd_hf":
                    continue
                for alias in node.names:
                    submodule = f"{module}.{alias.name}"
                    if submodule in trees:
                        targets.add(submodule)
                    elif alias.name in lazy.get(module, {}):
                        targets.add(f"{module}.{lazy[module][alias.name]}")
                    else:
                        targets.add(module)
        targets.discard(name)
    return graph


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_the_import_graph_sees_function_level_and_lazy_imports():
    graph = _import_graph()
    assert "fkd_hf.labels.checks" in graph["fkd_hf.labels.format"]
    assert "fkd_hf.hub.label_card" in graph["fkd_hf.cli.merge_labels"]  # imported inside a function
    assert "fkd_hf.training.runner" in graph["fkd_hf.cli.train"]  # `from ..training import train`, a lazy name
    assert set(RANK) >= {_layer(module) for module in graph}, "a new top-level module needs a place in LAYERS"


def test_imports_point_down_the_layers_only():
    upward = sorted(
        (module, target)
        for module, targets in _import_graph().items()
        for target in targets
        if _layer(target) != _layer(module) and RANK[_layer(target)] >= RANK[_layer(module)]
    )
    assert upward == [], "these imports point up or sideways: " + ", ".join(f"{a} -> {b}" for a, b in upward)


def test_nothing_but_the_command_line_imports_it():
    importers = {module for module, targets in _import_graph().items() if any(_layer(t) == "cli" for t in targets)}
    assert {_layer(module) for module in importers} <= {"cli", "__main__"}, sorted(importers)


def test_no_modules_import_each_other_even_inside_functions():
    graph = _import_graph()
    cycles = []
    for start in sorted(graph):  # a path back to ``start`` through the graph
        stack, seen = [(start, (start,))], set()
        while stack:
            module, path = stack.pop()
            for target in sorted(graph.get(module, ())):
                if target == start:
                    cycles.append(" -> ".join((*path, start)))
                elif target not in seen and target > start:  # each cycle once, from its smallest module
                    seen.add(target)
                    stack.append((target, (*path, target)))
    assert cycles == []
