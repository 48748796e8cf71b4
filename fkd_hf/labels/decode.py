"""Decoding for replay: encoded image bytes -> the decoded image a replay method crops from.

A label set records its replay method (see :mod:`fkd_hf.labels.crops`); generation and training decode through
:func:`decode_for_replay` with that method, so both crop from the same pixels:

- ``pil``: a PIL RGB image (:func:`~fkd_hf.labels.images.decode_image`), the method of every label set made before
  replay methods had names.
- ``tensor``: a uint8 ``[3, H, W]`` tensor in channels-last memory (:func:`decode_pixels`): JPEGs through
  torchvision's libjpeg-turbo decoder, any other format through PIL.

Both decoders give the same RGB values for a JPEG (PIL bundles libjpeg-turbo too, with the same default IDCT and
upsampling), so the decoder never changes a replay's pixels; torchvision's is the faster, and its output needs no
copy to become a tensor.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from .crops import REPLAYS, check_replay
from .images import decode_image

JPEG_MAGIC = b"\xff\xd8\xff"
try:  # deprecated since torchvision 0.29 in favour of TorchCodec; PIL gives the same pixels where it is gone
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_jpeg as _decode_jpeg

    _RGB = ImageReadMode.RGB
except ImportError:
    _decode_jpeg = None

__all__ = ["REPLAYS", "decode_pixels", "decode_for_replay", "decoded_size"]


def decode_pixels(data: bytes) -> torch.Tensor:
    """Decodes encoded image bytes to a uint8 RGB ``[3, H, W]`` tensor in channels-last memory (``[H, W, 3]``
    underneath): torchvision for a JPEG it reads, PIL otherwise. A corrupt or truncated file raises BadImageError."""
    if data.startswith(JPEG_MAGIC) and _decode_jpeg is not None:
        try:
            return _decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=_RGB)
        except RuntimeError:  # a JPEG variant torchvision does not read (or a corrupt file): PIL decides
            pass
    return torch.from_numpy(np.array(decode_image(data))).permute(2, 0, 1)


def decode_for_replay(data: bytes, replay: str) -> Image.Image | torch.Tensor:
    """The decoded image that replay method ``replay`` crops from (see the module docstring)."""
    return decode_image(data) if check_replay(replay) == "pil" else decode_pixels(data)


def decoded_size(image: Image.Image | torch.Tensor) -> tuple[int, int]:
    """``(height, width)`` of an image from :func:`decode_for_replay`."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    return int(image.shape[-2]), int(image.shape[-1])
