import numpy as np
import pytest
from PIL import Image

from fkd_hf.labels.crops import check_crop_ranges, crop_rng, crops_to_pixels, replay_crop, sample_crops


def test_sampling_depends_only_on_seed_and_row():
    a = sample_crops(300, 400, 6, crop_rng(7, 123))
    b = sample_crops(300, 400, 6, crop_rng(7, 123))
    c = sample_crops(300, 400, 6, crop_rng(7, 124))
    assert a[0].dtype == np.float16 and a[0].shape == (6, 4) and a[1].shape == (6,)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("height,width", [(1, 1), (37, 501), (480, 640), (2048, 1536), (333, 333)])
def test_stored_crops_map_to_boxes_inside_the_image(height, width):
    rng = crop_rng(0, height * width)
    crops, _ = sample_crops(height, width, 64, rng, scale=(0.01, 1.0), ratio=(0.25, 4.0))
    boxes = crops_to_pixels(crops, height, width)
    top, left, h, w = boxes.T
    assert (h >= 1).all() and (w >= 1).all()
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= height).all() and (left + w <= width).all()


def test_pixels_follow_the_stored_float16_values():
    crops = np.array([[0.1, 0.2, 0.5, 0.6]], dtype=np.float16)
    top, left, h, w = crops_to_pixels(crops, 1000, 1000)[0]
    stored = crops.astype(np.float64)[0] * 1000
    assert (top, left, h, w) == tuple(int(np.floor(v + 0.5)) for v in stored)


def test_sampling_respects_scale_and_ratio():
    crops, flips = sample_crops(500, 500, 200, crop_rng(1, 2), scale=(0.3, 0.5), ratio=(1.0, 1.0))
    area = crops[:, 2].astype(np.float64) * crops[:, 3]
    assert area.min() > 0.28 and area.max() < 0.52
    assert 40 < flips.sum() < 160


def test_replay_crops_resizes_and_flips():
    pixels = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    image = Image.fromarray(pixels)
    same = replay_crop(image, (2, 3, 10, 12), False, (10, 12))
    np.testing.assert_array_equal(np.asarray(same), pixels[2:12, 3:15])
    flipped = replay_crop(image, (2, 3, 10, 12), True, (10, 12))
    np.testing.assert_array_equal(np.asarray(flipped), pixels[2:12, 3:15][:, ::-1])
    assert replay_crop(image, (0, 0, 20, 30), False, (8, 16)).size == (16, 8)


def test_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="scale"):
        check_crop_ranges((0.5, 0.1), (0.75, 1.33))
    with pytest.raises(ValueError, match="ratio"):
        check_crop_ranges((0.1, 1.0), (0.0, 1.0))
