"""What a label set records about its dataset, so that training finds and uses exactly the rows it labelled: the
rows --max_rows covered, the dataset's absolute path, the teacher's readable names for WordNet-id class folders."""

import logging
import os
import shutil

import numpy as np
import pytest
import timm
from conftest import make_image_folder

from fkd_hf import FKDConfig, generate, load_label_set
from fkd_hf.labels.images import image_bytes, image_key, load_images, locate_dataset
from fkd_hf.training.builder import build_trainer
from fkd_hf.training.resolved import resolve_data


def _config(label_set, output_dir, **overrides) -> FKDConfig:
    options = dict(
        label_set=str(label_set),
        student="test_resnet",
        input_size=32,
        num_crops=2,
        max_steps=1,
        output_dir=str(output_dir),
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
    )
    return FKDConfig(**dict(options, **overrides))


def test_labels_of_the_first_rows_train_on_exactly_those_rows(generate_config, image_folder, tmp_path, caplog):
    config = generate_config(max_rows=7)
    generate(config)
    labels = load_label_set(config.output_dir)
    assert (labels.metadata.max_rows, labels.metadata.num_rows) == (7, 7)
    with caplog.at_level(logging.WARNING, logger="fkd_hf"):
        setup = build_trainer(_config(config.output_dir, tmp_path / "student"))
    assert "covers the first 7 rows" in caplog.text and "training on those 7 of its 18 rows" in caplog.text
    rows = setup.train_set.rows.with_format(None)
    assert len(setup.train_set) == 7
    images = load_images(f"imagefolder:{image_folder}").dataset
    expected = [image_key(image_bytes(images[i]["image"])) for i in range(7)]
    assert [image_key(image_bytes(row["image"])) for row in rows] == rows["image_key"] == expected


def test_the_dataset_is_found_again_from_another_directory(generate_config, tmp_path, monkeypatch):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    make_image_folder(work / "photos", per_class=2)
    elsewhere.mkdir()
    monkeypatch.chdir(work)
    generate(generate_config(dataset="imagefolder:photos", output_dir="labels"))
    metadata = load_label_set(work / "labels").metadata
    assert (metadata.dataset, metadata.dataset_absolute) == ("imagefolder:photos", f"imagefolder:{work / 'photos'}")

    monkeypatch.chdir(elsewhere)
    found = resolve_data(_config(work / "labels", elsewhere / "student"), metadata)
    assert found.dataset == f"imagefolder:{work / 'photos'}"
    assert len(build_trainer(_config(work / "labels", elsewhere / "student")).train_set) == 6

    shutil.move(work / "photos", tmp_path / "moved")
    with pytest.raises(
        FileNotFoundError,
        match=r"made from the images in imagefolder:photos \(imagefolder:/.*/work/"
        r"photos\), which are not found from .*: pass --dataset",
    ):
        resolve_data(_config(work / "labels", elsewhere / "student"), metadata)
    assert locate_dataset("user/some-dataset") == "user/some-dataset"  # a Hub id is left to the Hub


def test_wordnet_class_folders_get_the_teachers_readable_names(generate_config, tmp_path):
    folder = tmp_path / "imagenet-teacher"
    timm.models.save_for_hf(
        timm.create_model("test_resnet", num_classes=1000, pretrained_cfg_overlay=dict(input_size=(3, 32, 32))),
        folder,
        safe_serialization=True,
    )
    photos = make_image_folder(tmp_path / "photos", per_class=2)
    wordnet = {"cat": "n01440764", "dog": "n02102040", "fox": "n03000684"}  # tench, English springer, chain saw
    for name, synset in wordnet.items():
        os.rename(photos / name, photos / synset)
    config = generate_config(dataset=f"imagefolder:{photos}", teacher=str(folder), class_map="auto")
    generate(config)
    metadata = load_label_set(config.output_dir).metadata
    assert metadata.class_names == ["tench", "English springer", "chain saw"]
    assert metadata.dataset_class_names == sorted(wordnet.values())
    assert metadata.teacher_class_indices == [0, 217, 491]
    student = build_trainer(_config(config.output_dir, tmp_path / "student")).trainer.model
    assert student.config.id2label == dict(enumerate(metadata.class_names))
    assert np.all(np.asarray(load_label_set(config.output_dir).dataset["topk_indices"]) < 3)
