import numpy as np
import pytest
import torch
from conftest import IMAGENETTE, TEACHER_SIZE, TINY_CLASSES

from fkd_hf.models.teachers import load_teacher, resolve_class_map


def test_timm_folder_teacher_takes_its_preprocessing(teacher_dir):
    teacher = load_teacher(str(teacher_dir))
    assert teacher.library == "timm"
    assert teacher.input_size == (TEACHER_SIZE, TEACHER_SIZE)
    assert teacher.class_names == list(TINY_CLASSES)
    assert teacher.outputs(torch.zeros(2, 3, TEACHER_SIZE, TEACHER_SIZE)).shape == (2, 3)
    overridden = load_teacher(str(teacher_dir), input_size=48, mean=[0.5] * 3, std=[0.25] * 3, interpolation="bicubic")
    assert (overridden.input_size, overridden.mean, overridden.std) == ((48, 48), (0.5,) * 3, (0.25,) * 3)
    assert overridden.interpolation == "bicubic"


def test_transformers_folder_teacher(tmp_path):
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16],
        depths=[1, 1],
        num_labels=4,
        id2label={i: f"c{i}" for i in range(4)},
        label2id={f"c{i}": i for i in range(4)},
    )
    ResNetForImageClassification(config).save_pretrained(tmp_path)
    teacher = load_teacher(str(tmp_path))
    assert teacher.library == "transformers"
    assert teacher.class_names == ["c0", "c1", "c2", "c3"]
    assert teacher.outputs(torch.zeros(1, 3, 32, 32)).shape == (1, 4)


def test_class_map_restricts_and_reorders(teacher_dir):
    teacher = load_teacher(str(teacher_dir))
    assert resolve_class_map(teacher, "auto", ["fox", "cat"]) == [2, 0]
    assert resolve_class_map(teacher, "2,dog", None) == [2, 1]
    assert resolve_class_map(teacher, {"a": "dog", "b": 0}, ["b", "a"]) == [0, 1]
    with pytest.raises(ValueError, match=r"no class matching \['wolf', 'bear'\]"):
        resolve_class_map(teacher, "auto", ["cat", "wolf", "bear"])


def test_unknown_teacher_spec_says_what_is_accepted(tmp_path):
    with pytest.raises(ValueError, match="efficientnet-lite0"):
        load_teacher("not a teacher")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_teacher(str(tmp_path))


@pytest.mark.skipif(not IMAGENETTE.is_dir(), reason="needs ../shared/data/imagenette-mini")
def test_lite0_teacher_from_pypi_recognises_imagenette_photos():
    from PIL import Image

    from fkd_hf.labels.images import load_images
    from fkd_hf.models.pixels import normalize, to_uint8_batch

    teacher = load_teacher("efficientnet-lite0")
    assert teacher.num_classes == 1000 and teacher.class_ids[0] == "n01440764"
    source = load_images(str(IMAGENETTE), split="validation")
    class_map = resolve_class_map(teacher, "auto", source.label_names)
    rows = source.dataset.select(range(0, 1000, 125))
    images = [Image.open(r["image"]["path"]).convert("RGB").resize(teacher.input_size) for r in rows]
    with torch.inference_mode():
        logits = teacher.outputs(normalize(to_uint8_batch(images), teacher.mean, teacher.std))[:, class_map]
    assert (logits.argmax(-1).numpy() == np.array(rows["label"])).sum() >= 7
