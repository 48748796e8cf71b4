"""Target types as plug-ins: what a label set stores for each crop is one registered type in fkd_hf/labels/targets and
one loss in fkd_hf/training/targets. A toy regression type, defined here, goes through the whole pipeline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from datasets import List, Value

from fkd_hf import FKDConfig, FKDTrainer, create_student
from fkd_hf.generation.metadata import RecordedTeacher, build_metadata
from fkd_hf.generation.shards import ShardedRun, run_sharded
from fkd_hf.labels import join_labels, load_label_set
from fkd_hf.labels.format import CROP_COLUMNS, LABEL_SET_KEY, METADATA_FILE, LabelSetMetadata
from fkd_hf.labels.images import decode_image, image_bytes, image_key, load_images
from fkd_hf.labels.targets import DEFAULT_TARGET_TYPE, TARGET_TYPES, target_type
from fkd_hf.labels.targets.base import TargetType
from fkd_hf.training import FKDCropDataset, collate_crops
from fkd_hf.training.targets import TARGET_LOSSES, target_loss

R = 3
CHANNELS = ["red", "green", "blue"]  # D = 3: the toy target of a photo is its mean colour


class ToyRegression(TargetType):
    """Each crop stores D float16 numbers; training regresses the student's D outputs onto them."""

    name = "toy_regression"
    columns: ClassVar[dict[str, str]] = {"toy_vector": "R x D float16 regression targets"}
    sizes: ClassVar[dict[str, str]] = {"toy_vector": "num_classes"}

    def describe(self, metadata) -> str:
        return f"a toy vector of {metadata.num_classes} numbers"

    def features(self, metadata) -> dict:
        return {"toy_vector": List(List(Value("float16"), length=metadata.num_classes), length=metadata.stored_crops)}

    def encode(self, outputs, metadata) -> dict:
        return {"toy_vector": outputs}

    def from_targets(self, targets, metadata) -> dict:
        return {"toy_vector": targets}

    def store(self, columns, metadata, refuse) -> dict:
        values = np.asarray(columns["toy_vector"]).astype(np.float16)
        refuse("toy_vector", values, ~np.isfinite(values), "finite numbers")
        return {"toy_vector": values}

    def decode(self, columns, metadata) -> torch.Tensor:
        return columns["toy_vector"].float()


def toy_loss(outputs: torch.Tensor, targets: torch.Tensor, args, reduction: str = "mean") -> torch.Tensor:
    loss = ((outputs.float() - targets) ** 2).mean(-1)
    return {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[reduction]()


@pytest.fixture
def toy(monkeypatch):
    """The toy type registered, as a plug-in would register it: one line on each side."""
    monkeypatch.setitem(TARGET_TYPES, ToyRegression.name, ToyRegression())
    monkeypatch.setitem(TARGET_LOSSES, ToyRegression.name, toy_loss)
    return monkeypatch


def _mean_colour(item) -> dict:
    """A producer's row work: R fixed crops of the photo, each with the photo's mean colour; dogs are skipped."""
    row, value = item
    data = image_bytes(value)
    result = {"row": row, "key": image_key(data), "error": None}
    if "dog" in value["path"]:
        return {**result, "error": "no dogs"}
    colour = np.asarray(decode_image(data), np.float32).mean((0, 1)) / 255
    crops = np.tile([0.0, 0.0, 1.0, 1.0], (R, 1))
    return {**result, "crops": crops, "flips": np.arange(R) % 2 == 1, "toy_vector": np.tile(colour, (R, 1))}


def _toy_set(image_folder, output: Path) -> Path:
    from accelerate import PartialState

    source = load_images(f"imagefolder:{image_folder}")
    teacher = RecordedTeacher("mean colour", None, "none", (32, 32), (0.5,) * 3, (0.5,) * 3, "bilinear")
    metadata = build_metadata(
        source,
        teacher,
        8,
        None,
        kind="regression",
        k=len(CHANNELS),
        num_classes=len(CHANNELS),
        class_names=CHANNELS,
        temperature=1.0,
        stored_crops=R,
        seed=-1,
        crop_scale=[1.0, 1.0],
        crop_ratio=[1.0, 1.0],
        teacher_class_indices=None,
        precision="fp32",
        replay="pil",
        target_type=ToyRegression.name,
    )
    run = ShardedRun(
        "toy",
        output,
        metadata,
        {"toy": 1},
        source,
        prepare=_mean_colour,
        refuse=None,
        start=time.perf_counter(),
        num_workers=1,
    )
    run_sharded(run, PartialState(cpu=True))
    return output


def test_a_new_target_type_is_one_registration_through_writer_load_dataset_and_trainer(toy, image_folder, tmp_path):
    output = _toy_set(image_folder, tmp_path / "toy")

    # Written: the type is recorded in fkd_labels.json (format version 3) and in every shard; skipped rows are zeros.
    recorded = json.loads((output / METADATA_FILE).read_text())
    assert (recorded["target_type"], recorded["format_version"]) == ("toy_regression", 3)
    for path in (output / "data").glob("*.parquet"):
        assert json.loads(pq.read_schema(path).metadata[LABEL_SET_KEY])["target_type"] == "toy_regression"
    card = (output / "README.md").read_text()
    assert "with a toy vector of 3 numbers for each" in card
    assert "`toy_vector`: R x D float16 regression targets" in card and "topk_indices" not in card

    labels = load_label_set(output)
    meta = labels.metadata
    assert labels.dataset.column_names == [*CROP_COLUMNS, "toy_vector"] == list(meta.columns)
    assert len(meta.skipped_rows) == 6
    vectors = np.asarray(labels.dataset.with_format("numpy")["toy_vector"])
    assert vectors.shape == (18, R, 3) and not vectors[meta.skipped_rows].any() and vectors.max() <= 1

    # Trained: the crops' stored vectors reach the toy loss; no class-probability column is read.
    rows = join_labels(load_images(f"imagefolder:{image_folder}"), labels)
    dataset = FKDCropDataset(rows, meta, 2, (32, 32))
    batch = collate_crops([dataset[i] for i in range(2)])
    assert set(batch) == {"pixel_values", "toy_vector", "sample_ids"} and batch["toy_vector"].shape == (4, 3)
    config = FKDConfig(
        label_set=str(output),
        student="test_resnet",
        output_dir=str(tmp_path / "student"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=0.05,
        optim="sgd",
        warmup_steps=0,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = FKDTrainer(create_student("test_resnet", CHANNELS), config, dataset)
    model = trainer.model
    with torch.no_grad():
        outputs = model(pixel_values=trainer.normalize_pixels(batch["pixel_values"])).logits
        expected = toy_loss(outputs, batch["toy_vector"].float(), config)
        torch.testing.assert_close(trainer.compute_loss(model, batch), expected)
    before = {name: value.clone() for name, value in model.state_dict().items() if value.is_floating_point()}
    trainer.train()
    assert trainer.state.global_step == 2
    assert any(not torch.equal(before[name], value) for name, value in model.state_dict().items() if name in before)

    # Without the registration, the set is refused by name; without a loss, training is refused.
    toy.delitem(TARGET_TYPES, ToyRegression.name)
    with pytest.raises(ValueError, match=r"Unknown target type 'toy_regression': this fkd_hf knows class_prob"):
        load_label_set(output)
    toy.setitem(TARGET_TYPES, ToyRegression.name, ToyRegression())
    toy.delitem(TARGET_LOSSES, ToyRegression.name)
    with pytest.raises(ValueError, match=r"No training loss for target type 'toy_regression': fkd_hf trains on"):
        FKDTrainer(create_student("test_resnet", CHANNELS), config, dataset)


def test_the_writer_applies_the_type_s_value_checks(toy, image_folder, tmp_path):
    from fkd_hf.labels.writer import write_label_set

    source = load_images(f"imagefolder:{image_folder}", max_rows=2)
    teacher = RecordedTeacher("t", None, "none", (32, 32), (0.5,) * 3, (0.5,) * 3, "bilinear")
    metadata = build_metadata(
        source,
        teacher,
        2,
        None,
        kind="regression",
        k=3,
        num_classes=3,
        class_names=CHANNELS,
        temperature=1.0,
        stored_crops=1,
        seed=-1,
        crop_scale=[1.0, 1.0],
        crop_ratio=[1.0, 1.0],
        teacher_class_indices=None,
        precision="fp32",
        replay="pil",
        target_type=ToyRegression.name,
    )
    vectors = np.zeros((2, 1, 3))
    vectors[1, 0, 2] = np.inf
    columns = {
        "image_key": ["a" * 32, "b" * 32],
        "crops": np.zeros((2, 1, 4)),
        "flips": np.zeros((2, 1), bool),
        "toy_vector": vectors,
    }
    with pytest.raises(ValueError, match=r"was not written: toy_vector must hold finite numbers, but row 1 .*inf"):
        write_label_set(tmp_path / "bad", metadata, columns)


def test_a_set_without_the_field_is_class_probabilities_and_keeps_its_bytes(generate_config, tmp_path):
    from fkd_hf import generate

    config = generate_config(output_dir=str(tmp_path / "labels"), max_rows=4)
    generate(config)
    path = Path(config.output_dir) / METADATA_FILE
    written = path.read_bytes()
    recorded = json.loads(written)
    assert "target_type" not in recorded and recorded["format_version"] == 2
    for shard in (Path(config.output_dir) / "data").glob("*.parquet"):
        assert "target_type" not in json.loads(pq.read_schema(shard).metadata[LABEL_SET_KEY])
    meta = load_label_set(config.output_dir).metadata
    assert meta.target_type == DEFAULT_TARGET_TYPE == "class_probabilities" and meta.format_version == 2
    assert meta.target is target_type("class_probabilities")
    assert list(meta.target.columns) == ["topk_indices", "topk_values"]
    meta.save(tmp_path)  # written back as it was read
    assert (tmp_path / METADATA_FILE).read_bytes() == written


def _fields(**values) -> dict:
    """The fields of a small class-probability set's fkd_labels.json, with ``values``."""
    fields = {name: None for name in LabelSetMetadata.__dataclass_fields__}
    fields.update(
        kind="hard",
        k=1,
        num_classes=2,
        class_names=["a", "b"],
        temperature=1.0,
        stored_crops=1,
        seed=0,
        crop_scale=[0.08, 1.0],
        crop_ratio=[0.75, 1.33],
        skipped_rows=[],
        replay="pil",
        format_version=2,
    )
    return {**fields, **values}


def test_the_registries_refuse_unknown_types_naming_the_known_ones():
    known = r"class_probabilities, distribution, embedding\."
    with pytest.raises(ValueError, match=r"Unknown target type 'embeddings': this fkd_hf knows " + known):
        target_type("embeddings")
    with pytest.raises(ValueError, match=r"No training loss for target type 'embeddings': .* " + known):
        target_loss("embeddings")
    fields = _fields()
    with pytest.raises(ValueError, match=r"Unknown target type 'embeddings'.*upgrade fkd_hf"):
        LabelSetMetadata.from_dict({**fields, "format_version": 3, "target_type": "embeddings"})
    with pytest.raises(ValueError, match=r"format version 4, newer than this fkd_hf reads \(3\)"):
        LabelSetMetadata.from_dict({**fields, "format_version": 4})
    # a version 2 file holds class probabilities, whatever else it says
    version_two = LabelSetMetadata.from_dict({**fields, "format_version": 2, "target_type": "embeddings"})
    assert version_two.target_type == "class_probabilities"


def test_soft_cross_entropy_is_the_loss_of_class_probabilities(tmp_path):
    from fkd_hf.training.loss import soft_cross_entropy

    logits, targets = torch.randn(4, 5), torch.softmax(torch.randn(4, 5), -1)
    args = FKDConfig(output_dir=str(tmp_path), temperature=2.0, report_to="none", use_cpu=True)
    loss = target_loss("class_probabilities")
    torch.testing.assert_close(loss(logits, targets, args, "none"), soft_cross_entropy(logits, targets, 2.0, "none"))
    assert not torch.equal(loss(logits, targets, args), soft_cross_entropy(logits, targets, 1.0))


def test_class_probabilities_encode_the_teacher_s_logits_at_the_temperature():
    meta = LabelSetMetadata.from_dict(
        _fields(kind="marginal_smoothing", k=2, num_classes=4, class_names=list("abcd"), temperature=2.0)
    )
    logits = torch.tensor([[4.0, 0.0, 2.0, -1.0]])
    stored = meta.target.encode(logits, meta)
    probs = torch.softmax(logits / 2.0, -1)
    assert stored["topk_indices"].tolist() == [[0, 2]]
    torch.testing.assert_close(stored["topk_values"], probs[:, [0, 2]])
    dense = meta.target.decode(stored, meta)
    torch.testing.assert_close(dense.sum(-1), torch.ones(1))
    torch.testing.assert_close(dense[0, [0, 2]], probs[0, [0, 2]])
