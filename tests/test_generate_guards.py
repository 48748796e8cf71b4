"""Nothing impossible is labelled or stored: impossible options of `generate` and `merge-labels` are usage errors
(exit 2) before any work, and the label-set writer refuses values no label set can hold."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import REPO_ROOT, TINY_CLASSES

from fkd_hf.cli import main as cli_main
from fkd_hf.labels.format import METADATA_FILE, LabelSetMetadata
from fkd_hf.labels.writer import LabelSetWriter


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--std", "0", "0", "0"], r"std must be positive finite numbers, got \[0.0, 0.0, 0.0\]"),
        (["--mean", "nan", "nan", "nan"], r"mean must be finite numbers"),
        (["--std", "inf", "1", "1"], r"std must be positive finite numbers"),
        (["--crop_ratio", "inf", "inf"], r"crop ratio must be two finite numbers"),
        (["--crop_ratio", "0", "1"], r"crop ratio must be two finite numbers with 0 < min"),
        (["--crop_scale", "0", "1"], r"crop scale must be two numbers with 0 < min <= max <= 1"),
        (["--crop_scale", "0.5", "1.5"], r"crop scale"),
        (["--crop_scale", "0.9", "0.1"], r"crop scale"),
        (["--input_size", "0"], r"input_size must be at least 1, got 0"),
        (["--seed", "-1"], r"seed must be at least 0"),
        (["--temperature", "inf"], r"temperature must be a positive number"),
    ],
)
def test_impossible_generate_options_are_usage_errors_before_any_work(tmp_path, capsys, flags, message):
    output = tmp_path / "labels"
    argv = ["generate", "--dataset", str(tmp_path / "no-such-photos"), "--output_dir", str(output), *flags]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert not output.exists()


@pytest.mark.parametrize("weights", [["inf", "1"], ["1e308", "1e308"], ["0", "0"], ["1", "-1"], ["nan", "1"]])
def test_impossible_merge_weights_are_usage_errors_before_any_work(tmp_path, capsys, weights):
    output = tmp_path / "merged"
    argv = [
        "merge-labels",
        str(tmp_path / "a"),
        str(tmp_path / "b"),
        "--output_dir",
        str(output),
        "--weights",
        *weights,
    ]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--weights must be positive finite numbers with a finite sum" in err[0], err
    assert not output.exists()


def test_the_merge_function_refuses_them_too(tmp_path):
    from fkd_hf.labels.merge import merge_label_sets

    for weights in ([float("inf"), 1.0], [1e308, 1e308], [0.0, 0.0]):
        with pytest.raises(ValueError, match="one positive weight per label set .*finite sum"):
            merge_label_sets([tmp_path / "a", tmp_path / "b"], tmp_path / "merged", weights=weights)
    assert not (tmp_path / "merged").exists()


def _metadata(**overrides) -> LabelSetMetadata:
    values = dict(
        kind="marginal_smoothing",
        k=2,
        num_classes=3,
        class_names=list(TINY_CLASSES),
        temperature=1.0,
        stored_crops=2,
        seed=0,
        crop_scale=[0.08, 1.0],
        crop_ratio=[0.75, 1.3333],
        teacher="t",
        teacher_revision=None,
        teacher_library="timm",
        teacher_input_size=[32, 32],
        teacher_mean=[0.5] * 3,
        teacher_std=[0.5] * 3,
        teacher_interpolation="bilinear",
        teacher_class_indices=None,
        precision="fp32",
        dataset="d",
        dataset_config=None,
        dataset_split="train",
        dataset_revision=None,
        image_column="image",
        label_column="label",
        rows_per_shard=2,
    )
    return LabelSetMetadata(**dict(values, **overrides))


def _columns(**changes) -> dict:
    columns = dict(
        image_key=["a" * 32, "b" * 32],
        crops=np.full((2, 2, 4), 0.25),
        flips=np.zeros((2, 2), bool),
        topk_indices=np.tile([0, 1], (2, 2, 1)),
        topk_values=np.full((2, 2, 2), 0.4),
    )
    for name, (index, value) in changes.items():
        columns[name] = columns[name].copy()
        columns[name][index] = value
    return columns


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(topk_values=((1, 0, 1), np.nan)), r"topk_values must hold finite numbers in \[0, 1\], but row 1 .*nan"),
        (dict(topk_values=((0, 1, 0), -0.5)), r"topk_values .* row 0 of the shard holds -0.5 \(crop 1\)"),
        (dict(topk_values=((0, 0, 0), 1e5)), r"topk_values .* holds inf"),  # too large for float16
        (dict(crops=((0, 0, 2), 1.5)), r"crops must hold finite numbers in \[0, 1\]"),
        (dict(crops=((1, 1, 0), np.inf)), r"crops must hold"),
        (dict(topk_indices=((0, 0, 1), 3)), r"topk_indices must hold class indices in \[0, 3\)"),
        (dict(topk_indices=((0, 0, 1), -1)), r"topk_indices must hold class indices"),
    ],
)
def test_the_writer_refuses_values_no_label_set_can_hold(tmp_path, changes, message):
    writer = LabelSetWriter(tmp_path / "labels", _metadata())
    with pytest.raises(ValueError, match=rf"shard-00000.parquet was not written: {message}"):
        writer.write_shard(0, _columns(**changes))
    assert not list(tmp_path.rglob("*.parquet*"))
    assert writer.write_shard(0, _columns()).is_file()  # the same shard with possible values is written


def test_fkd_labels_json_is_never_written_with_nan(tmp_path):
    with pytest.raises(ValueError, match="not JSON compliant"):
        _metadata(bytes_per_crop=float("nan")).save(tmp_path)
    assert list(tmp_path.iterdir()) == []
    json.loads(_metadata(bytes_per_crop=1.5).save(tmp_path).read_text())
    assert (tmp_path / METADATA_FILE).is_file()


def test_generate_help_names_recipes_that_exist_and_the_readme_replay_figure(capsys):
    with pytest.raises(SystemExit):
        cli_main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    recipes = re.findall(r"recipes/[\w./-]+\.yaml", text)
    assert recipes and all((REPO_ROOT / recipe).is_file() for recipe in recipes), recipes
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    figure = re.search(r"`tensor` crops cost (\S+) less CPU than `pil`", readme).group(1)
    assert f"{figure} less CPU per crop than pil" in text
