"""Shared inputs and checks for the metric reference tests (style guide §5 item 13).

Inputs are seeded and built once at import: `CASES` maps a case name to a `Pair` (one H×W×3 uint8
prediction and ground truth, and a bool H×W hole mask). They are chosen so that each metric has
something to measure: independent noise, correlated (gt·c + noise), identical, odd sizes,
all-known and all-hole masks, and crops of skimage's bundled photographs with JPEG-like damage.
"""

from __future__ import annotations

import io
import random
import sys
from typing import NamedTuple

import numpy as np
from PIL import Image

SEED = 1234


def seed_all(seed: int = SEED) -> np.random.Generator:
    """Seed python, numpy (returned as a Generator) and torch if it is already imported."""
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
    return np.random.default_rng(seed)


class Pair(NamedTuple):
    pred: np.ndarray  # uint8 H×W×3
    gt: np.ndarray  # uint8 H×W×3
    mask: np.ndarray  # bool H×W, True = hole


def assert_close(ours: object, ref: object, atol: float, what: str = "") -> None:
    """Elementwise |ours − ref| ≤ atol (NaN equals NaN); on failure show both and the max diff."""
    a = np.asarray(ours, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs reference {b.shape}"
    if np.allclose(a, b, rtol=0.0, atol=atol, equal_nan=True):
        return
    both = np.isfinite(a) & np.isfinite(b)
    diff = float(np.max(np.abs(a - b)[both])) if both.any() else float("nan")
    nan_mismatch = bool((np.isnan(a) != np.isnan(b)).any())
    raise AssertionError(
        f"{what}: max |diff| {diff:.3g} > atol {atol:g} (NaN mismatch: {nan_mismatch})\n"
        f"  ours: {a.tolist()}\n  ref:  {b.tolist()}"
    )


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """A PIL JPEG round trip: blocky, blurred colour, like a lossy model output."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()


def box_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random rectangle of about a quarter of the image, True = hole."""
    mask = np.zeros((height, width), dtype=bool)
    top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
    mask[top : top + max(1, height // 2), left : left + max(1, width // 2)] = True
    return mask


def correlated(rng: np.random.Generator, gt: np.ndarray, coef: float, sigma: float) -> np.ndarray:
    noisy = gt.astype(np.float64) * coef + rng.normal(0.0, sigma, gt.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _photo(name: str, top: int, left: int, height: int, width: int) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)()[top : top + height, left : left + width])


def _build_cases() -> dict[str, Pair]:
    rng = seed_all(SEED)
    cases: dict[str, Pair] = {}

    def noise(h: int, w: int) -> np.ndarray:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)

    gt = noise(32, 32)
    cases["independent_noise"] = Pair(noise(32, 32), gt, box_mask(rng, 32, 32))
    gt = noise(32, 32)
    cases["correlated"] = Pair(correlated(rng, gt, 0.8, 20.0), gt, box_mask(rng, 32, 32))
    gt = noise(32, 32)
    cases["identical"] = Pair(gt.copy(), gt, box_mask(rng, 32, 32))
    for h, w in ((13, 17), (64, 65)):
        gt = noise(h, w)
        cases[f"odd_{h}x{w}"] = Pair(correlated(rng, gt, 0.9, 10.0), gt, box_mask(rng, h, w))
    gt = noise(32, 32)
    cases["all_known"] = Pair(correlated(rng, gt, 0.7, 5.0), gt, np.zeros((32, 32), bool))
    gt = noise(32, 32)
    cases["all_hole"] = Pair(correlated(rng, gt, 0.7, 5.0), gt, np.ones((32, 32), bool))
    try:
        photos = {
            "astronaut_jpeg30": (_photo("astronaut", 40, 160, 96, 80), 30),
            "coffee_jpeg10": (_photo("coffee", 150, 200, 64, 64), 10),
            "chelsea_jpeg75": (_photo("chelsea", 60, 120, 48, 72), 75),
        }
    except ImportError:  # skimage missing: the reference tests skip anyway
        photos = {}
    for name, (photo, quality) in photos.items():
        h, w = photo.shape[:2]
        cases[name] = Pair(jpeg(photo, quality), photo, box_mask(rng, h, w))
    return cases


CASES = _build_cases()


def stack(pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N same-sized pairs → (pred N×H×W×3, gt N×H×W×3, hole N×H×W)."""
    return (
        np.stack([p.pred for p in pairs]),
        np.stack([p.gt for p in pairs]),
        np.stack([p.mask for p in pairs]),
    )
