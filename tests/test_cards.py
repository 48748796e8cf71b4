"""Hub cards: the label-set dataset card, the student info and model card, the Trainer callback that fills them, and
the templates in the wheel."""

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, TINY_CLASSES
from hub_server import CARD_TOKEN as SECRET
from huggingface_hub import DatasetCard, ModelCard
from transformers import TrainingArguments

from fkd_hf.hub import StudentInfo, label_set_card, student_card, write_label_set_card, write_student_card
from fkd_hf.hub.student_info import STUDENT_FILE
from fkd_hf.hub.templates import templates_dir
from fkd_hf.labels.format import LabelSetMetadata
from fkd_hf.training import StudentCardCallback

TEMPLATES = {"label_set_card.md", "student_card.md"}


def make_metadata(**overrides) -> LabelSetMetadata:
    values = dict(
        kind="marginal_smoothing",
        k=2,
        num_classes=3,
        class_names=list(TINY_CLASSES),
        temperature=1.5,
        stored_crops=4,
        seed=7,
        crop_scale=[0.08, 1.0],
        crop_ratio=[0.75, 1.3333],
        teacher="timm/resnet18.a1_in1k",
        teacher_revision="a" * 40,
        teacher_library="timm",
        teacher_input_size=[224, 224],
        teacher_mean=[0.5] * 3,
        teacher_std=[0.5] * 3,
        teacher_interpolation="bicubic",
        teacher_class_indices=None,
        precision="fp32",
        dataset="user/tiny-photos",
        dataset_config="small",
        dataset_split="train",
        dataset_revision="b" * 40,
        image_column="image",
        label_column="label",
        num_rows=1500,
        num_shards=2,
        rows_per_shard=750,
        bytes_per_crop=17.25,
        fkd_hf_version="0.1.0",
    )
    values.update(overrides)
    return LabelSetMetadata(**values)


def make_student_info(**overrides) -> StudentInfo:
    info = StudentInfo(
        license="apache-2.0",
        architecture="resnet18",
        num_crops=4,
        passes=75.0,
        fkd_epochs=300.0,
        learning_rate=0.002,
        optimizer="adamw_torch",
        per_device_batch_size=64,
        temperature=1.0,
        eval_split="validation",
        top1=0.71234,
        top5=0.9,
        label_set="user/tiny-labels",
    )
    info.update_from_label_set(make_metadata())
    for key, value in overrides.items():
        setattr(info, key, value)
    return info


# --- templates -------------------------------------------------------------------------------------------------------


def test_templates_dir_holds_the_templates():
    assert {p.name for p in templates_dir().glob("*.md")} >= TEMPLATES
    assert templates_dir() == REPO_ROOT / "hub_cards"


def test_wheel_ships_every_module_and_the_templates(tmp_path):
    """The wheel holds every module (the CLI's commands import from it) and hub_cards/ as fkd_hf/hub_cards, where
    templates_dir() finds it once installed."""
    pytest.importorskip("setuptools", minversion="68", reason="builds the wheel offline with the local setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO_ROOT / name, source / name)
    for folder in ("fkd_hf", "hub_cards"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-w",
        str(tmp_path / "dist"),
        str(source),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = (tmp_path / "dist").glob("fkd_hf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"fkd_hf/hub_cards/{name}" for name in TEMPLATES} <= names
    modules = {path.relative_to(REPO_ROOT).as_posix() for path in (REPO_ROOT / "fkd_hf").rglob("*.py")}
    assert modules - names == set(), "modules missing from the wheel: list their packages in pyproject.toml"

    # Installed (unpacked) without the checkout, the package finds its templates inside itself.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "import importlib, fkd_hf.hub.templates as c, fkd_hf.cli as cli; "
        "[importlib.import_module(module) for module, _ in cli.COMMANDS.values()]; print(c.templates_dir())"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == site / "fkd_hf" / "hub_cards"


def test_hub_subpackage_imports_neither_torch_nor_transformers():
    """`fkd-hf push-labels` and push_label_set stay light: the Trainer callback lives in fkd_hf.training."""
    probe = (
        "import sys, fkd_hf.hub as hub, fkd_hf.hub.push, fkd_hf.hub.label_card, fkd_hf.hub.model_card; "
        "[getattr(hub, name) for name in hub.__all__]; "
        "print(sorted({'torch', 'transformers', 'timm'} & set(sys.modules)))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


# --- label-set card --------------------------------------------------------------------------------------------------

LABEL_CARD_PATTERN = re.compile(
    r"^---\n.*\n---\n\n# FKD soft labels: user/tiny-photos \(train\) from timm/resnet18\.a1_in1k\n.*"
    r"\| teacher \| \[`timm/resnet18\.a1_in1k`\]\(\S+/timm/resnet18\.a1_in1k\) at revision `a{40}`, timm, 224x224 px.*"
    r"\| source dataset \| `user/tiny-photos`, config `small`, split `train`, revision `b{40}` \|\n"
    r"\| rows \| 1500 \(0 skipped\) in 2 parquet shards \|\n"
    r"\| crops per image \(R\) \| 4 \|\n"
    r"\| label kind \| `marginal_smoothing`, k = 2, temperature 1\.5 \|\n"
    r"\| classes \| 3 \|\n"
    r"\| crop scale / ratio \| \[0\.08, 1\.0\] / \[0\.75, 1\.3333\] \|\n.*"
    r"\| crop replay \| `tensor`: torchvision's JPEG decoding and torch's antialiased uint8 resize; training cuts "
    r"the crops the same way \|\n.*"
    r"\| bytes per crop on disk \| 17\.2 \|\n.*"
    r'labels = load_label_set\("user/tiny-labels"\).*\n'
    r'images = datasets\.load_dataset\("user/tiny-photos", "small", split="train", revision="b{40}"\)\n'
    r"train = datasets\.concatenate_datasets\(\[images, labels\.dataset\], axis=1\)\n.*"
    r"```text\n0 cat\n1 dog\n2 fox\n```.*"
    r"@inproceedings\{shen2022fast,.*Fast Knowledge Distillation Framework.*\n```\n?$",
    re.DOTALL,
)


def test_label_set_card_carries_the_metadata_and_parses(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    metadata = make_metadata()
    path = write_label_set_card(tmp_path, metadata, "user/tiny-labels")
    text = path.read_text()
    assert LABEL_CARD_PATTERN.match(text), text
    assert SECRET not in text

    card = DatasetCard.load(path)
    data_files = [{"split": "train", "path": "data/*.parquet"}]
    assert card.data.configs == [{"config_name": "default", "data_files": data_files}]
    assert card.data.license == "other" and card.data.source_datasets == ["user/tiny-photos"]
    assert card.data.size_categories == ["1K<n<10K"] and "knowledge-distillation" in card.data.tags
    from datasets import Features

    info = card.data.dataset_info
    assert Features._from_yaml_list(info["features"]) == metadata.features()
    # No shards to measure: the sizes are left out rather than written as 0.
    assert info["splits"] == [{"name": "train", "num_examples": 1500}] and "dataset_size" not in info
    # A licence of `other` is named and linked (to the LICENSE.md a push adds), and the card says what it means.
    assert (card.data.license_name, card.data.license_link) == ("teacher-and-dataset-terms", "LICENSE.md")
    assert "## Licence\n\nThese soft labels were derived with FKD from the outputs of the teacher" in card.text
    assert "apache-2.0" not in card.text
    licensed = label_set_card(metadata, "user/tiny-labels", license="cc-by-4.0")
    assert licensed.data.license == "cc-by-4.0" and licensed.data.to_dict().keys().isdisjoint(
        {"license_name", "license_link"}
    )
    assert "## Licence\n\n`cc-by-4.0`." in licensed.text


def test_label_set_card_of_a_local_dataset_without_repo(tmp_path):
    metadata = make_metadata(
        dataset="imagefolder:/data/photos",
        dataset_config=None,
        dataset_revision=None,
        teacher="efficientnet-lite0",
        teacher_revision=None,
        bytes_per_crop=None,
    )
    card = label_set_card(metadata)
    assert card.data.source_datasets is None
    assert 'load_label_set("<user>/<label-set>")' in card.text
    assert 'images = load_images("imagefolder:photos", split="train").dataset' in card.text
    assert "| teacher | `efficientnet-lite0`, timm" in card.text and "revision `not pinned`" in card.text
    assert "| bytes per crop on disk | n/a |" in card.text
    on_branch = label_set_card(metadata, "user/tiny-labels", revision="v2").text
    assert 'load_label_set("user/tiny-labels", revision="v2")' in on_branch and "--label_set_revision v2" in on_branch


PLAIN_DTYPES = {"string", "bool", "int8", "int16", "int32", "int64", "float16", "float32", "float64"}


def _leaf_dtypes(feature) -> list:
    """The value types of one feature of a card's `dataset_info`, through any nesting of lists."""
    if isinstance(feature, str):
        return [feature]
    if "list" in feature:
        return _leaf_dtypes(feature["list"])
    return [feature.get("dtype", feature)]


@pytest.fixture
def written_label_set(tmp_path, image_folder) -> tuple[Path, LabelSetMetadata]:
    """A label set written by the one label-set writer for the rows of `image_folder` (random labels)."""
    from fkd_hf.labels import write_label_set

    n, stored_crops, k = sum(1 for p in image_folder.rglob("*") if p.is_file()), 3, 2
    rng = np.random.default_rng(0)
    columns = {
        "image_key": [f"{i:032x}" for i in range(n)],
        "crops": rng.uniform(0, 1, (n, stored_crops, 4)),
        "flips": rng.uniform(0, 1, (n, stored_crops)) < 0.5,
        "topk_indices": np.stack([rng.permutation(3)[:k] for _ in range(n * stored_crops)]).reshape(n, stored_crops, k),
        "topk_values": rng.dirichlet([1.0] * k, (n, stored_crops)),
    }
    metadata = make_metadata(
        dataset=f"imagefolder:{image_folder}",
        dataset_config=None,
        dataset_revision=None,
        stored_crops=stored_crops,
        k=k,
        num_rows=0,
        num_shards=0,
        rows_per_shard=0,
    )
    folder = tmp_path / "labels"
    return folder, write_label_set(folder, metadata, columns, card=write_label_set_card)


def test_label_set_card_lets_the_hub_viewer_read_exactly_the_rows(written_label_set):
    """The viewer reads the card's `configs` and `dataset_info`: the parquet shards only, with features of plain
    types and the sizes `datasets` itself computes; `datasets.load_dataset` of the folder does the same."""
    import datasets

    folder, metadata = written_label_set
    card = DatasetCard.load(folder / "README.md")
    [config] = card.data.configs
    assert config["data_files"] == [{"split": "train", "path": "data/*.parquet"}]
    shards = sorted((folder / "data").glob("*.parquet"))
    assert sorted(folder.glob(config["data_files"][0]["path"])) == shards
    info = card.data.dataset_info
    features = info["features"]
    assert [f["name"] for f in features] == list(metadata.features())
    assert {dtype for f in features for dtype in _leaf_dtypes(f)} <= PLAIN_DTYPES
    rows = datasets.load_dataset(str(folder), split="train")
    assert rows.features == metadata.features() and rows.num_rows == metadata.num_rows > 0
    [split] = info["splits"]
    measured = datasets.load_dataset("parquet", data_files=[str(p) for p in shards], split="train")  # no card
    assert split["num_bytes"] == measured.info.splits["train"].num_bytes == info["dataset_size"] > 0
    assert info["download_size"] == sum(p.stat().st_size for p in shards)


def test_label_set_card_usage_snippet_runs(written_label_set, image_folder, monkeypatch):
    """The card's Python snippet, with the folder for the repo id, loads the labels and joins them to the images
    (run beside the image folder: the card names a local folder by its name only)."""
    folder, metadata = written_label_set
    text = label_set_card(metadata, repo_id=str(folder)).text
    monkeypatch.chdir(image_folder.parent)
    [snippet] = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    namespace: dict = {}
    exec(compile(snippet, "label_set_card.md", "exec"), namespace)
    train = namespace["train"]
    assert train.num_rows == metadata.num_rows
    assert {"image", "image_key", "crops", "flips", "topk_indices", "topk_values"} <= set(train.column_names)


# --- student card ----------------------------------------------------------------------------------------------------

STUDENT_CARD_PATTERN = re.compile(
    r"^---\n.*\n---\n\n# resnet18-fkd\n\n`resnet18` with 3 classes, trained with\n"
    r"\[FKD\]\(https://arxiv\.org/abs/2112\.01528\)"
    r".*teacher\n\[`timm/resnet18\.a1_in1k`\]\(\S+\) \(revision `a{40}`\), stored once in the label set\n"
    r"\[`user/tiny-labels`\]\(\S+/datasets/user/tiny-labels\)\..*"
    r'timm\.create_model\("hf-hub:user/resnet18-fkd", pretrained=True\).*'
    r'AutoModelForImageClassification\.from_pretrained\("user/resnet18-fkd"\).*'
    r"\| `user/tiny-photos` \(small\) \| validation \| 71\.23 % \| 90\.00 % \|\n.*"
    r"\| soft labels \| `marginal_smoothing`, k = 2, teacher temperature 1\.5, R = 4 stored crops per image \|\n.*"
    r"\| crops per image and pass \(m\) \| 4 \|\n\| passes over the data \| 75\.0 \|\n"
    r"\| FKD epochs \(passes x m\) \| 300\.0 \|\n\| learning rate \| 0\.002 \|\n\| optimizer \| adamw_torch \|\n.*"
    r"## Licence\n\n`apache-2\.0`\..*@inproceedings\{shen2022fast,.*\n```\n?$",
    re.DOTALL,
)


def test_student_card_carries_eval_results_links_and_hyperparameters(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    info = make_student_info(model_id="user/resnet18-fkd")
    (tmp_path / "config.json").write_text(
        json.dumps({"architecture": "resnet18", "num_classes": 3, "label_names": list(TINY_CLASSES)})
    )
    path = write_student_card(tmp_path, info)
    text = path.read_text()
    assert STUDENT_CARD_PATTERN.match(text), text
    assert SECRET not in text and SECRET not in (tmp_path / STUDENT_FILE).read_text()

    data = ModelCard.load(path).data
    assert (data.library_name, data.license, data.pipeline_tag) == ("timm", "apache-2.0", "image-classification")
    assert data.datasets == ["user/tiny-labels", "user/tiny-photos"]
    assert {"fkd", "knowledge-distillation", "image-classification", "timm"} <= set(data.tags)
    assert data.model_name == "resnet18-fkd"
    top1, top5 = data.eval_results
    assert (top1.task_type, top1.metric_type, top1.metric_name, top1.metric_value) == (
        "image-classification",
        "accuracy",
        "top-1 accuracy",
        0.71234,
    )
    assert (top5.metric_type, top5.metric_value) == ("top_5_accuracy", 0.9)
    assert (top1.dataset_type, top1.dataset_name, top1.dataset_config, top1.dataset_split) == (
        "user/tiny-photos",
        "user/tiny-photos",
        "small",
        "validation",
    )

    # fkd_student.json round-trips, and a newer schema is refused with a clear message.
    assert StudentInfo.load(tmp_path) == info
    newer = {**info.to_json_dict(), "schema_version": 99}
    with pytest.raises(ValueError, match="upgrade fkd_hf"):
        StudentInfo.from_json_dict(newer)


def test_student_file_of_schema_version_1_reads_back():
    """A fkd_student.json as version 1 writes it (field names, schema_version) loads; keys it lacks keep their
    defaults and keys this version does not know are ignored."""
    written = {
        "schema_version": 1,
        "fkd_hf_version": "0.1.0",
        "architecture": "resnet18",
        "library_name": "timm",
        "stored_crops": 4,
        "num_crops": 2,
        "top1": 0.5,
        "tags": ["x"],
        "a_later_field": 1,
    }
    info = StudentInfo.from_json_dict(written)
    assert (info.architecture, info.stored_crops, info.num_crops, info.top1) == ("resnet18", 4, 2, 0.5)
    assert info.tags == ["x"]
    assert info.schema_version == 1 and info.fkd_hf_version == "0.1.0" and info.license is None
    assert json.loads(info.to_json()).keys() == {f.name for f in dataclasses.fields(StudentInfo)}


@pytest.mark.parametrize(("tag", "expected"), [(None, "test_resnet"), ("r160_in1k", "test_resnet.r160_in1k")])
def test_student_card_names_the_weights_tag_only_for_pretrained_weights(tmp_path, tag, expected):
    """save_student keeps `pretrained_cfg.tag` only when pretrained weights were used: the card follows it."""
    pretrained_cfg = {"num_classes": 3, **({"tag": tag} if tag else {})}
    config = {"architecture": "test_resnet", "num_classes": 3, "pretrained_cfg": pretrained_cfg}
    (tmp_path / "config.json").write_text(json.dumps(config))
    card = ModelCard.load(write_student_card(tmp_path))
    assert card.text.startswith(f"\n# {expected}-fkd\n\n`{expected}` with 3 classes")
    assert StudentInfo.load(tmp_path).architecture == expected


def test_student_card_without_fkd_info_is_still_valid(tmp_path):
    config = {"model_type": "resnet", "id2label": {"0": "cat", "1": "dog"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    card = ModelCard.load(write_student_card(tmp_path))
    assert card.data.library_name == "transformers" and card.data.license == "other"
    assert card.data.eval_results is None and card.data.datasets is None
    assert "Not evaluated yet." in card.text and 'timm.create_model("hf-hub:' not in card.text
    assert StudentInfo.load(tmp_path).class_names == ["cat", "dog"]


# --- callback --------------------------------------------------------------------------------------------------------


class _Photos(torch.utils.data.Dataset):
    """Random 32 px images with labels; `metadata` is what the callback reads from an FKD training set."""

    def __init__(self, n: int, metadata: LabelSetMetadata | None = None):
        generator = torch.Generator().manual_seed(n)
        self.pixels = torch.randn(n, 3, 32, 32, generator=generator)
        self.labels = torch.randint(0, len(TINY_CLASSES), (n,), generator=generator)
        self.metadata = metadata

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"pixel_values": self.pixels[i], "labels": self.labels[i]}


@dataclasses.dataclass
class FKDLikeArguments(TrainingArguments):
    """The FKD fields the callback reads when present (as FKDConfig has them); a module-level class, for pickling."""

    label_set: str | None = None
    num_crops: int = 4
    temperature: float = 1.0
    eval_split: str | None = None


def _topk(prediction) -> dict:
    logits, labels = torch.as_tensor(prediction.predictions), torch.as_tensor(prediction.label_ids)
    top = logits.topk(2, dim=-1).indices
    top1, top5 = (top[:, 0] == labels).float().mean(), (top == labels[:, None]).any(-1).float().mean()
    return {"top1": top1.item(), "top5": top5.item()}


def test_callback_fills_and_writes_the_card_with_a_plain_trainer(tmp_path):
    from transformers import Trainer

    from fkd_hf.models.students import create_student

    metadata = make_metadata(num_classes=3)
    args = FKDLikeArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        gradient_accumulation_steps=2,
        learning_rate=0.01,
        eval_strategy="steps",
        eval_steps=2,
        save_steps=2,
        report_to="none",
        use_cpu=True,
        label_set="user/tiny-labels",
        num_crops=2,
        temperature=2.0,
        eval_split="validation",
        hub_model_id="user/cb-student",
        dataloader_num_workers=0,
    )
    callback = StudentCardCallback(license="apache-2.0")
    torch.manual_seed(0)
    trainer = Trainer(
        create_student("test_resnet", list(TINY_CLASSES)),
        args,
        train_dataset=_Photos(16, metadata),
        eval_dataset=_Photos(8),
        compute_metrics=_topk,
        callbacks=[callback],
    )
    trainer.train()

    out = tmp_path / "out"
    for folder in (out, out / "checkpoint-2"):
        assert (folder / STUDENT_FILE).is_file() and (folder / "README.md").is_file()
    info = StudentInfo.load(out)
    assert (info.model_id, info.license, info.library_name, info.architecture) == (
        "user/cb-student",
        "apache-2.0",
        "timm",
        "test_resnet",
    )
    assert (info.num_crops, info.temperature, info.learning_rate) == (2, 2.0, 0.01)
    assert info.optimizer == str(getattr(args.optim, "value", args.optim)) and info.lr_scheduler == "linear"
    assert (info.per_device_batch_size, info.total_batch_size, info.crops_per_step) == (4, 8, 16)
    assert info.extra_hyperparameters == {"max steps": 2} and info.passes is None
    assert (info.teacher, info.stored_crops, info.label_kind, info.label_set) == (
        "timm/resnet18.a1_in1k",
        4,
        "marginal_smoothing",
        "user/tiny-labels",
    )
    assert info.class_names == list(TINY_CLASSES) and info.eval_split == "validation"
    assert info.top1 is not None and 0 <= info.top1 <= info.top5 <= 1

    # An evaluation after training rewrites the card with its metrics.
    trainer.compute_metrics = lambda prediction: {"top1": 0.5, "top5": 0.75}
    trainer.evaluate()
    data = ModelCard.load(out / "README.md").data
    assert [r.metric_value for r in data.eval_results] == [0.5, 0.75]
    assert data.datasets == ["user/tiny-labels", "user/tiny-photos"] and data.model_name == "cb-student"


def test_label_set_card_lists_the_dataset_s_own_class_names_beside_the_teacher_s():
    metadata = make_metadata(
        class_names=["tench", "goldfish", "great white shark"],
        dataset_class_names=["n01440764", "n01443537", "n01484850"],
    )
    text = label_set_card(metadata).text
    assert "| 0 | tench | `n01440764` |" in text and "| 2 | great white shark | `n01484850` |" in text
    plain = label_set_card(make_metadata(class_names=["cat", "dog", "fox"])).text
    assert "0 cat\n1 dog\n2 fox" in plain and "in the dataset |" not in plain


# --- what no card may carry: local absolute paths, dead links; what the Hub asks of it ------------------------------

HOME_PHOTOS = f"imagefolder:{Path.home()}/.cache/fkd_hf/demo_photos/foolbox-3.3.4"  # the demo photos' cache folder
ALLOWED_LINK = re.compile(
    r"https://arxiv\.org/abs/2112\.01528|https://github\.com/huggingface/(pytorch-image-models|transformers)"
    r"|https://huggingface\.co/(datasets/)?[\w.-]+/[\w.-]+"
)


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_cards_hold_no_local_absolute_path_and_only_links_that_exist(tmp_path):
    """Local folders (the demo photos under the home folder, a teacher folder, merged label sets) appear by their
    last folder only; every link goes to the paper, timm, transformers or a Hub repo (no PyPI page: fkd-hf is not
    on PyPI)."""
    merged = {
        "method": "merged",
        "label_sets": [
            {
                "source": str(tmp_path / "labels-a"),
                "teacher": str(tmp_path / "teacher-a"),
                "kind": "full",
                "k": 3,
                "weight": 0.5,
            },
            {"source": "user/labels-b", "teacher": "timm/resnet18.a1_in1k", "kind": "full", "k": 3, "weight": 0.5},
        ],
    }
    metadata = make_metadata(
        dataset=HOME_PHOTOS,
        dataset_config=None,
        dataset_revision=None,
        dataset_absolute=HOME_PHOTOS,
        teacher=str(tmp_path / "my-teacher"),
        provenance=merged,
    )
    info = make_student_info(model_id="user/student", label_set=str(tmp_path / "labels"), base_model=None)
    info.update_from_label_set(metadata)
    info.eval_dataset = HOME_PHOTOS
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "resnet18", "num_classes": 3}))
    student_text = write_student_card(tmp_path, info).read_text()
    label_text = str(label_set_card(metadata, "user/tiny-labels"))
    for text in (label_text, student_text):
        assert str(Path.home()) not in text and str(tmp_path) not in text
        assert "pypi.org" not in text
        assert [link for link in _links(text) if not ALLOWED_LINK.fullmatch(link)] == []
    assert "`imagefolder:foolbox-3.3.4`" in label_text and "`my-teacher`" in label_text
    assert "| `labels-a` | `teacher-a` |" in label_text
    assert "`imagefolder:foolbox-3.3.4`" in student_text and "`labels`" in student_text
    # The local fkd_student.json keeps the paths for its user.
    assert StudentInfo.load(tmp_path).label_set == str(tmp_path / "labels")


def test_portable_spec_cuts_absolute_paths_only():
    from fkd_hf.repo_ids import portable_spec

    assert portable_spec(HOME_PHOTOS) == "imagefolder:foolbox-3.3.4"
    assert portable_spec("parquet:/data/photos/train-*.parquet") == "parquet:photos/train-*.parquet"
    assert portable_spec("~/teachers/lite0") == "lite0"
    for kept in ("user/photos", "imagefolder:../shared/data/imagenette-mini", "resnet18", None):
        assert portable_spec(kept) == kept


def test_model_index_names_the_hub_dataset_the_label_set_records():
    """Evaluated on a local copy of the images of a label set made from a Hub dataset: the model-index names that
    Hub dataset (config, split, revision), not the folder; with no Hub source, the folder by its name."""
    info = make_student_info(eval_dataset=f"imagefolder:{Path.home()}/copies/tiny-photos")
    [top1, _] = ModelCard(str(student_card(info))).data.eval_results
    assert (top1.dataset_type, top1.dataset_name, top1.dataset_config, top1.dataset_split, top1.dataset_revision) == (
        "user/tiny-photos",
        "user/tiny-photos",
        "small",
        "validation",
        "b" * 40,
    )
    local = make_student_info(dataset="imagefolder:/data/tiny-photos", dataset_config=None, dataset_revision=None)
    [top1, _] = ModelCard(str(student_card(local))).data.eval_results
    assert (top1.dataset_type, top1.dataset_name, top1.dataset_config) == ("imagefolder", "tiny-photos", None)


def test_student_card_of_licence_other_names_and_links_it():
    data = ModelCard(str(student_card(make_student_info(license=None)))).data
    assert (data.license, data.license_name, data.license_link) == ("other", "teacher-and-dataset-terms", "LICENSE.md")
    card = student_card(make_student_info())
    assert card.data.license == "apache-2.0" and card.data.license_name is None and card.data.license_link is None


def test_the_demo_card_names_the_photo_cache_and_a_teacher_folder_by_name_only(tmp_path):
    """The demo's card in sample-photo mode: the photos' cache folder under the home folder, the teacher folder and
    the label-set folder appear by name, in the YAML, the tables and the evaluation notes alike."""
    from types import SimpleNamespace

    from fkd_hf.demo.card import write_demo_card

    teacher = str(tmp_path / "teacher")
    card = StudentCardCallback()
    card.card_data.update_from_label_set(make_metadata(dataset=HOME_PHOTOS, dataset_config=None, teacher=teacher))
    student = tmp_path / "student"
    student.mkdir()
    (student / "config.json").write_text(json.dumps({"architecture": "resnet18", "num_classes": 3}))
    run = SimpleNamespace(top1=0.5, agreement=0.5, final_metrics={})
    text = write_demo_card(
        card, student, tmp_path / "labels", SimpleNamespace(mode="photos"), teacher, run, 54, None
    ).read_text()
    assert str(tmp_path) not in text and str(Path.home()) not in text
    assert "Top-1 agreement with the teacher `teacher` on 54 held-out crops" in text
    assert "| label set | `labels` |" in text and "`imagefolder:foolbox-3.3.4`" in text
