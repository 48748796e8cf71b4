"""Students: timm and transformers classifiers with the label set's classes, saved in a format both libraries load."""

import json
import os
import subprocess
import sys

import pytest
import timm
import torch
from conftest import assert_same_logits
from transformers import AutoImageProcessor, AutoModelForImageClassification, ResNetConfig

from fkd_hf.models.students import create_student, save_student, student_data_config

CLASSES = ["cat", "dog", "fox"]


def _logits(model, x):
    with torch.no_grad():
        out = model.eval()(x)
    return out if isinstance(out, torch.Tensor) else out.logits


@pytest.mark.parametrize(("arch", "kwargs", "size"), [("test_resnet", {}, 40), ("test_vit", {"img_size": 32}, 32)])
def test_timm_student_loads_in_timm_and_transformers_with_identical_logits(tmp_path, arch, kwargs, size):
    student = create_student(arch, CLASSES, model_kwargs=kwargs)
    assert student.config.id2label == dict(enumerate(CLASSES))
    data = student_data_config(student, input_size=40 if not kwargs else None)
    assert data["input_size"] == (size, size)  # an img_size model argument sets the input size
    save_student(student, tmp_path, data)

    config = json.loads((tmp_path / "config.json").read_text())
    assert (tmp_path / "model.safetensors").is_file() and "num_classes" not in config.get("model_args", {})
    x = torch.randn(2, 3, size, size)
    expected = _logits(student, x)
    in_timm = timm.create_model(f"local-dir:{tmp_path}", pretrained=True)
    in_transformers = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert_same_logits(_logits(in_timm, x), expected)
    assert_same_logits(_logits(in_transformers, x), expected)
    assert in_timm.pretrained_cfg["label_names"] == CLASSES
    assert in_transformers.config.id2label == dict(enumerate(CLASSES))
    assert AutoImageProcessor.from_pretrained(tmp_path).data_config["input_size"] == (3, size, size)


def test_pretrained_student_keeps_its_backbone_and_gets_a_new_head(tmp_path):
    source = create_student("test_resnet", CLASSES)
    save_student(source, tmp_path)
    student = create_student(str(tmp_path), ["a", "b"], pretrained=True)
    assert student.config.num_labels == 2 and student.timm_model.num_classes == 2
    stem = next(iter(source.timm_model.state_dict()))
    assert torch.equal(student.timm_model.state_dict()[stem], source.timm_model.state_dict()[stem])


@pytest.mark.parametrize("spec", ["test_resnet", "test_resnet.r160_in1k"])
def test_student_from_scratch_names_its_architecture_without_a_weights_tag(tmp_path, spec):
    """Random init: config.json and the card name `test_resnet`, not the tag of weights that were never loaded."""
    from fkd_hf.hub import write_student_card

    student = create_student(spec, CLASSES)
    assert student.config.architecture == "test_resnet"
    save_student(student, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == "test_resnet" and "tag" not in config["pretrained_cfg"]
    assert timm.create_model(f"local-dir:{tmp_path}", pretrained=True).pretrained_cfg.get("tag") is None
    text = write_student_card(tmp_path).read_text()
    assert "`test_resnet` with 3 classes" in text and "r160_in1k" not in text


def test_pretrained_student_keeps_the_tag_of_its_weights(tmp_path):
    """Weights loaded from a checkpoint with a tag: config.json and the card name them."""
    from fkd_hf.hub import write_student_card

    timm.models.save_for_hf(
        timm.create_model("test_resnet.r160_in1k", num_classes=3), tmp_path / "weights", safe_serialization=True
    )
    student = create_student(str(tmp_path / "weights"), CLASSES, pretrained=True)
    assert student.config.architecture == "test_resnet.r160_in1k"
    save_student(student, tmp_path / "student")
    assert json.loads((tmp_path / "student" / "config.json").read_text())["pretrained_cfg"]["tag"] == "r160_in1k"
    assert "`test_resnet.r160_in1k` with 3 classes" in write_student_card(tmp_path / "student").read_text()


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


@pytest.mark.parametrize("library", ["timm", "transformers"])
def test_saved_weights_have_the_file_mode_of_the_folder(tmp_path, umask, library):
    """The safetensors writer creates its file 0600; save_student gives it the umask's mode, like config.json."""
    if library == "timm":
        student = create_student("test_resnet", CLASSES)
    else:
        config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
        config.save_pretrained(tmp_path / "cfg")
        student = create_student(str(tmp_path / "cfg"), CLASSES)
    save_student(student, tmp_path / "saved")
    modes = {path.name: path.stat().st_mode & 0o777 for path in (tmp_path / "saved").iterdir()}
    assert modes["model.safetensors"] == modes["config.json"] == 0o666 & ~umask, modes


def test_transformers_student_round_trips_with_its_class_names(tmp_path):
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
    config.save_pretrained(tmp_path / "cfg")
    student = create_student(str(tmp_path / "cfg"), CLASSES)
    assert type(student).__name__ == "ResNetForImageClassification"
    assert student.config.id2label == dict(enumerate(CLASSES))
    data = student_data_config(student, input_size=32)
    assert data["input_size"] == (32, 32) and data["mean"] == (0.485, 0.456, 0.406)
    save_student(student, tmp_path / "saved")
    x = torch.randn(2, 3, 32, 32)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "saved")
    assert_same_logits(_logits(reloaded, x), _logits(student, x))
    assert reloaded.config.id2label == dict(enumerate(CLASSES))
    assert create_student(str(tmp_path / "saved"), ["a", "b"], pretrained=True).config.num_labels == 2


@pytest.mark.parametrize("library", ["timm", "transformers"])
def test_channels_last_student_saves_and_keeps_its_layout(tmp_path, library):
    """Trainers keep students channels-last; safetensors needs contiguous tensors, so saving lays them out for the
    file only."""
    if library == "timm":
        student = create_student("test_resnet", CLASSES)
    else:
        ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic").save_pretrained(
            tmp_path / "cfg"
        )
        student = create_student(str(tmp_path / "cfg"), CLASSES)
    student.to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 32, 32)
    save_student(student, tmp_path / "saved", student_data_config(student, input_size=32))
    weights = [p for p in student.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)  # the layout is restored
    assert any(not p.is_contiguous() for p in weights)  # (1x1 kernels look the same in both layouts)
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "saved")
    saved, kept = reloaded.state_dict(), student.state_dict()
    assert saved.keys() == kept.keys() and all(torch.equal(saved[name], kept[name]) for name in kept)
    assert_same_logits(_logits(reloaded, x), _logits(student, x))


def test_unknown_student_is_an_error_that_lists_the_accepted_specs():
    with pytest.raises(ValueError, match="give a timm architecture"):
        create_student("no_such_model_anywhere", CLASSES)


HUB_SCENARIO = """
import sys, torch, timm
from pathlib import Path
from huggingface_hub import HfApi
from transformers import AutoModelForImageClassification
from fkd_hf import create_student

root = Path(sys.argv[1])
HfApi().create_repo("user/student")
HfApi().upload_folder(folder_path=root / "student", repo_id="user/student")
x, expected = torch.load(root / "x.pt"), torch.load(root / "logits.pt")
with torch.no_grad():
    in_timm = timm.create_model("hf-hub:user/student", pretrained=True).eval()
    torch.testing.assert_close(in_timm(x), expected, rtol=1e-5, atol=1e-6)
    in_transformers = AutoModelForImageClassification.from_pretrained("user/student").eval()
    torch.testing.assert_close(in_transformers(x).logits, expected, rtol=1e-5, atol=1e-6)
    assert in_transformers.config.id2label == {0: "cat", 1: "dog", 2: "fox"}
    from_hub = create_student("user/student", ["cat", "dog", "fox"], pretrained=True).eval()
    torch.testing.assert_close(from_hub(x).logits, expected, rtol=1e-5, atol=1e-6)
"""


def test_pushed_student_loads_from_the_hub_in_timm_and_transformers(tmp_path):
    from hub_server import FakeHub

    student = create_student("test_resnet", CLASSES)
    save_student(student, tmp_path / "student")
    x = torch.randn(2, 3, 40, 40)
    torch.save(x, tmp_path / "x.pt")
    torch.save(_logits(student, x), tmp_path / "logits.pt")
    hub = FakeHub().start()
    try:
        env = {**os.environ, **hub.environment(str(tmp_path / "hf_home"))}
        result = subprocess.run(
            [sys.executable, "-c", HUB_SCENARIO, str(tmp_path)], env=env, capture_output=True, text=True, timeout=180
        )
    finally:
        hub.stop()
    assert result.returncode == 0, result.stderr[-3000:]
