"""Turn arbitrary photo and mask files into the contract's square 8-bit pixels.

Conventions, chosen once here:

* EXIF orientation is applied first (`ImageOps.exif_transpose`), so pictures come out upright.
* Transparency (RGBA, LA, P or L/RGB with a tRNS chunk) is composited: photos on white, as a
  viewer shows them on a white page, so colours hidden under transparent pixels never leak in;
  masks on black, so unpainted (transparent) pixels are 0 before polarity is applied.
* 16-bit grayscale (`I;16*`, and `I`, taken as 16-bit) is scaled by 1/257 to the full 8-bit range;
  PIL's own conversion would clip everything above 255 to white. `F` is clipped to [0, 255].
* CMYK, YCbCr, P and L go through PIL's `convert("RGB")`; embedded ICC profiles are ignored.
* Photos: the shorter side is resized to `size` (Lanczos), then the centre `size`² is cropped.
  Masks: luminance thresholded at full resolution at a level chosen from the mask's own grey
  levels (Otsu, `harness.data.mask_levels`), then the same resize and crop with NEAREST, so they
  stay binary.
* Only regular files are listed and opened: a FIFO named like a photo would block the import.
* Images over Pillow's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`, 89.5 Mpixels) are
  refused, not decoded (a 12000² PNG took 1.7 GB): `harness.data.pngs` makes Pillow's warning
  an error.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from harness.config import file_kind
from harness.data.mask_levels import split_levels
from harness.data.pngs import encode_png, refuse_too_large
from harness.errors import DataError

PHOTO_BACKGROUND = (255, 255, 255)
MASK_BACKGROUND = (0, 0, 0)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def image_files(folder: Path) -> list[Path]:
    """Return the files under `folder` (recursively, links to folders not followed) that PIL can
    open, by extension, sorted by relative path; hidden files and folders are left out."""
    Image.init()
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    found = []
    for parent, dirs, files in os.walk(folder):
        # Hidden entries are editor or OS litter (.DS_Store, ._IMG_0001.jpg), never photos.
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [
            Path(parent) / f
            for f in files
            if not f.startswith(".") and Path(f).suffix.lower() in readable
        ]
    for path in found:
        try:
            mode = path.stat().st_mode
        except OSError as error:
            raise DataError(
                f"{path}: cannot read: {error.strerror or error}",
                "remove it or fix its permissions (a broken link?)",
            ) from None
        if not stat.S_ISREG(mode):
            raise DataError(
                f"{path}: not a regular file ({file_kind(mode)}): not opened",
                "remove it from the folder: photos and masks are regular files",
            )
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def flatten(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Return `image` as 8-bit RGB, transparency composited on `background`."""
    if image.mode in _SIXTEEN_BIT:
        levels = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        levels = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.rint(levels), 0, 255).astype(np.uint8), "L")
    bands = image.getbands()
    if "A" in bands or "a" in bands or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB")


def fit_square(image: Image.Image, size: int, resample: Image.Resampling) -> Image.Image:
    """Resize so that the shorter side is `size`, then crop the centre `size` x `size`.

    An odd margin leaves its extra pixel on the right or bottom.
    """
    width, height = image.size
    scale = size / min(width, height)
    scaled = (max(size, round(width * scale)), max(size, round(height * scale)))
    if scaled != image.size:
        # A box pre-reduction when shrinking ≥ 3x: Pillow documents the result as nearly equal
        # to plain Lanczos, at a fraction of the time. Never for NEAREST: it would average masks.
        gap = 3.0 if resample != Image.Resampling.NEAREST else None
        image = image.resize(scaled, resample, reducing_gap=gap)
    left, top = (scaled[0] - size) // 2, (scaled[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def open_photo(path: Path, size: int) -> Image.Image:
    """Decode `path` upright as 8-bit RGB. Raises whatever PIL raises on a bad file."""
    with Image.open(path) as image:
        refuse_too_large(image)
        # JPEG only: decode at 1/2, 1/4 or 1/8 scale while staying ≥ 2x the target, as
        # Image.thumbnail does (reducing_gap=2), so large photos load fast at full quality.
        image.draft(None, (2 * size, 2 * size))
        upright = ImageOps.exif_transpose(image)
        return flatten(upright, PHOTO_BACKGROUND)


def photo_png(image: Image.Image, size: int) -> bytes:
    """Encode the centre crop of `image` at `size`² as an RGB PNG."""
    square = fit_square(image, size, Image.Resampling.LANCZOS)
    return encode_png(np.asarray(square, dtype=np.uint8))


def open_mask(path: Path) -> Image.Image:
    """Decode `path` upright as 8-bit luminance (L). Raises whatever PIL raises on a bad file."""
    with Image.open(path) as image:
        refuse_too_large(image)
        return flatten(ImageOps.exif_transpose(image), MASK_BACKGROUND).convert("L")


@dataclass(frozen=True)
class MaskReading:
    """An imported mask at `size`², before polarity: True where it is white."""

    white: np.ndarray  # bool size x size
    threshold: int  # grey level: white is above it
    problem: str | None  # why it is not a two-level mask (then it is left out), or None


def mask_white(gray: Image.Image, size: int) -> MaskReading:
    """Threshold `gray` at its Otsu level and fit it to `size`² (see the module docstring)."""
    levels = split_levels(np.asarray(gray, dtype=np.uint8))
    binary = np.where(levels.white, 255, 0).astype(np.uint8)
    square = fit_square(Image.fromarray(binary, "L"), size, Image.Resampling.NEAREST)
    return MaskReading(np.asarray(square) == 255, levels.threshold, levels.problem)
