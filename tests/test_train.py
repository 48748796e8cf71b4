"""FKD training end to end on tiny photos: train, evaluate, save, reload; epochs; resume; bad input; two processes."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import yaml
from _fkd_data import TINY_CLASSES, make_label_set, make_splits
from conftest import assert_same_logits, make_image_folder
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification, set_seed

from fkd_hf import FKDConfig, FKDTrainer, create_student, train
from fkd_hf.cli import main as cli_main
from fkd_hf.cli.arguments import parse_config
from fkd_hf.config_io import save_config
from fkd_hf.labels import LabelMismatchError, join_labels
from fkd_hf.labels.format import load_label_set
from fkd_hf.labels.images import load_images
from fkd_hf.models import student_data_config
from fkd_hf.training import FKDCropDataset
from fkd_hf.training.data import collate_crops

TRAIN_IMAGES = 12  # 3 classes x 4


@pytest.fixture(scope="module")
def data(tmp_path_factory, teacher_dir):
    root = tmp_path_factory.mktemp("train")
    images = make_splits(root / "images")
    return images, make_label_set(images, teacher_dir, root / "labels", num_crops=4)


def _config(data, output_dir, **overrides) -> FKDConfig:
    options = dict(
        label_set=str(data[1]),
        student="test_resnet",
        input_size=32,
        num_crops=2,
        output_dir=str(output_dir),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=6,
        max_steps=3,
        learning_rate=0.05,
        optim="sgd",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    options.update(overrides)
    return FKDConfig(**options)


def _trainer(data, output_dir, student_classes=TINY_CLASSES, **overrides):
    config = _config(data, output_dir, **overrides)
    labels = load_label_set(data[1])
    rows = join_labels(load_images(f"imagefolder:{data[0]}", split="train"), labels)
    dataset = FKDCropDataset(rows, labels.metadata, config.num_crops, (32, 32))
    return FKDTrainer(create_student("test_resnet", student_classes), config, dataset)


def test_train_evaluate_save_and_reload_in_timm_and_transformers(data, tmp_path):
    metrics = train(_config(data, tmp_path, eval_split="validation"))
    assert 0 <= metrics["eval_top1"] <= metrics["eval_top5"] <= 1 and metrics["train_crops_per_second"] > 0

    set_seed(0)
    initial = create_student("test_resnet", TINY_CLASSES).timm_model.state_dict()
    trained = load_file(tmp_path / "model.safetensors")
    floats = [name for name, value in initial.items() if value.is_floating_point()]
    changed = [name for name in floats if not torch.equal(initial[name], trained[name])]
    assert len(changed) > len(initial) // 2

    x = torch.randn(2, 3, 32, 32)
    in_timm = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    in_transformers = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert_same_logits(in_timm(x), in_transformers(x).logits)
    assert in_transformers.config.id2label == dict(enumerate(TINY_CLASSES))
    assert tuple(in_timm.pretrained_cfg["input_size"]) == (3, 32, 32)

    # The model card and its data, filled during training, carry the evaluation and the FKD settings.
    from huggingface_hub import ModelCard

    info = json.loads((tmp_path / "fkd_student.json").read_text())
    assert info["top1"] == pytest.approx(metrics["eval_top1"]) and info["num_crops"] == 2
    card = ModelCard.load(tmp_path / "README.md")
    top1 = next(result for result in card.data.eval_results if result.metric_type == "accuracy")
    assert top1.metric_value == pytest.approx(metrics["eval_top1"], abs=1e-3)


def test_cli_saves_the_resolved_config_which_reads_back(data, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**_config(data, tmp_path / "out").to_dict(), "fkd_epochs": 2}))
    assert cli_main(["train", "--config", str(recipe), "--max_steps", "1", "--temperature", "2"]) == 0
    saved = tmp_path / "out" / "train_config.yaml"
    (config,) = parse_config([FKDConfig], ["--config", str(saved)], prog="test", description="")
    assert (config.temperature, config.max_steps, config.fkd_epochs, config.num_train_epochs) == (2.0, 1, 2.0, 1.0)
    student = student_data_config(create_student("test_resnet", TINY_CLASSES))
    assert config.mean == list(student["mean"]) and config.dataset == f"imagefolder:{data[0]}"
    save_config(config, tmp_path / "again.yaml")
    assert yaml.safe_load((tmp_path / "again.yaml").read_text()) == yaml.safe_load(saved.read_text())


def test_fkd_epochs_count_passes_times_num_crops(data, tmp_path):
    assert FKDConfig(output_dir=str(tmp_path), num_crops=4, fkd_epochs=300).num_train_epochs == 75
    trainer = _trainer(data, tmp_path, max_steps=-1, fkd_epochs=4, lr_scheduler_type="cosine")
    trainer.train()
    steps_per_pass = math.ceil(TRAIN_IMAGES / 4)
    assert trainer.state.max_steps == 2 * steps_per_pass
    logs = [log for log in trainer.state.log_history if "loss" in log]
    assert [log["fkd_epoch"] for log in logs] == [pytest.approx(2 * log["epoch"], abs=1e-3) for log in logs]
    assert logs[-1]["fkd_epoch"] == pytest.approx(4)
    # the schedule spans the passes: cosine from 0.05 down to 0 over all 6 steps
    assert [log["learning_rate"] for log in logs] == pytest.approx(
        [0.05 * 0.5 * (1 + math.cos(math.pi * step / 6)) for step in range(6)], abs=1e-7
    )
    assert trainer.train_dataset.pass_index == 1


def test_compute_loss_honours_num_items_in_batch(data, tmp_path):
    trainer = _trainer(data, tmp_path)
    batch = collate_crops([trainer.train_dataset[i] for i in range(3)])  # 6 crops
    mean = trainer.compute_loss(trainer.model, batch)
    assert torch.allclose(trainer.compute_loss(trainer.model, batch, num_items_in_batch=12), mean * 6 / 12)


def test_resume_continues_with_the_same_data_and_loss(data, tmp_path):
    options = dict(max_steps=5, save_strategy="steps", save_steps=1, mixup_alpha=0.4, cutmix_alpha=1.0)
    train(_config(data, tmp_path / "a", **options))
    checkpoint = tmp_path / "a" / "checkpoint-4"  # inside the second pass (3 steps per pass)
    train(_config(data, tmp_path / "b", resume_from_checkpoint=str(checkpoint), **options))

    def step_five(run):
        state = json.loads((tmp_path / run / "checkpoint-5" / "trainer_state.json").read_text())
        return next(log for log in state["log_history"] if log.get("step") == 5 and "loss" in log)

    assert [p.name for p in (tmp_path / "b").glob("checkpoint-*")] == ["checkpoint-5"]  # one step, from step 4
    assert step_five("b")["loss"] == pytest.approx(step_five("a")["loss"], rel=1e-6)
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)


def test_label_set_with_another_class_count_than_the_head_is_an_error(data, tmp_path):
    with pytest.raises(ValueError, match="head has 2 classes but the label set has 3 .*create the student"):
        _trainer(data, tmp_path, student_classes=["a", "b"])


def test_unknown_label_kind_is_an_error_that_says_what_to_do(data, tmp_path):
    labels = shutil.copytree(data[1], tmp_path / "labels")
    meta = json.loads((labels / "fkd_labels.json").read_text())
    (labels / "fkd_labels.json").write_text(json.dumps({**meta, "kind": "top_magic"}))
    with pytest.raises(ValueError, match="kind 'top_magic'.*upgrade .*regenerate"):
        train(_config(data, tmp_path / "out", label_set=str(labels)))


def test_label_set_from_another_dataset_is_an_error_naming_the_row_and_origin(data, tmp_path):
    other = make_image_folder(tmp_path / "other" / "train", per_class=4, seed=7)  # same row count, other photos
    with pytest.raises(LabelMismatchError, match=rf"Row 0 .*made from imagefolder:{data[0]} \(split 'train'"):
        train(_config(data, tmp_path / "out", dataset=f"imagefolder:{other.parent}"))


@pytest.mark.distributed
def test_two_process_training_splits_the_images(data, tmp_path):
    config = _config(data, tmp_path / "out", per_device_train_batch_size=3, max_steps=2, eval_split="validation")
    recipe = tmp_path / "config.yaml"
    save_config(config, recipe)
    script = Path(__file__).with_name("_distributed_train.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        "--config",
        str(recipe),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    first, second = (set(r["seen"]) for r in ranks)
    assert not first & second and first | second == set(range(TRAIN_IMAGES))  # 2 steps x 2 x 3 = one pass
    assert ranks[0]["eval_top1"] == ranks[1]["eval_top1"]
    assert (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.distributed
def test_the_documented_cpu_launch_trains_on_two_processes(data, tmp_path):
    """README: `accelerate launch --config_file recipes/accelerate/cpu.yaml -m fkd_hf train --config ...`."""
    config = _config(
        data,
        tmp_path / "out",
        per_device_train_batch_size=3,
        max_steps=-1,
        num_train_epochs=1,
        save_strategy="steps",
        save_steps=2,
    )
    recipe = tmp_path / "config.yaml"
    save_config(config, recipe)
    launch_config = Path(__file__).resolve().parent.parent / "recipes" / "accelerate" / "cpu.yaml"
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(launch_config),
        "-m",
        "fkd_hf",
        "train",
        "--config",
        str(recipe),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("FKD on 2 processes: 12 images") == 1, result.stdout[-2000:]  # printed by rank 0 only
    checkpoint = tmp_path / "out" / "checkpoint-2"
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["global_step"] == state["max_steps"] == 2  # one pass of 12 images at 2 x 3 per step (1 process: 4)
    assert sorted(p.name for p in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]
    assert (tmp_path / "out" / "model.safetensors").is_file()
