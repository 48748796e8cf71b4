"""Replay methods: decoding for replay, and each method exact to itself (generation's crops = training's crops)."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fkd_hf import generate, load_label_set
from fkd_hf.labels.attach import join_labels
from fkd_hf.labels.crops import (
    REPLAYS,
    check_replay_interpolation,
    crop_rng,
    crops_to_pixels,
    replay_crop,
    replay_crops,
    sample_crops,
)
from fkd_hf.labels.decode import decode_for_replay, decode_pixels, decoded_size
from fkd_hf.labels.format import METADATA_FILE
from fkd_hf.labels.images import BadImageError, decode_image, load_images
from fkd_hf.models.teacher_runner import TeacherRunner
from fkd_hf.training import FKDCropDataset, select_crops


def _photo(height=150, width=200, seed=0) -> np.ndarray:
    """A smooth photo-like RGB array (gradients plus a little noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _encode(pixels: np.ndarray, fmt="JPEG", mode="RGB", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "mode, fmt, options",
    [
        ("RGB", "JPEG", {}),
        ("RGB", "JPEG", {"progressive": True}),
        ("RGB", "JPEG", {"subsampling": 0}),
        ("L", "JPEG", {}),
        ("CMYK", "JPEG", {}),
        ("RGB", "PNG", {}),
        ("RGBA", "PNG", {}),
    ],
)
def test_decode_pixels_gives_pils_pixels_in_channels_last_memory(mode, fmt, options):
    data = _encode(_photo(), fmt, mode, **options)
    pixels = decode_pixels(data)
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 150, 200)
    assert pixels.permute(1, 2, 0).is_contiguous()
    np.testing.assert_array_equal(pixels.permute(1, 2, 0).numpy(), np.asarray(decode_image(data)))


@pytest.mark.parametrize("data", [_encode(_photo())[:400], b"\xff\xd8\xff not a jpeg", b"nothing"])
def test_decode_pixels_refuses_broken_files(data):
    with pytest.raises(BadImageError):
        decode_pixels(data)


@pytest.mark.parametrize("replay", REPLAYS)
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_generation_and_training_replay_the_same_pixels(replay, interpolation):
    """Generation: decode, sample R crops, replay all of them; training: decode again, replay the m stored crops of a
    pass (in its order): each crop is the same uint8 pixels, whichever other crops it is replayed with."""
    data, size, stored, m = _encode(_photo(375, 500)), (64, 48), 8, 3
    image = decode_for_replay(data, replay)
    height, width = decoded_size(image)
    assert (height, width) == (375, 500)
    crops, flips = sample_crops(height, width, stored, crop_rng(0, 5))
    taught = replay_crops(image, crops_to_pixels(crops, height, width), flips, size, interpolation, replay)
    assert taught.shape == (stored, 64, 48, 3) and taught.dtype == np.uint8
    for pass_index in range(2):
        chosen = select_crops(0, 5, pass_index, stored, m)
        again = decode_for_replay(data, replay)
        boxes = crops_to_pixels(crops[chosen], *decoded_size(again))
        np.testing.assert_array_equal(
            replay_crops(again, boxes, flips[chosen], size, interpolation, replay), taught[chosen]
        )


def test_pil_replay_is_the_replay_of_existing_label_sets():
    image = decode_for_replay(_encode(_photo()), "pil")
    crops, flips = sample_crops(image.height, image.width, 4, crop_rng(1, 2))
    boxes = crops_to_pixels(crops, image.height, image.width)
    pixels = replay_crops(image, boxes, flips, (40, 40), "bicubic", "pil")
    for crop, box, flip in zip(pixels, boxes, flips):
        np.testing.assert_array_equal(crop, np.asarray(replay_crop(image, box, bool(flip), (40, 40), "bicubic")))


def test_tensor_replay_crops_resizes_and_flips():
    pixels = _photo(60, 80)
    image = decode_for_replay(_encode(pixels, "PNG"), "tensor")
    box = np.array([[5, 7, 30, 40]])
    same = replay_crops(image, box, [False], (30, 40), replay="tensor")[0]
    np.testing.assert_array_equal(same, pixels[5:35, 7:47])
    mirrored = replay_crops(image, box, [True], (30, 40), replay="tensor")[0]
    np.testing.assert_array_equal(mirrored, pixels[5:35, 7:47][:, ::-1])
    # a resize: within a level of PIL's resize of the cropped image (PIL's box= also reads pixels beyond the box)
    small = replay_crops(image, box, [False], (12, 16), replay="tensor")[0].astype(int)
    expected = np.asarray(Image.fromarray(pixels[5:35, 7:47]).resize((16, 12), Image.Resampling.BILINEAR))
    assert np.abs(small - expected).max() <= 1
    assert replay_crops(image, np.zeros((0, 4), np.int64), [], (12, 16), replay="tensor").shape == (0, 12, 16, 3)


def test_replay_methods_refuse_what_they_cannot_do():
    data = _encode(_photo())
    with pytest.raises(ValueError, match="Unknown replay"):
        decode_for_replay(data, "cv2")
    with pytest.raises(ValueError, match="bilinear or bicubic"):
        check_replay_interpolation("tensor", "lanczos")
    check_replay_interpolation("pil", "lanczos")
    with pytest.raises(TypeError, match="decode_for_replay"):
        replay_crops(decode_for_replay(data, "pil"), np.array([[0, 0, 10, 10]]), [False], (8, 8), replay="tensor")


@pytest.mark.parametrize("replay", [None, *REPLAYS])
def test_a_generated_set_replays_the_pixels_its_teacher_saw(replay, generate_config, image_folder, monkeypatch):
    """End to end: the teacher's input during ``generate`` equals FKDCropDataset's crops at the teacher's size; a
    set made without --replay records and replays ``tensor``."""
    seen, run = [], TeacherRunner.outputs  # the teacher's forward pass; the target type encodes its outputs
    monkeypatch.setattr(TeacherRunner, "outputs", lambda self, x: seen.append(np.array(x)) or run(self, x))
    config = generate_config(stored_crops=4, num_workers=0, replay=replay)
    generate(config)
    taught, labels = np.concatenate(seen), load_label_set(config.output_dir)
    meta = labels.metadata
    recorded = json.loads((Path(config.output_dir) / METADATA_FILE).read_text())["replay"]
    assert meta.replay == recorded == (replay or "tensor")
    rows = join_labels(load_images(f"imagefolder:{image_folder}"), labels)
    dataset = FKDCropDataset(rows, meta, 4, meta.teacher_input_size, meta.teacher_interpolation)
    for row in range(len(rows)):
        order = select_crops(0, row, 0, 4, 4)
        np.testing.assert_array_equal(dataset[row]["pixel_values"].numpy(), taught[row * 4 + order])


def test_the_default_replay_depends_on_what_the_teacher_resizes_with(generate_config):
    """tensor for a bilinear or bicubic teacher, pil for one whose interpolation torch's uint8 resize lacks."""
    config = generate_config(stored_crops=1, max_rows=2, interpolation="lanczos")
    generate(config)
    assert load_label_set(config.output_dir).metadata.replay == "pil"
    with pytest.raises(ValueError, match="Replay 'tensor' resizes with bilinear or bicubic, not 'lanczos'"):
        generate(
            generate_config(
                stored_crops=1,
                max_rows=2,
                interpolation="lanczos",
                replay="tensor",
                output_dir=config.output_dir + "-tensor",
            )
        )
