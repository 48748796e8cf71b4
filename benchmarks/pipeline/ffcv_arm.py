"""FFCV as a peer: its ``RandomResizedCropRGBImageDecoder`` loader on a .beton of the same photos, one worker.

Optional: it runs where ``ffcv`` imports (see benchmarks/RESULTS.md for its install) and is skipped with a note
otherwise. JPEG photos are stored as they are (their own bytes, no re-encoding); any other photo is stored as FFCV
stores it by default, re-encoded as JPEG quality 90 (the note counts them). A batch is what the other methods
yield: uint8 ``[N, 3, H, W]`` crops (channels-last memory) and their labels, here after FFCV's random-resized crop
(bilinear) and random flip.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from fkd_hf.labels.decode import JPEG_MAGIC

INSTALL = "see benchmarks/RESULTS.md for its install"


def missing() -> str | None:
    """Why the FFCV arm cannot run here (None where ``ffcv`` imports)."""
    try:
        import ffcv  # noqa: F401
    except (ImportError, OSError) as err:  # not installed, or a native library it needs does not load
        return f"ffcv: skipped, it does not import here ({type(err).__name__}: {err}); {INSTALL}."
    return None


def version() -> str:
    """The installed ffcv's version."""
    from importlib.metadata import version as installed

    return installed("ffcv")


def passes_through(data: bytes) -> bool:
    """Whether FFCV's JPEG decoder (libjpeg-turbo to RGB) reads these bytes as they are: an RGB or greyscale JPEG."""
    return data.startswith(JPEG_MAGIC) and Image.open(io.BytesIO(data)).mode in ("RGB", "L")


def write_beton(photos: list[bytes], labels: list[int], path: Path) -> int:
    """Writes ``photos`` with ``labels`` as an FFCV dataset file at ``path``; returns how many were re-encoded."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.fields.rgb_image import IMAGE_MODES
    from ffcv.writer import DatasetWriter

    class JPEGBytesField(RGBImageField):
        """RGBImageField written from encoded bytes: a JPEG FFCV reads is stored as it is, anything else as
        RGBImageField(write_mode="jpg") stores its decoded pixels. Read back as a plain RGBImageField."""

        def encode(self, destination, data, malloc):
            if not passes_through(data):
                return super().encode(destination, np.array(Image.open(io.BytesIO(data)).convert("RGB")), malloc)
            destination["mode"] = IMAGE_MODES["jpg"]
            destination["width"], destination["height"] = Image.open(io.BytesIO(data)).size
            destination["data_ptr"], storage = malloc(len(data))
            storage[:] = np.frombuffer(data, dtype=np.uint8)

    samples = list(zip(photos, labels))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(str(path), {"image": JPEGBytesField(write_mode="jpg"), "label": IntField()}, num_workers=1)
    writer.from_indexed_dataset(samples)
    return sum(not passes_through(data) for data in photos)


def ffcv_batches(path: Path, size: tuple[int, int], batch_crops: int, photos: int):
    """(FFCV's batches, endlessly, as ``{"pixel_values", "labels"}``; batches per timed unit: a whole epoch, so that
    the work its thread does ahead is counted). One worker, random order, the file in the OS cache."""
    from ffcv.fields import RGBImageField
    from ffcv.fields.decoders import IntDecoder, RandomResizedCropRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import RandomHorizontalFlip, ToTensor, ToTorchImage

    if photos < batch_crops:
        raise ValueError(f"{photos} photos make no full batch of {batch_crops}: give more --photos.")
    pipelines = {
        "image": [RandomResizedCropRGBImageDecoder(size), RandomHorizontalFlip(), ToTensor(), ToTorchImage()],
        "label": [IntDecoder(), ToTensor()],
    }
    loader = Loader(
        str(path),
        batch_crops,
        num_workers=1,
        os_cache=True,
        order=OrderOption.RANDOM,
        seed=0,
        pipelines=pipelines,
        custom_fields={"image": RGBImageField},
        drop_last=True,
    )

    def batches():
        while True:
            for images, labels in loader:
                yield {"pixel_values": images, "labels": labels}

    return batches(), len(loader)
