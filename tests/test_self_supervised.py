"""Self-supervised distillation: an encoder teacher's stored targets (distribution, embedding), a student trained on
them through a projection head without any label column, its backbone saved as an ordinary model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TEACHER_SIZE

from fkd_hf import FKDConfig, GenerateConfig, generate
from fkd_hf.labels import load_label_set
from fkd_hf.labels.crops import crops_to_pixels, replay_crops
from fkd_hf.labels.decode import decode_for_replay, decoded_size
from fkd_hf.labels.images import image_bytes, load_images
from fkd_hf.models.embeddings import pooled_embedding
from fkd_hf.models.projection import attach_projection_head, load_projection_head, projection_head
from fkd_hf.models.students import create_student
from fkd_hf.models.teacher_runner import TeacherRunner
from fkd_hf.models.teachers import load_teacher
from fkd_hf.training.targets import target_loss
from fkd_hf.training.targets.class_probabilities import class_probabilities_loss

WIDTH = 96  # the tiny encoder's embedding width D (test_resnet's pooled features)


def make_encoder(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised timm encoder without a classifier (pooled features of width WIDTH), in timm's format."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(
        "test_resnet", num_classes=0, pretrained_cfg_overlay=dict(input_size=(3, TEACHER_SIZE, TEACHER_SIZE))
    )
    assert model.num_features == WIDTH
    timm.models.save_for_hf(model, folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    return make_encoder(tmp_path_factory.mktemp("encoder"))


def _generate(image_folder, encoder_dir, output: Path, **options) -> Path:
    values = dict(
        dataset=f"imagefolder:{image_folder}",
        output_dir=str(output),
        teacher=str(encoder_dir),
        stored_crops=3,
        batch_size=8,
        num_workers=1,
    )
    generate(GenerateConfig(**{**values, **options}))
    return output


@pytest.fixture(scope="module")
def label_free_sets(tmp_path_factory, image_folder, encoder_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("label_free")
    return {
        "embedding": _generate(image_folder, encoder_dir, root / "embedding", target_type="embedding"),
        "distribution": _generate(
            image_folder, encoder_dir, root / "distribution", target_type="distribution", temperature=0.5, k=4
        ),
    }


def test_stored_embeddings_equal_a_live_forward_on_the_replayed_crops(label_free_sets, image_folder, encoder_dir):
    labels = load_label_set(label_free_sets["embedding"])
    meta = labels.metadata
    assert (meta.target_type, meta.kind, meta.k, meta.num_classes, meta.class_names) == (
        "embedding",
        "raw",
        WIDTH,
        WIDTH,
        [],
    )
    assert meta.teacher_class_indices is None and meta.format_version == 3
    teacher = load_teacher(str(encoder_dir), encoder=True)
    runner = TeacherRunner(teacher)
    source = load_images(f"imagefolder:{image_folder}")
    rows = labels.dataset.with_format("numpy")
    for row in (0, 7, 17):
        image = decode_for_replay(image_bytes(source.dataset[row]["image"]), meta.replay)
        stored = rows[row]
        boxes = crops_to_pixels(stored["crops"].astype(np.float64), *decoded_size(image))
        pixels = replay_crops(image, boxes, stored["flips"], teacher.input_size, teacher.interpolation, meta.replay)
        live = runner.outputs(pixels)
        np.testing.assert_array_equal(stored["embedding"], live.numpy().astype(np.float16))
        # the embedding is the encoder's pooled feature, not a class output
        assert live.shape == (meta.stored_crops, WIDTH)


def test_distribution_sets_store_the_embedding_softmax_top_k(label_free_sets, encoder_dir):
    embedding = load_label_set(label_free_sets["embedding"]).dataset.with_format("numpy")
    distribution = load_label_set(label_free_sets["distribution"])
    meta = distribution.metadata
    assert (meta.target_type, meta.kind, meta.k, meta.num_classes, meta.temperature) == (
        "distribution",
        "marginal_smoothing",
        4,
        WIDTH,
        0.5,
    )
    rows = distribution.dataset.with_format("numpy")
    for row in (0, 11):
        # same seed, same crops: the distribution of the same embedding at temperature 0.5
        np.testing.assert_array_equal(rows[row]["crops"], embedding[row]["crops"])
        expected = torch.softmax(torch.from_numpy(embedding[row]["embedding"]).float() / 0.5, -1)
        top = expected.topk(4, dim=-1)
        np.testing.assert_array_equal(rows[row]["topk_indices"], top.indices.numpy())
        np.testing.assert_allclose(rows[row]["topk_values"], top.values.numpy(), atol=2e-3)
    card = (label_free_sets["distribution"] / "README.md").read_text()
    assert f"the top-4 of the softmax of the teacher's {WIDTH}-dimensional embedding at temperature 0.5" in card


def test_normalized_embeddings_have_unit_length(tmp_path, image_folder, encoder_dir):
    output = _generate(
        image_folder, encoder_dir, tmp_path / "unit", target_type="embedding", normalize_embeddings=True, max_rows=4
    )
    labels = load_label_set(output)
    assert labels.metadata.kind == "normalized"
    vectors = np.asarray(labels.dataset.with_format("numpy")["embedding"], dtype=np.float32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=2e-3)


def test_options_that_mean_nothing_without_classes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="drop --class_map"):
        GenerateConfig(dataset="x", output_dir=str(tmp_path), target_type="embedding", class_map="auto")
    with pytest.raises(ValueError, match="--target_type embedding only"):
        GenerateConfig(dataset="x", output_dir=str(tmp_path), normalize_embeddings=True)
    with pytest.raises(ValueError, match="projection_head must be one of linear, mlp"):
        FKDConfig(output_dir=str(tmp_path), projection_head="deep")


class _Args:
    temperature = 1.0
    embedding_loss = "cosine"


def test_losses_on_hand_made_tensors():
    args = _Args()
    targets = torch.tensor([[3.0, -1.0, 0.5], [0.0, 2.0, 2.0]])
    cosine = target_loss("embedding")
    # equal (or parallel) targets give the minimum, 0; opposite ones the maximum, 2
    assert cosine(targets, targets, args).item() == pytest.approx(0.0, abs=1e-6)
    assert cosine(targets * 7, targets, args).item() == pytest.approx(0.0, abs=1e-6)
    assert cosine(-targets, targets, args).item() == pytest.approx(2.0, abs=1e-6)
    assert cosine(targets, targets.flip(0), args, "none").shape == (2,)
    args.embedding_loss = "smooth_l1"
    assert cosine(targets, targets, args).item() == 0.0
    assert cosine(targets + 0.5, targets, args).item() == pytest.approx(0.125)  # 0.5 * 0.5**2 in the quadratic zone
    # distribution targets: the soft cross-entropy over the D dimensions; one-hot targets reduce to cross-entropy
    soft_ce = target_loss("distribution")
    assert soft_ce is class_probabilities_loss
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.1, 0.2, 0.3]])
    one_hot = F.one_hot(torch.tensor([0, 2]), 3).float()
    assert soft_ce(logits, one_hot, args).item() == pytest.approx(F.cross_entropy(logits, torch.tensor([0, 2])).item())
    probabilities = torch.softmax(logits, -1)
    entropy = -(probabilities * probabilities.log()).sum(-1).mean()
    assert soft_ce(logits, probabilities, args).item() == pytest.approx(entropy.item(), abs=1e-6)  # the minimum
    assert soft_ce(logits + torch.tensor([0.5, 0.0, 0.0]), probabilities, args) > soft_ce(logits, probabilities, args)


def test_pooled_embeddings_of_transformers_encoders():
    from transformers import (
        CLIPConfig,
        CLIPModel,
        Dinov2Config,
        Dinov2Model,
        ResNetConfig,
        ResNetForImageClassification,
    )

    pixels = torch.randn(2, 3, 32, 32)
    tiny = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    clip = CLIPModel(
        CLIPConfig(
            text_config={**tiny, "vocab_size": 99, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
            vision_config={**tiny, "image_size": 32, "patch_size": 8},
            projection_dim=12,
        )
    ).eval()
    with torch.no_grad():
        vision = clip.vision_model(pixel_values=pixels).pooler_output
        torch.testing.assert_close(pooled_embedding(clip, pixels), clip.visual_projection(vision))  # projected
        dino = Dinov2Model(Dinov2Config(**tiny, image_size=32, patch_size=8)).eval()
        torch.testing.assert_close(pooled_embedding(dino, pixels), dino(pixel_values=pixels).pooler_output)
        resnet = ResNetForImageClassification(ResNetConfig(hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)).eval()
        features = pooled_embedding(resnet, pixels)
        assert features.shape == (2, 16)  # the pooled map, before the classifier
        torch.testing.assert_close(resnet.classifier(features[..., None, None]), resnet(pixel_values=pixels).logits)


def test_transformers_encoder_teachers_load_without_their_head(tmp_path):
    from transformers import Dinov2Config, Dinov2ForImageClassification

    config = Dinov2Config(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    Dinov2ForImageClassification(config).save_pretrained(tmp_path / "dino")
    as_classifier = load_teacher(str(tmp_path / "dino"))
    encoder = load_teacher(str(tmp_path / "dino"), encoder=True)
    assert as_classifier.num_classes == 2 and encoder.class_names == [] and encoder.encoder
    assert type(encoder.model).__name__ == "Dinov2Model"
    assert encoder.output_width() == 16 and as_classifier.output_width() == 2


def test_mlp_projection_heads_replace_the_classifier():
    timm_student = attach_projection_head(create_student("test_resnet", ["a"] * 5), "mlp", hidden_dim=7)
    name, head = projection_head(timm_student)
    assert name == "timm_model.fc" and [m.out_features for m in head if isinstance(m, torch.nn.Linear)] == [7, 5]
    assert timm_student.eval()(pixel_values=torch.zeros(1, 3, 32, 32)).logits.shape == (1, 5)

    from transformers import ResNetConfig, ResNetForImageClassification

    hf_student = ResNetForImageClassification(ResNetConfig(hidden_sizes=[8, 16], depths=[1, 1], num_labels=5))
    attach_projection_head(hf_student, "mlp", hidden_dim=7)
    name, head = projection_head(hf_student)
    assert name == "classifier.1" and isinstance(head, torch.nn.Sequential)
    assert hf_student.eval()(pixel_values=torch.zeros(1, 3, 32, 32)).logits.shape == (1, 5)


def _unlabelled_parquet(image_folder: Path, folder: Path) -> Path:
    """The tiny photos as a parquet dataset with an image column and no label column at all."""
    import datasets

    paths = sorted(p for p in image_folder.rglob("*") if p.suffix in (".jpg", ".png"))
    rows = {"image": [{"bytes": p.read_bytes(), "path": p.name} for p in paths]}
    folder.mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=datasets.Features({"image": datasets.Image()})).to_parquet(
        folder / "train.parquet"
    )
    return folder


def _train_options(label_set: Path, output: Path, **overrides) -> FKDConfig:
    values = dict(
        label_set=str(label_set),
        student="test_resnet",
        output_dir=str(output),
        input_size=32,
        num_crops=2,
        per_device_train_batch_size=6,
        num_train_epochs=1,
        learning_rate=0.01,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    return FKDConfig(**{**values, **overrides})


def test_training_on_a_dataset_without_any_label_column(tmp_path, image_folder, encoder_dir):
    from fkd_hf.training.runner import train

    images = _unlabelled_parquet(image_folder, tmp_path / "photos")
    labels = _generate(
        image_folder, encoder_dir, tmp_path / "labels", dataset=f"parquet:{images}/*.parquet", target_type="embedding"
    )
    assert load_label_set(labels).metadata.label_column is None
    metrics = train(_train_options(labels, tmp_path / "student", projection_head="mlp", projection_hidden_dim=8))
    assert np.isfinite(metrics["train_loss"]) and not any(key.startswith("eval_") for key in metrics)
    head = json.loads((tmp_path / "student" / "projection_head.json").read_text())
    assert (head["type"], head["hidden_dim"], head["out_features"]) == ("mlp", 8, WIDTH)


@pytest.mark.parametrize("kind", ["embedding", "distribution"])
def test_label_free_students_train_evaluate_and_load_as_backbones(label_free_sets, image_folder, tmp_path, kind):
    import timm
    from transformers import AutoModel

    from fkd_hf.training.runner import train

    output = tmp_path / "student"
    metrics = train(_train_options(label_free_sets[kind], output, eval_split="train", learning_rate=0.05))
    # judged as self-supervised backbones: k-NN and linear probe on the labelled split, no top-1/top-5 of a head
    assert 0 <= metrics["eval_knn_top1"] <= 1 and 0 <= metrics["eval_probe_top1"] <= 1
    assert "eval_top1" not in metrics and "eval_loss" not in metrics
    # the tiny photos' classes differ by colour: a backbone's pooled features separate them on the train split
    assert metrics["eval_probe_top1"] >= 0.9

    config = json.loads((output / "config.json").read_text())
    assert config["num_classes"] == 0 and "label_names" not in config
    backbone = timm.create_model(f"local-dir:{output}", pretrained=True, num_classes=0).eval()
    via_transformers = AutoModel.from_pretrained(output).eval()
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        features = backbone(pixels)
        torch.testing.assert_close(via_transformers(pixel_values=pixels).pooler_output, features)
        head = load_projection_head(output)
        assert head(features).shape == (2, WIDTH)


def test_label_free_sets_of_different_encoders_are_not_merged(label_free_sets, image_folder, tmp_path):
    from fkd_hf.labels.merge import merge_label_sets

    other = make_encoder(tmp_path / "other_encoder", seed=1)
    second = _generate(
        image_folder,
        other,
        tmp_path / "second",
        target_type="embedding",
        crops_from=str(label_free_sets["embedding"]),
    )
    with pytest.raises(ValueError, match="embedding dimensions do not correspond"):
        merge_label_sets([str(label_free_sets["embedding"]), str(second)], str(tmp_path / "merged"))


def test_each_target_type_pushes_to_the_hub_and_loads_back(label_free_sets, tmp_path):
    from hub_server import FakeHub

    hub = FakeHub().start()
    try:
        env = {**os.environ, **hub.environment(str(tmp_path / "hf_home"))}
        folders = [str(label_free_sets[kind]) for kind in ("embedding", "distribution")]
        command = [sys.executable, __file__, *folders]
        result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    finally:
        hub.stop()


def _push_and_load_back(folders: list[str]) -> None:
    """In a child process pointed at the test Hub: each set pushed, loaded back equal, lined up with its images."""
    from fkd_hf import push_label_set
    from fkd_hf.labels.attach import join_labels

    for folder in folders:
        local = load_label_set(folder)
        repo = f"user/{Path(folder).name}"
        push_label_set(folder, repo)
        pushed = load_label_set(repo)
        assert pushed.metadata == local.metadata and pushed.dataset.to_list() == local.dataset.to_list()
        rows = join_labels(load_images(local.metadata.dataset), pushed)
        assert rows.num_rows == local.metadata.num_rows


if __name__ == "__main__":
    _push_and_load_back(sys.argv[1:])


@pytest.mark.distributed
def test_two_process_embedding_run_equals_one_process_run_and_a_rerun_verifies_it(image_folder, encoder_dir, tmp_path):
    from conftest import REPO_ROOT
    from test_generate import _generate_command

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    outputs = {}
    for name, launcher in (("single", [sys.executable]), ("double", torchrun), ("single", [sys.executable])):
        command = [
            *launcher,
            *_generate_command(image_folder, encoder_dir, tmp_path / name),
            "--target-type",
            "embedding",
        ]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.setdefault(name, []).append(result.stdout + result.stderr)
    assert "already holds this label set (5 shards and 18 image keys verified); nothing to do" in outputs["single"][1]
    single, double = load_label_set(tmp_path / "single"), load_label_set(tmp_path / "double")
    assert single.metadata.num_shards == double.metadata.num_shards == 5
    assert single.dataset.to_list() == double.dataset.to_list()


def test_embeddings_float16_cannot_hold_are_refused_not_stored(label_free_sets):
    from fkd_hf.labels.targets.embedding import TARGET_TYPE

    meta = load_label_set(label_free_sets["embedding"]).metadata
    refused = []

    def refuse(column, values, bad, allowed):
        if bad.any():
            refused.append((column, allowed))
            raise ValueError(column)

    values = np.ones((1, meta.stored_crops, WIDTH), np.float32)
    assert TARGET_TYPE.store({"embedding": values}, meta, refuse)["embedding"].dtype == np.float16
    values[0, 1, 3] = 1e6  # inf once stored as float16
    with pytest.raises(ValueError):
        TARGET_TYPE.store({"embedding": values}, meta, refuse)
    assert refused == [("embedding", "finite numbers within float16's range (|x| < 65504)")]
