"""Cards of self-supervised distillation: the dataset card of a label-free set (an encoder teacher's targets), the
model card and fkd_student.json of a student trained on one, and its push with the projection head beside the
weights."""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import DatasetCard, ModelCard

from fkd_hf.hub import StudentInfo, student_card
from fkd_hf.labels.format import read_metadata
from fkd_hf.models.projection import HEAD_CONFIG, HEAD_WEIGHTS
from fkd_hf.repo_ids import portable_spec

ENCODER_SIZE = 32


@pytest.fixture(scope="module")
def encoder_sets(tmp_path_factory, image_folder) -> dict[str, Path]:
    """Label sets of a tiny timm encoder (no classifier) on the tiny photos: `embedding` and `distribution`."""
    import timm
    import torch

    from fkd_hf import GenerateConfig, generate

    root = tmp_path_factory.mktemp("encoder_sets")
    torch.manual_seed(0)
    encoder = timm.create_model(
        "test_resnet", num_classes=0, pretrained_cfg_overlay=dict(input_size=(3, ENCODER_SIZE, ENCODER_SIZE))
    )
    timm.models.save_for_hf(encoder, root / "encoder", safe_serialization=True)
    sets = {}
    for target_type, options in (("embedding", {}), ("distribution", {"kind": "full", "temperature": 0.5})):
        sets[target_type] = root / target_type
        config = GenerateConfig(
            dataset=f"imagefolder:{image_folder}",
            output_dir=str(sets[target_type]),
            teacher=str(root / "encoder"),
            target_type=target_type,
            stored_crops=2,
            batch_size=8,
            num_workers=0,
            **options,
        )
        generate(config)
    return sets


@pytest.fixture(scope="module")
def ssl_student(tmp_path_factory, encoder_sets) -> Path:
    """A student trained one step on the embedding set and evaluated (k-NN and linear probe) on the photos."""
    from fkd_hf.training.config import FKDConfig
    from fkd_hf.training.runner import train

    output = tmp_path_factory.mktemp("ssl") / "student"
    config = FKDConfig(
        label_set=str(encoder_sets["embedding"]),
        student="test_resnet",
        output_dir=str(output),
        input_size=32,
        num_crops=2,
        per_device_train_batch_size=6,
        max_steps=1,
        eval_split="train",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        projection_head="mlp",
        projection_hidden_dim=16,
        embedding_loss="smooth_l1",
    )
    train(config)
    return output


@pytest.mark.parametrize("target_type", ["embedding", "distribution"])
def test_label_card_of_a_label_free_set_shows_targets_and_the_embedding_width(encoder_sets, target_type):
    folder = encoder_sets[target_type]
    metadata = read_metadata(folder)
    width = metadata.num_classes
    assert metadata.class_names == [] and width > 0
    card = DatasetCard.load(folder / "README.md")  # as `fkd-hf generate` wrote it
    assert card.data.task_categories == ["image-feature-extraction"]
    assert {"self-supervised", "knowledge-distillation"} <= set(card.data.tags) and "soft-labels" not in card.data.tags
    assert card.data.pretty_name.startswith("FKD targets: ")
    text = card.text
    assert "Targets of an encoder teacher for self-supervised distillation" in text
    assert "no class labels were used" in text and "Soft labels for" not in text
    assert f"with {metadata.target.describe(metadata)} for each" in text
    assert f"| embedding width (D) | {width} |" in text and "| classes |" not in text
    assert f"| target type | `{target_type}`, kind `{metadata.kind}`, k = {metadata.k} |" in text
    assert "## Classes" not in text and "in the order of the label indices" not in text
    assert "These targets were derived with FKD" in text


def test_student_card_of_a_label_free_student(ssl_student, encoder_sets):
    """The trained student's card: self-supervised distillation from the encoder, feature-extraction loading with
    the projection head, k-NN and linear-probe top-1 in the text and model-index, no top-5."""
    metadata = read_metadata(encoder_sets["embedding"])
    results = json.loads((ssl_student / "all_results.json").read_text())
    card = ModelCard.load(ssl_student / "README.md")
    data, text = card.data, card.text
    assert sorted(p.name for p in ssl_student.glob("projection_head.*")) == sorted([HEAD_CONFIG, HEAD_WEIGHTS])

    assert "self-supervised distillation from `encoder`'s embeddings, no labels used" in text
    assert f"({metadata.target.describe(metadata)} per crop)" in text
    assert data.pipeline_tag == "image-feature-extraction"
    assert {"self-supervised", "feature-extraction", "timm"} <= set(data.tags)
    assert "image-classification" not in data.tags
    assert 'timm.create_model("hf-hub:<user>/<model>", pretrained=True, num_classes=0)' in text
    assert 'AutoModel.from_pretrained("<user>/<model>")' in text and "AutoModelForImageClassification" not in text
    assert "from fkd_hf.models.projection import load_projection_head" in text
    assert HEAD_WEIGHTS in text and HEAD_CONFIG in text

    knn, probe = data.eval_results
    assert {r.task_type for r in data.eval_results} == {"image-feature-extraction"}
    assert (knn.metric_type, knn.metric_name, knn.metric_value) == (
        "knn_top1",
        "k-NN top-1 (k=20)",
        results["eval_knn_top1"],
    )
    assert (probe.metric_type, probe.metric_name, probe.metric_value) == (
        "probe_top1",
        "linear-probe top-1",
        results["eval_probe_top1"],
    )
    assert (knn.dataset_type, knn.dataset_split) == ("imagefolder", "train")
    knn_percent, probe_percent = (f"{100 * results[f'eval_{name}_top1']:.2f} %" for name in ("knn", "probe"))
    row = f"| `{portable_spec(metadata.dataset)}` | train | {knn_percent} | {probe_percent} |"
    assert "| k-NN top-1 (k=20) | linear-probe top-1 |" in text and row in text
    assert "top-5" not in text and "top_5" not in str(data)

    for line in (
        "| targets | `embedding`: ",
        "| target type | embedding |",
        "| projection head | mlp |",
        "| projection hidden width | 16 |",
        "| embedding loss | smooth_l1 |",
    ):
        assert line in text, line
    info = StudentInfo.load(ssl_student)
    assert (info.target_type, info.embedding_dim, info.num_classes, info.class_names) == (
        "embedding",
        metadata.num_classes,
        None,
        [],
    )
    assert (info.knn_top1, info.probe_top1, info.top1, info.top5) == (
        results["eval_knn_top1"],
        results["eval_probe_top1"],
        None,
        None,
    )


def test_student_info_of_a_label_free_set_round_trips_and_old_files_still_load(encoder_sets, tmp_path):
    distribution = read_metadata(encoder_sets["distribution"])
    args = SimpleNamespace(
        per_device_train_batch_size=4,
        num_crops=2,
        projection_head="linear",
        projection_hidden_dim=2048,
        embedding_loss="cosine",
    )
    info = StudentInfo(architecture="test_resnet", num_classes=distribution.num_classes, class_names=["dim_0"])
    info.update_from_args(args).update_from_label_set(distribution, str(encoder_sets["distribution"]))
    info.update_from_metrics({"eval_knn_top1": 0.5, "eval_probe_top1": 0.25, "eval_loss": 1.0})
    assert info.label_free and (info.num_classes, info.class_names) == (None, [])
    # A linear head has no hidden width; only embedding targets have an embedding loss.
    assert (info.projection_head, info.projection_hidden_dim, info.embedding_loss) == ("linear", None, None)
    assert (info.knn_top1, info.probe_top1, info.top1) == (0.5, 0.25, None)
    info.update_from_config({"architecture": "test_resnet", "num_classes": 0, "label_names": ["dim_0"]})
    assert (info.num_classes, info.class_names) == (None, [])  # the backbone's config names no classes either
    info.save(tmp_path)
    assert StudentInfo.load(tmp_path) == info

    # The arguments of a label-free run say nothing about a supervised student, in either order.
    supervised = dataclasses.replace(
        distribution, target_type="class_probabilities", class_names=["a"] * distribution.num_classes
    )
    for first_args in (True, False):
        plain = StudentInfo()
        if first_args:
            plain.update_from_args(args).update_from_label_set(supervised)
        else:
            plain.update_from_label_set(supervised).update_from_args(args)
        assert not plain.label_free and plain.projection_head is None and plain.embedding_loss is None
        assert "projection" not in str(student_card(plain))

    # A fkd_student.json written before these fields loads as a supervised student.
    old = {key: value for key, value in info.to_json_dict().items() if key not in _NEW_FIELDS}
    old_info = StudentInfo.from_json_dict({**old, "class_names": ["cat"], "top1": 0.5})
    assert old_info.target_type is None and not old_info.label_free and old_info.knn_top1 is None
    assert ModelCard(str(student_card(old_info))).data.pipeline_tag == "image-classification"


_NEW_FIELDS = {
    "target_type",
    "target_description",
    "embedding_dim",
    "projection_head",
    "projection_hidden_dim",
    "embedding_loss",
    "knn_top1",
    "probe_top1",
}

PUSH_SCENARIO = r"""
import re, sys
from pathlib import Path

import torch
from huggingface_hub import ModelCard
from PIL import Image

from fkd_hf import push_student

folder, width = Path(sys.argv[1]), int(sys.argv[2])
push_student(folder, "user/ssl-student")
Image.new("RGB", (40, 48), (200, 30, 60)).save("photo.jpg")
card = ModelCard.load("user/ssl-student").text
timm_code, transformers_code, head_code = re.findall(r"```python\n(.*?)```", card, re.S)
namespace = {}
exec(timm_code, namespace)
from_timm = namespace["features"]
exec(transformers_code, namespace)
torch.testing.assert_close(namespace["features"], from_timm, rtol=1e-4, atol=1e-5)
exec(head_code, namespace)
assert namespace["embedding"].shape == (1, width), namespace["embedding"].shape
"""


def test_push_uploads_the_projection_head_beside_the_weights_and_the_card_s_snippets_run(
    ssl_student, encoder_sets, tmp_path
):
    from hub_server import FakeHub

    width = read_metadata(encoder_sets["embedding"]).num_classes
    hub = FakeHub().start()
    try:
        env = {**os.environ, **hub.environment(str(tmp_path / "hf_home"))}
        command = [sys.executable, "-c", PUSH_SCENARIO, str(ssl_student), str(width)]
        result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        files = hub.repos[("model", "user/ssl-student")].resolve("main").files
    finally:
        hub.stop()
    for name in (HEAD_WEIGHTS, HEAD_CONFIG, "model.safetensors", "config.json"):
        assert files[name].data == (ssl_student / name).read_bytes(), name
    card = files["README.md"].data.decode()
    assert re.search(r"pipeline_tag: image-feature-extraction", card)
    assert 'timm.create_model("hf-hub:user/ssl-student", pretrained=True, num_classes=0)' in card
    assert json.loads(files["fkd_student.json"].data)["target_type"] == "embedding"
