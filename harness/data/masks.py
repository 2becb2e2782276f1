"""Seeded free-form masks (strokes and boxes, as in DeepFill v2 and LaMa) that hit an area bin.

A mask is built from thick polylines with round joints (DeepFill v2's `random_ff_mask`, LaMa's
irregular masks) and a few axis-aligned boxes (LaMa's box masks). It lands in its requested bin by
construction: a hole-pixel target is drawn inside the bin, shapes are added until the target is
reached, a shape that would overshoot the bin is redrawn smaller, and if the shapes run out the hole
grows by one-pixel rings, the last ring cut to the exact pixel count.

Pixels come only from integer arithmetic and `Generator.integers`, so the same (seed, index, size,
bin) gives the same pixels on every machine; the PNG bytes then depend only on Pillow's encoder.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np

from harness.data.layout import AREA_BINS, bin_label, file_name
from harness.data.manifest import MaskRecord, mask_record, write_mask_manifest
from harness.data.pngs import HOLE, write_png
from harness.errors import DataError
from harness.progress import Reporter, SilentReporter

# Cosines and sines of whole degrees, rounded so that a libm differing in the last bit on another
# machine cannot move a stroke vertex by a pixel.
_COS = tuple(round(math.cos(math.radians(d)), 9) for d in range(360))
_SIN = tuple(round(math.sin(math.radians(d)), 9) for d in range(360))
_MAX_SHAPES = 120  # shapes tried before ring growth takes over
_BOX_ODDS = 5  # one shape in five is a box: LaMa mixes box and irregular masks
_SHRINK = 0.6  # a shape that would overshoot the bin is redrawn at this fraction of its scale
_MIN_SCALE = 0.02


def _in_range(count: int, pixels: int, low: float, high: float) -> bool:
    # Also test the 6-decimal fraction the manifest stores, so that re-binning it agrees.
    fraction = count / pixels
    rounded = round(fraction, 6)
    return low < fraction <= high and low < rounded <= high


def hole_count_range(size: int, hole_range: tuple[float, float]) -> tuple[int, int] | None:
    """Return the least and greatest hole-pixel counts of a size² mask in (low, high], or None."""
    low, high = hole_range
    pixels = size * size
    least = max(0, math.floor(low * pixels) - 1)
    most = min(pixels, math.ceil(high * pixels) + 1)
    # Float rounding can move a bin edge by a pixel either way: walk in to the first count inside.
    while least <= most and not _in_range(least, pixels, low, high):
        least += 1
    while most >= least and not _in_range(most, pixels, low, high):
        most -= 1
    return (least, most) if least <= most else None


def mask_bins(hole_range: tuple[float, float]) -> list[tuple[float, float]]:
    """Return the NVIDIA area bins that overlap `hole_range`, each clipped to it (open below)."""
    low, high = hole_range
    if not 0.0 <= low < high <= 1.0:
        raise DataError(
            f"hole range ({low:g}, {high:g}]: expected 0 ≤ low < high ≤ 1",
            "pass e.g. --hole-range 0.01 0.6",
        )
    bins = [(max(lo, low), min(hi, high)) for lo, hi in AREA_BINS if max(lo, low) < min(hi, high)]
    if not bins:
        raise DataError(
            f"hole range ({low:g}, {high:g}] overlaps no area bin of (0.01, 0.6]",
            "choose a hole range inside 0.01 … 0.6",
        )
    return bins


def _capsule(out: np.ndarray, a: tuple[int, int], b: tuple[int, int], r2: int) -> None:
    """Set the pixels within sqrt(r2) of segment a–b (x, y) in `out`: a stroke with round caps."""
    size = out.shape[0]
    reach = math.isqrt(r2) + 1
    x0, x1 = max(min(a[0], b[0]) - reach, 0), min(max(a[0], b[0]) + reach, size - 1) + 1
    y0, y1 = max(min(a[1], b[1]) - reach, 0), min(max(a[1], b[1]) + reach, size - 1) + 1
    if x0 >= x1 or y0 >= y1:
        return
    # Integer arithmetic only, so that the rasterisation is identical on every machine.
    dx = np.arange(x0, x1, dtype=np.int64)[None, :] - a[0]
    dy = np.arange(y0, y1, dtype=np.int64)[:, None] - a[1]
    ex, ey = b[0] - a[0], b[1] - a[1]
    ee = ex * ex + ey * ey
    dd = dx * dx + dy * dy
    if ee == 0:
        inside = dd <= r2
    else:
        de = dx * ex + dy * ey
        db = (dx - ex) ** 2 + (dy - ey) ** 2
        across = dd * ee - de * de <= r2 * ee  # squared distance to the line, times ee
        inside = np.where(de <= 0, dd <= r2, np.where(de >= ee, db <= r2, across))
    out[y0:y1, x0:x1] |= inside


def _between(rng: np.random.Generator, low: float, high: float) -> int:
    low_i = max(1, round(low))
    return int(rng.integers(low_i, max(low_i, round(high)) + 1))


def _stroke(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Draw one brush stroke: a polyline of 2–8 segments, its width fixed, its heading wandering."""
    shape = np.zeros((size, size), dtype=bool)
    radius = _between(rng, size / 64 * scale, size / 16 * scale)
    r2 = radius * radius + radius  # the +radius rounds off the disc's four single-pixel tips
    x, y = int(rng.integers(0, size)), int(rng.integers(0, size))
    heading = int(rng.integers(0, 360))
    for _ in range(int(rng.integers(2, 9))):
        heading = (heading + int(rng.integers(-120, 121))) % 360
        length = _between(rng, size / 16 * scale, size / 4 * scale)
        nx = min(max(round(x + length * _COS[heading]), 0), size - 1)
        ny = min(max(round(y + length * _SIN[heading]), 0), size - 1)
        _capsule(shape, (x, y), (nx, ny), r2)
        x, y = nx, ny
    return shape


def _box(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Draw one axis-aligned box with sides between size/10 and size/3 (times `scale`)."""
    shape = np.zeros((size, size), dtype=bool)
    h = min(_between(rng, size / 10 * scale, size / 3 * scale), size)
    w = min(_between(rng, size / 10 * scale, size / 3 * scale), size)
    y, x = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
    shape[y : y + h, x : x + w] = True
    return shape


def _grow(hole: np.ndarray, need: int, rng: np.random.Generator) -> None:
    """Add exactly `need` pixels to `hole` as 4-connected rings around it, the last one partial."""
    size = hole.shape[0]
    while need > 0:
        if not hole.any():
            hole[int(rng.integers(0, size)), int(rng.integers(0, size))] = True
            need -= 1
            continue
        ring = hole.copy()
        ring[1:, :] |= hole[:-1, :]
        ring[:-1, :] |= hole[1:, :]
        ring[:, 1:] |= hole[:, :-1]
        ring[:, :-1] |= hole[:, 1:]
        ring &= ~hole
        where = np.flatnonzero(ring)[:need]
        hole.flat[where] = True
        need -= where.size


def generate_mask(size: int, hole_range: tuple[float, float], seed: int, index: int) -> np.ndarray:
    """Draw a size×size bool mask (True = hole) whose hole fraction lies in (low, high].

    The same (size, hole_range, seed, index) always gives the same mask. Raises ValueError if
    no whole number of pixels of a size² mask falls in (low, high], or `seed`/`index` < 0.
    """
    low, high = hole_range
    counts = hole_count_range(size, hole_range)
    if counts is None:
        raise ValueError(f"no hole fraction of a {size}×{size} mask lies in ({low:g}, {high:g}]")
    least, most = counts
    # The bin is part of the seed so that each (index, bin) pair is an independent stream.
    rng = np.random.default_rng([seed, index, size, round(low * 1e6), round(high * 1e6)])
    target = int(rng.integers(least, most + 1))
    hole = np.zeros((size, size), dtype=bool)
    count, scale = 0, 1.0
    for _ in range(_MAX_SHAPES):
        if count >= target:
            break
        draw = _box if rng.integers(0, _BOX_ODDS) == 0 else _stroke
        shape = draw(rng, size, scale)
        added = int(np.count_nonzero(shape & ~hole))
        if count + added > most:
            scale = max(scale * _SHRINK, _MIN_SCALE)
            continue
        hole |= shape
        count += added
    if count < least:
        _grow(hole, target - count, rng)
    return hole


def write_masks(
    out_dir: Path,
    count: int,
    size: int,
    seed: int,
    hole_range: tuple[float, float] = (0.01, 0.6),
    reporter: Reporter | None = None,
) -> list[MaskRecord]:
    """Write `count` masks `000000.png`… into `out_dir` plus manifest.json, spread over the bins.

    Mask i asks for bin i mod n of the n area bins that overlap `hole_range` (clipped to it) and
    always lands in it. Masks are 8-bit L PNGs, 255 = hole, 0 = known. Mask i depends only on
    (seed, i, size, its bin), not on `count`. `out_dir` should be new or empty: files already in
    it are left alone and would not be in the manifest.
    """
    bins = mask_bins(hole_range)
    if seed < 0 or count < 0:
        raise DataError(f"masks for {out_dir}: seed {seed} and count {count} must be ≥ 0")
    for low, high in bins:
        if hole_count_range(size, (low, high)) is None:
            raise DataError(
                f"masks for {out_dir}: a {size}×{size} mask cannot have a hole fraction in"
                f" ({low:g}, {high:g}]",
                "use a larger --size or a wider --hole-range",
            )
    track = (reporter or SilentReporter(quiet=True)).track
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for i in track(range(count), count, "masks"):
        hole = generate_mask(size, bins[i % len(bins)], seed, i)
        path = out_dir / file_name(i)
        write_png(path, hole.astype(np.uint8) * np.uint8(HOLE))
        records.append(mask_record(path, hole))
    write_mask_manifest(out_dir, records)
    return records


def bin_counts(records: list[MaskRecord]) -> list[tuple[str, int]]:
    """Count masks per area bin, in bin order, every bin listed (masks outside all bins last)."""
    counts = Counter(r.bin for r in records)
    rows = [(bin_label(lo, hi), counts.pop(bin_label(lo, hi), 0)) for lo, hi in AREA_BINS]
    rows += [(str(label), n) for label, n in counts.items()]
    return rows
