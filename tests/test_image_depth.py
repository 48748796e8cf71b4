"""16-bit photos decode to the same 8-bit pixels in both replay paths (PIL and tensor), instead of clipping to white;
pixel formats with no 8-bit scale are refused by name."""

from __future__ import annotations

import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fkd_hf.labels.decode import decode_for_replay
from fkd_hf.labels.images import BadImageError


def _png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG of ``pixels`` (uint16, ``[H, W]`` grey or ``[H, W, 3]`` RGB), written by hand: PIL writes no
    16-bit RGB PNG."""
    height, width = pixels.shape[:2]
    colour_type = 2 if pixels.ndim == 3 else 0
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)  # filter type 0 on every row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _gradient(height: int = 12, width: int = 20) -> np.ndarray:
    """uint16 values across the whole 16-bit range, most of them above 255 (which PIL's conversion clips)."""
    return np.linspace(0, 65535, height * width).round().astype(np.uint16).reshape(height, width)


def _as_array(image) -> np.ndarray:
    """A decoded image (PIL or a ``[3, H, W]`` tensor) as ``[H, W, 3]`` uint8."""
    if isinstance(image, Image.Image):
        return np.asarray(image)
    return image.permute(1, 2, 0).contiguous().numpy()


@pytest.mark.parametrize("replay", ["pil", "tensor"])
def test_a_16_bit_grey_png_keeps_its_high_byte(replay):
    grey = _gradient()
    decoded = _as_array(decode_for_replay(_png16(grey), replay))
    expected = (grey >> 8).astype(np.uint8)
    assert decoded.dtype == np.uint8 and decoded.shape == (*grey.shape, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[..., channel], expected)
    assert len(np.unique(decoded)) > 200  # a gradient, not the all-white image of a clipping conversion


@pytest.mark.parametrize("replay", ["pil", "tensor"])
def test_a_16_bit_rgb_png_keeps_its_high_byte(replay):
    grey = _gradient()
    rgb = np.stack([grey, grey[::-1], 65535 - grey], axis=-1)
    decoded = _as_array(decode_for_replay(_png16(rgb), replay))
    np.testing.assert_array_equal(decoded, (rgb >> 8).astype(np.uint8))


def test_both_replays_decode_a_16_bit_png_alike():
    data = _png16(_gradient(30, 17))
    pil, tensor = (_as_array(decode_for_replay(data, replay)) for replay in ("pil", "tensor"))
    np.testing.assert_array_equal(pil, tensor)


def _tiff(pixels: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, "TIFF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "pixels, mode, named",
    [
        (np.full((4, 4), 0.5, dtype=np.float32), "F", "32-bit float pixels (PIL mode F)"),
        (np.full((4, 4), 70_000, dtype=np.int32), "I", "32-bit integer pixels (PIL mode I)"),
    ],
)
@pytest.mark.parametrize("replay", ["pil", "tensor"])
def test_pixels_with_no_8_bit_scale_are_refused_by_name(pixels, mode, named, replay):
    with pytest.raises(BadImageError, match=re.escape(named) + ".*save it as 8- or 16-bit"):
        decode_for_replay(_tiff(pixels, mode), replay)


def test_a_32_bit_integer_image_within_the_16_bit_range_is_read_as_16_bit():
    grey = _gradient().astype(np.int32)
    decoded = _as_array(decode_for_replay(_tiff(grey, "I"), "pil"))
    np.testing.assert_array_equal(decoded[..., 0], (grey >> 8).astype(np.uint8))
