"""Ensembles: ``generate --crops_from`` labels another set's crops with a second teacher; ``merge-labels`` averages
label sets that share crops."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_image_folder, make_timm_teacher

from fkd_hf import GenerateConfig, generate, load_label_set
from fkd_hf.cli import run_command
from fkd_hf.hub import write_label_set_card
from fkd_hf.labels import LabelMismatchError, load_images, reconstruct
from fkd_hf.labels.crops import crops_to_pixels, replay_crop
from fkd_hf.labels.format import METADATA_FILE, fixed_size_to_numpy
from fkd_hf.labels.images import decode_image, image_bytes
from fkd_hf.labels.merge import merge_label_sets
from fkd_hf.models.pixels import normalize, to_uint8_batch
from fkd_hf.models.teachers import load_teacher


@pytest.fixture(scope="module")
def second_teacher(tmp_path_factory):
    return make_timm_teacher(tmp_path_factory.mktemp("teacher_b"), seed=1)


@pytest.fixture(scope="module")
def ensemble(image_folder, teacher_dir, second_teacher, tmp_path_factory):
    """Label sets of two teachers on the same crops, ``full`` (every class stored)."""
    root = tmp_path_factory.mktemp("ensemble")
    options = dict(dataset=f"imagefolder:{image_folder}", stored_crops=3, kind="full", batch_size=8, num_workers=1)
    generate(
        GenerateConfig(output_dir=str(root / "a"), teacher=str(teacher_dir), num_shards=2, replay="pil", **options)
    )  # pil: the tests compare with replay_crop
    # R, seed, crop ranges and replay come from --crops_from, whatever else is asked for
    options.update(stored_crops=5, seed=7, num_shards=3, crops_from=str(root / "a"))
    generate(GenerateConfig(output_dir=str(root / "b"), teacher=str(second_teacher), **options))
    return root / "a", root / "b"


def _teacher_probs(teacher_dir, image_folder, labels) -> np.ndarray:
    """``[rows, R, classes]`` softmax of the teacher on the stored crops, computed here from the images."""
    teacher = load_teacher(str(teacher_dir))
    rows = labels.dataset.with_format("numpy")
    probs = []
    for value, row in zip(load_images(f"imagefolder:{image_folder}").dataset["image"], rows):
        image = decode_image(image_bytes(value))
        boxes = crops_to_pixels(row["crops"], image.height, image.width)
        crops = [
            replay_crop(image, box, flip, teacher.input_size, teacher.interpolation)
            for box, flip in zip(boxes, row["flips"])
        ]
        with torch.no_grad():
            logits = teacher.model(normalize(to_uint8_batch(crops), teacher.mean, teacher.std))
        probs.append(logits.float().softmax(-1).numpy())
    return np.stack(probs)


def _stored(labels, name: str) -> np.ndarray:
    """A label column in its stored dtype (float16 crops stay float16)."""
    table = labels.dataset.with_format("arrow")[:]
    return fixed_size_to_numpy(table.column(name), (table.num_rows, labels.metadata.stored_crops, -1))


def _dense(labels) -> np.ndarray:
    rows = labels.dataset.with_format("torch")[:]
    return reconstruct(
        rows["topk_indices"], rows["topk_values"], labels.metadata.kind, labels.metadata.num_classes
    ).numpy()


def test_crops_from_labels_the_same_crops_with_another_teacher(ensemble):
    a, b = (load_label_set(path) for path in ensemble)
    assert (b.metadata.stored_crops, b.metadata.seed, b.metadata.num_shards) == (3, 0, 3)
    assert a.metadata.replay == b.metadata.replay == "pil"  # the replay of --crops_from, not the default
    assert a.dataset["image_key"] == b.dataset["image_key"]
    assert _stored(a, "crops").dtype == np.float16
    np.testing.assert_array_equal(_stored(a, "crops").view(np.uint16), _stored(b, "crops").view(np.uint16))  # bits
    np.testing.assert_array_equal(_stored(a, "flips"), _stored(b, "flips"))
    assert np.abs(_dense(a) - _dense(b)).max() > 0.01  # another teacher's labels
    assert json.loads((ensemble[1] / "fkd_run.json").read_text())["crops_from"] == str(ensemble[0])


def test_crops_from_other_images_is_refused(generate_config, ensemble, tmp_path):
    other = make_image_folder(tmp_path / "other", per_class=6, seed=5)
    config = generate_config(
        dataset=f"imagefolder:{other}", output_dir=str(tmp_path / "c"), crops_from=str(ensemble[0])
    )
    with pytest.raises(LabelMismatchError, match="Row 0 of the image dataset does not match the label set"):
        generate(config)


@pytest.fixture(scope="module")
def teachers_probs(ensemble, teacher_dir, second_teacher, image_folder) -> list[np.ndarray]:
    crops = load_label_set(ensemble[0])
    return [_teacher_probs(teacher, image_folder, crops) for teacher in (teacher_dir, second_teacher)]


@pytest.mark.parametrize("weights", [None, [3.0, 1.0]])
def test_merged_full_targets_are_the_mean_of_the_teachers_softmaxes(ensemble, teachers_probs, tmp_path, weights):
    merged_dir = tmp_path / "merged"
    merge_label_sets(
        [str(path) for path in ensemble], merged_dir, weights=weights, kind="full", card=write_label_set_card
    )
    merged, a = load_label_set(merged_dir), load_label_set(ensemble[0])
    w = np.array(weights or [1.0, 1.0]) / sum(weights or [1.0, 1.0])
    expected = w[0] * teachers_probs[0] + w[1] * teachers_probs[1]
    np.testing.assert_allclose(_dense(merged), expected, atol=2e-3, rtol=0)  # float16 storage
    np.testing.assert_array_equal(_stored(merged, "crops").view(np.uint16), _stored(a, "crops").view(np.uint16))
    np.testing.assert_array_equal(_stored(merged, "flips"), _stored(a, "flips"))
    provenance = json.loads((merged_dir / METADATA_FILE).read_text())["provenance"]
    assert [part["weight"] for part in provenance["label_sets"]] == pytest.approx(list(w))
    assert merged.metadata.teacher == f"{a.metadata.teacher} + {load_label_set(ensemble[1]).metadata.teacher}"
    card = (merged_dir / "README.md").read_text()
    assert "merge 2 label sets that share their crops" in card


def test_merge_requantizes_to_the_kind_and_k_asked_for(ensemble, tmp_path):
    merge_label_sets([str(path) for path in ensemble], tmp_path / "top2", kind="marginal_smoothing", k=2)
    merged = load_label_set(tmp_path / "top2")
    assert (merged.metadata.kind, merged.metadata.k) == ("marginal_smoothing", 2)
    mean = (_dense(load_label_set(ensemble[0])) + _dense(load_label_set(ensemble[1]))) / 2
    top = np.sort(mean, axis=-1)[..., ::-1][..., :2]
    np.testing.assert_allclose(_stored(merged, "topk_values").astype(np.float32), top, atol=1e-3)
    chosen = np.take_along_axis(mean, _stored(merged, "topk_indices").astype(np.int64), -1)
    np.testing.assert_array_equal(chosen[..., 0], mean.max(-1))


def test_merge_refuses_sets_that_do_not_share_crops(generate_config, ensemble, tmp_path):
    reseeded = generate_config(
        output_dir=str(tmp_path / "reseeded"), kind="full", k=None, seed=1, num_shards=2, replay="pil"
    )
    generate(reseeded)
    with pytest.raises(ValueError, match=r"stores other crops than .* at row 0: .*--crops_from"):
        merge_label_sets([str(ensemble[0]), reseeded.output_dir], tmp_path / "merged")
    assert not (tmp_path / "merged" / METADATA_FILE).exists()
    hard = generate_config(output_dir=str(tmp_path / "t2"), temperature=2.0, kind="full", k=None, replay="pil")
    generate(hard)
    with pytest.raises(ValueError, match=r"differ in temperature"):
        merge_label_sets([str(ensemble[0]), hard.output_dir], tmp_path / "merged2")


def test_sets_that_share_crops_keep_one_replay(generate_config, ensemble, tmp_path):
    """--crops_from refuses another replay than its set's; merge-labels refuses sets of two replays."""
    with pytest.raises(ValueError, match=r"--replay tensor differs from the replay 'pil' of .*: drop --replay"):
        generate(generate_config(output_dir=str(tmp_path / "c"), crops_from=str(ensemble[0]), replay="tensor"))
    tensor = generate_config(output_dir=str(tmp_path / "tensor"), kind="full", k=None)  # a's crops, the default replay
    generate(tensor)
    with pytest.raises(ValueError, match=r"differ in replay \('pil' vs 'tensor'\)"):
        merge_label_sets([tensor.output_dir, str(ensemble[0])], tmp_path / "merged")


def test_cli_takes_the_label_sets_first(ensemble, tmp_path, capsys):
    import fkd_hf.cli.merge_labels as command

    argv = [str(ensemble[0]), str(ensemble[1]), "--output_dir", str(tmp_path / "m"), "--weights", "1", "2"]
    assert run_command(command, argv) == 0
    assert "Merged label set" in capsys.readouterr().out
    assert load_label_set(tmp_path / "m").metadata.kind == "full"  # the first set's kind by default
    assert "merge 2 label sets that share their crops" in (tmp_path / "m" / "README.md").read_text()
    assert run_command(command, [str(ensemble[0]), "--output_dir", str(tmp_path / "n")]) == 2
    assert "at least two label sets" in capsys.readouterr().err
    assert run_command(command, argv) == 1  # the output folder is not empty
    assert "is not empty" in capsys.readouterr().err


def test_crops_from_carries_the_class_map_and_the_rows_so_the_sets_merge(generate_config, second_teacher, tmp_path):
    a = generate_config(output_dir=str(tmp_path / "a"), class_map="2,0,1", max_rows=7, kind="full", k=None)
    generate(a)
    b = generate_config(
        output_dir=str(tmp_path / "b"), teacher=str(second_teacher), crops_from=a.output_dir, kind="full", k=None
    )
    generate(b)
    meta_a, meta_b = (load_label_set(path).metadata for path in (a.output_dir, b.output_dir))
    assert meta_b.teacher_class_indices == meta_a.teacher_class_indices == [2, 0, 1]
    assert (meta_b.max_rows, meta_b.num_rows) == (7, 7)
    merged = merge_label_sets([a.output_dir, b.output_dir], tmp_path / "merged")
    assert (merged.num_rows, merged.class_names) == (7, meta_a.class_names)

    with pytest.raises(ValueError, match=r"--max_rows 9 is more than the 7 rows of .* \(--crops_from\)"):
        generate(generate_config(output_dir=str(tmp_path / "c"), crops_from=a.output_dir, max_rows=9))
    assert not (tmp_path / "c").exists()  # refused before any labelling


def test_crops_from_a_set_of_fewer_rows_is_refused_before_any_labelling(generate_config, tmp_path):
    small = generate_config(
        dataset=f"imagefolder:{make_image_folder(tmp_path / 'photos', per_class=2)}", output_dir=str(tmp_path / "small")
    )
    generate(small)
    with pytest.raises(ValueError, match=r"has 18 rows but .*small \(--crops_from\) only 6: .*--max_rows 6"):
        generate(generate_config(output_dir=str(tmp_path / "d"), crops_from=small.output_dir))
    assert not (tmp_path / "d").exists()
