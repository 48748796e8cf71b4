"""Joining labels to images, and the multi-crop loader: crop replay, selection, batches, workers, eval transform."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _fkd_data import make_label_set, make_splits
from PIL import Image

from fkd_hf.labels.attach import LabelMismatchError, join_labels
from fkd_hf.labels.crops import crops_to_pixels, replay_crop
from fkd_hf.labels.format import load_label_set
from fkd_hf.labels.images import decode_image, image_bytes, load_images
from fkd_hf.models.pixels import normalize
from fkd_hf.training.data import EvalDataset, FKDCropDataset, collate_crops, eval_transform, select_crops

STORED = 4  # crops per image in the label set


@pytest.fixture(scope="module")
def data(tmp_path_factory, teacher_dir):
    root = tmp_path_factory.mktemp("loader")
    images = make_splits(root / "images")
    labels = make_label_set(images, teacher_dir, root / "labels", num_crops=STORED, replay="pil")  # vs replay_crop
    return load_images(f"imagefolder:{images}", split="train"), load_label_set(labels)


def _dataset(data, num_crops=2, **kwargs):
    images, labels = data
    return FKDCropDataset(join_labels(images, labels), labels.metadata, num_crops, (24, 24), **kwargs)


def _reordered(images, order):
    return dataclasses.replace(images, dataset=images.dataset.select(order))


def test_crop_selection_is_without_replacement_and_changes_each_cycle():
    seen = [select_crops(0, 5, p, 8, 4) for p in range(4)]
    assert sorted(np.concatenate(seen[:2])) == list(range(8)) == sorted(np.concatenate(seen[2:]))
    assert not np.array_equal(np.concatenate(seen[:2]), np.concatenate(seen[2:]))
    assert np.array_equal(select_crops(0, 5, 1, 8, 4), seen[1])  # a function of (seed, row, pass) only
    assert not np.array_equal(select_crops(1, 5, 1, 8, 4), seen[1])
    assert len(set(np.concatenate([select_crops(0, 2, p, 8, 3) for p in range(2)]))) == 6


def test_samples_replay_the_stored_crops_with_their_labels(data):
    images, labels = data
    dataset = _dataset(data)
    row = labels.dataset[3]
    image = decode_image(image_bytes(images.dataset[3]["image"]))
    chosen = []
    for pass_index in range(STORED // 2):
        dataset.set_pass(pass_index)
        sample = dataset[3]
        picked = select_crops(0, 3, pass_index, STORED, 2)
        boxes = crops_to_pixels(np.asarray(row["crops"])[picked], image.height, image.width)
        expected = [np.asarray(replay_crop(image, b, row["flips"][i], (24, 24))) for b, i in zip(boxes, picked)]
        assert np.array_equal(sample["pixel_values"].numpy(), np.stack(expected))
        assert np.array_equal(sample["topk_indices"].numpy(), np.asarray(row["topk_indices"])[picked])
        assert np.array_equal(sample["topk_values"].numpy(), np.asarray(row["topk_values"], np.float16)[picked])
        assert sample["sample_id"] == pass_index * 12 + 3
        chosen += picked.tolist()
    assert sorted(chosen) == list(range(STORED))


def test_num_crops_above_the_stored_crops_is_an_error(data):
    with pytest.raises(ValueError, match=f"between 1 and the {STORED} crops"):
        _dataset(data, num_crops=STORED + 1)


def test_batches_are_image_major_uint8_channels_last(data):
    dataset = _dataset(data)
    samples = [dataset[i] for i in (0, 1, 2)]
    batch = collate_crops(samples)
    pixels = batch["pixel_values"]
    assert pixels.shape == (6, 3, 24, 24) and pixels.dtype == torch.uint8
    assert pixels.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(pixels[3], samples[1]["pixel_values"][1].permute(2, 0, 1))
    assert batch["topk_indices"].shape == (6, 2)
    assert torch.equal(batch["topk_indices"][3], samples[1]["topk_indices"][1])
    assert batch["sample_ids"] == [0, 1, 2]


def test_a_batch_holds_the_samples_read_one_by_one_in_one_array(data):
    """A batch's crops are replayed into one array, which collate_crops hands on without a copy."""
    dataset = _dataset(data)
    dataset.set_pass(1)
    samples = dataset.__getitems__([5, 0, 9])
    batch = collate_crops(samples)
    assert batch["pixel_values"].data_ptr() == samples[0]["pixel_values"].data_ptr()  # not copied
    alone = [dataset[i] for i in (5, 0, 9)]
    for key in ("pixel_values", "topk_indices", "topk_values"):
        expected = torch.cat([sample[key] for sample in alone])
        assert torch.equal(batch[key], expected.permute(0, 3, 1, 2) if key == "pixel_values" else expected)
    assert batch["sample_ids"] == [12 + 5, 12, 12 + 9]


def test_a_photo_changed_after_its_first_read_is_caught_at_every_read(data, tmp_path):
    images, labels = data
    shutil.copytree(Path(images.dataset[0]["image"]["path"]).parents[2], tmp_path / "images")
    copied = load_images(f"imagefolder:{tmp_path / 'images'}", split="train")
    dataset = FKDCropDataset(join_labels(copied, labels), labels.metadata, 2, (24, 24))
    dataset[0]  # its key checked
    first, other = (Path(copied.dataset[row]["image"]["path"]) for row in (0, 1))
    first.write_bytes(other.read_bytes())
    for _ in range(2):
        with pytest.raises(LabelMismatchError, match="Row 0 "):
            dataset[0]


def test_worker_count_and_persistent_workers_do_not_change_the_batches(data):
    dataset = _dataset(data)

    def passes(**loader_args):
        loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=collate_crops, **loader_args)
        out = []
        for pass_index in range(2):
            dataset.set_pass(pass_index)
            out.append([batch["pixel_values"] for batch in loader])
        return out

    inline = passes()
    assert not torch.equal(inline[0][0], inline[1][0])
    workers = passes(num_workers=2, persistent_workers=True)
    for expected, got in zip(inline, workers):
        assert all(torch.equal(a, b) for a, b in zip(expected, got))


def test_skipped_rows_are_left_out(data):
    images, labels = data
    metadata = dataclasses.replace(labels.metadata, skipped_rows=[1])
    dataset = FKDCropDataset(join_labels(images, labels), metadata, 2, (24, 24))
    assert len(dataset) == 11
    assert 1 not in [dataset[i]["sample_id"] for i in range(len(dataset))]


def test_join_checks_row_count_and_names_the_first_mismatching_row(data):
    images, labels = data
    count = r"has 12 rows but the label set has 6: it was made from imagefolder:.*max_train_samples: 6"
    with pytest.raises(ValueError, match=count):
        join_labels(images, dataclasses.replace(labels, dataset=labels.dataset.select(range(6))))
    assert len(join_labels(images, labels, max_rows=6)) == 6
    swapped = list(range(12))
    swapped[3], swapped[7] = 7, 3
    # the evenly spaced check hits row 7 first; the scan of the rows before it finds row 3
    first = r"Row 3 of the image dataset .* made from imagefolder:.*split 'train'"
    with pytest.raises(LabelMismatchError, match=first):
        join_labels(_reordered(images, swapped), labels, check_rows=4)


def test_rows_the_join_did_not_check_are_checked_when_read(data):
    images, labels = data
    rows = join_labels(_reordered(images, list(range(11, -1, -1))), labels, check_rows=0)
    dataset = FKDCropDataset(rows, labels.metadata, 2, (24, 24))
    with pytest.raises(LabelMismatchError, match="Row 5 "):
        dataset[5]


def test_eval_transform_matches_timm():
    import timm.data

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8))
    timm_transform = timm.data.create_transform(
        input_size=(3, 24, 24), interpolation="bicubic", crop_pct=0.875, is_training=False
    )
    resize_and_crop = timm_transform.transforms[:2]
    expected = image
    for step in resize_and_crop:
        expected = step(expected)
    ours = eval_transform(image, (24, 24), 0.875, "bicubic")
    assert ours.size == (24, 24) and np.array_equal(np.asarray(ours), np.asarray(expected))


def test_eval_samples_map_labels_to_the_label_set_order(data):
    images, _ = data
    evaluation = EvalDataset(images.dataset, (24, 24), 0.875, "bilinear", label_map=[2, 0, 1])
    batch = collate_crops([evaluation[0], evaluation[11]])
    assert batch["pixel_values"].shape == (2, 3, 24, 24)
    labels = [images.dataset[0]["label"], images.dataset[11]["label"]]
    assert batch["labels"].tolist() == [[2, 0, 1][label] for label in labels]


def test_normalize_on_the_device_matches_the_reference_and_keeps_the_layout():
    pixels = torch.randint(0, 256, (2, 5, 6, 3), dtype=torch.uint8).permute(0, 3, 1, 2)
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.3])
    out = normalize(pixels, mean, std)
    reference = (pixels.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    assert torch.allclose(out, reference, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)
