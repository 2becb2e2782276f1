"""Binarise an imported mask from its own grey levels, and say when it is not a two-level mask.

Real mask files are not always 0/255: JPEG masks carry compression noise around both levels,
some tools paint holes 255 on a 127 background, anti-aliased masks have grey rims. A fixed
threshold of 128 turned the noise of a 127 background into hundreds of speckle holes, so the
threshold is Otsu's (scikit-image's `threshold_otsu`): the level that best separates the mask's
two grey populations, whatever they are.

A mask is two-level when it holds exactly two grey values (0/255, or 0/1 as label masks are
saved), or when its two populations are far apart (MIN_CONTRAST grey levels between
their means) and few pixels (at most MAX_STRAY) lie in the middle half of the gap between them:
JPEG noise and anti-aliased rims pass, a photo or a gradient does not. A single-level mask (all
one grey) is thresholded at 128, the old rule, so that it is read as all hole or all known and
then left out by the hole range.

Speckles are hole components (8-connected) of at most SPECKLE_FRACTION of the mask's pixels,
counted on the mask as it goes into the data tree: they are counted and reported, not removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.filters import threshold_otsu
from skimage.measure import label

MIN_CONTRAST = 64  # grey levels between the two populations' means
MAX_STRAY = 0.2  # fraction of pixels allowed in the middle half of the gap (soft rims pass)
SPECKLE_FRACTION = 1e-4  # 6 px of a 256² mask
SINGLE_LEVEL_THRESHOLD = 127  # `> 127` is `>= 128`, the rule before Otsu


@dataclass(frozen=True)
class Levels:
    """How a grey mask was split: `white` is True above `threshold`."""

    white: np.ndarray  # bool HxW
    threshold: int
    problem: str | None  # why the mask is not two-level, or None


def split_levels(gray: np.ndarray) -> Levels:
    """Threshold uint8 HxW `gray` at Otsu's level; check that it holds two well-separated levels."""
    low, high = int(gray.min()), int(gray.max())
    if low == high:
        return Levels(gray > SINGLE_LEVEL_THRESHOLD, SINGLE_LEVEL_THRESHOLD, None)
    threshold = int(threshold_otsu(gray))
    white = gray > threshold
    if np.count_nonzero(np.bincount(gray.ravel(), minlength=256)) == 2:
        return Levels(white, threshold, None)  # exactly two values (0/255, or a 0/1 label mask)
    dark, light = float(gray[~white].mean()), float(gray[white].mean())
    gap = light - dark
    if gap < MIN_CONTRAST:
        return Levels(
            white,
            threshold,
            f"not a two-level mask: its grey levels {dark:.0f} and {light:.0f} are only "
            f"{gap:.0f} apart (at least {MIN_CONTRAST} needed)",
        )
    stray = float(np.mean(np.abs(gray.astype(np.float64) - (dark + light) / 2) < gap / 4))
    if stray > MAX_STRAY:
        return Levels(
            white,
            threshold,
            f"not a two-level mask: {stray:.1%} of its pixels lie between its grey levels "
            f"{dark:.0f} and {light:.0f} (at most {MAX_STRAY:.0%}); a photo or a soft mask?",
        )
    return Levels(white, threshold, None)


def speckles(hole: np.ndarray) -> int:
    """Count the hole components (8-connected) of at most SPECKLE_FRACTION of the pixels."""
    labels, count = label(hole, connectivity=2, return_num=True)
    if count == 0:
        return 0
    areas = np.bincount(labels.ravel())[1:]
    return int(np.count_nonzero(areas <= max(1, int(SPECKLE_FRACTION * hole.size))))
