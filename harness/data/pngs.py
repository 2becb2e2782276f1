"""Reading and writing the contract's PNGs: 8-bit RGB images and 8-bit L masks (255 = hole)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.atomic import atomic_write_bytes
from harness.errors import DataError

HOLE = 255
KNOWN = 0
# Pillow only warns between MAX_IMAGE_PIXELS and twice that, then decodes (1.7 GB for a 12000²
# PNG). The harness never wants such an image decoded: make the warning an error everywhere, so
# the readers' `except` clauses report the file instead.
# (`refuse_too_large` checks again where warning filters were reset, as under pytest.)
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
TOO_LARGE = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def refuse_too_large(image: Image.Image) -> None:
    """Raise DecompressionBombError if `image` (opened, not decoded) is over Pillow's limit."""
    width, height = image.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise Image.DecompressionBombError(
            f"{width}x{height} is {width * height / 1e6:.1f} Mpixels, over the limit of "
            f"{limit / 1e6:.1f} Mpixels."
        )


def encode_png(array: np.ndarray) -> bytes:
    """uint8 HxWx3 → RGB PNG bytes, uint8 HxW → L PNG bytes. Deterministic: no metadata."""
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 3:
        image = Image.fromarray(array, mode="RGB")
    elif array.ndim == 2:
        image = Image.fromarray(array, mode="L")
    else:
        raise ValueError(f"expected HxWx3 or HxW pixels, got shape {array.shape}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def write_png(path: Path, array: np.ndarray) -> None:
    """Write `array` as a PNG through a temporary name, so a crash leaves no partial file."""
    atomic_write_bytes(path, encode_png(array))


def read_rgb(path: Path) -> np.ndarray:
    """An 8-bit RGB PNG → uint8 HxWx3. Raises DataError naming the file if it is anything else."""
    with _opened(path) as image:
        if image.mode != "RGB":
            raise DataError(
                f"{path}: expected an 8-bit RGB image, got mode {image.mode}", _CHECK_HINT
            )
        return _pixels(path, image).copy()


def read_mask(path: Path) -> np.ndarray:
    """An 8-bit L mask → bool HxW, True = hole. Raises DataError if unreadable, not L or not
    binary."""
    with _opened(path) as image:
        if image.mode != "L":
            raise DataError(
                f"{path}: expected an 8-bit single-channel mask, got mode {image.mode}",
                _CHECK_HINT,
            )
        pixels = _pixels(path, image)
    values = np.unique(pixels)
    if not set(values.tolist()) <= {KNOWN, HOLE}:
        raise DataError(f"{path}: mask is not binary (values other than 0 and 255)", _CHECK_HINT)
    return pixels == HOLE


_CHECK_HINT = "run `inpaint-bench data check` on the data tree for every problem and its fix"


def _opened(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
    except Exception as error:  # PIL raises many types on bad bytes: all mean "unreadable"
        raise DataError(f"{path}: unreadable image ({type(error).__name__}: {error})") from None
    try:
        refuse_too_large(image)
        return image
    except Image.DecompressionBombError as error:
        image.close()
        raise DataError(f"{path}: too large to decode ({error})", _CHECK_HINT) from None


def _pixels(path: Path, image: Image.Image) -> np.ndarray:
    try:
        return np.asarray(image, dtype=np.uint8)
    except Exception as error:  # a truncated or corrupt stream fails only when decoded
        raise DataError(
            f"{path}: unreadable image ({type(error).__name__}: {error})", _CHECK_HINT
        ) from None
