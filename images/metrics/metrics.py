"""Image-quality metrics for inpainting: pure batch functions and the METRICS registry.

Every function takes uint8 RGB batches, N×H×W×3 in [0, 255], and (where it needs one) a bool hole
batch, N×H×W with True = hole (the contract's mask value 255). It returns float64 of shape (N,): one
score per image, never a pooled score; means and intervals are computed later from these rows.

    >>> gt = np.zeros((1, 2, 2, 3), np.uint8); pred = gt + 10
    >>> float(psnr(pred, gt)[0])  # 10·log10(255² / 10²)
    28.130803608679106

Only numpy, scipy (a scikit-image dependency) and OpenCV (its box filter) are imported here, so
the PSNR/SSIM tests run without torch. LPIPS is a scorer object, not a batch function: it is in
lpips_scorer.py (LPIPSScorer imports torch and lpips when it is built). Conventions (anchors §5):

- PSNR: per image, uint8 [0,255], MSE over all pixels and channels, floored at PSNR_MSE_FLOOR.
- SSIM: scikit-image's `structural_similarity(pred, gt, channel_axis=-1, data_range=255)`.
- SSIM (Gaussian): the same with `gaussian_weights=True, sigma=1.5, use_sample_covariance=False`
  (Wang et al. 2004).
- LPIPS v0.1 (lpips package), inputs scaled to [-1, 1], alexnet or vgg16 trunk (lpips_scorer.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import correlate1d

# --- PSNR ------------------------------------------------------------------------------------
# Identical images have MSE 0 and PSNR +inf (MMagic's "inf" row, anchors §4). The MSE is floored
# at 1e-10, which caps PSNR at 10·log10(255²/1e-10) ≈ 148.13 dB. The smallest non-zero MSE of an
# H×W×3 uint8 pair is 1/(3HW), so any pair that differs anywhere scores at most
# 48.13 + 10·log10(3HW) dB (100.9 dB at 256², 106.9 dB at 512²): the cap marks exact matches only
# and never clips a real difference.
PSNR_MSE_FLOOR = 1e-10
DATA_RANGE = 255.0
PSNR_CAP_DB = 10.0 * math.log10(DATA_RANGE**2 / PSNR_MSE_FLOOR)

# --- SSIM constants (skimage/metrics/_structural_similarity.py defaults) ----------------------
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_C1, SSIM_C2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
SSIM_WIN = 7  # skimage's default uniform window
GAUSS_SIGMA, GAUSS_TRUNCATE = 1.5, 3.5  # skimage: truncate 3.5 gives radius 5, an 11×11 window
GAUSS_RADIUS = int(GAUSS_TRUNCATE * GAUSS_SIGMA + 0.5)


def _check_batch(name: str, array: np.ndarray) -> None:
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"{name}: expected uint8 N×H×W×3, got {array.dtype} {tuple(array.shape)}")


def check_images(pred: np.ndarray, gt: np.ndarray) -> None:
    _check_batch("pred", pred)
    _check_batch("gt", gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt differ in shape: {pred.shape} vs {gt.shape}")


def _check_hole(hole: np.ndarray, gt: np.ndarray) -> np.ndarray:
    if hole.shape != gt.shape[:3]:
        raise ValueError(f"hole: expected shape {gt.shape[:3]}, got {tuple(hole.shape)}")
    return hole.astype(bool, copy=False)


def _squared_error_sums(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per image Σ(pred−gt)² over pixels and channels, exact in int64 (sufficient statistic)."""
    diff = pred.astype(np.int32) - gt.astype(np.int32)
    return np.einsum("nhwc,nhwc->n", diff, diff, dtype=np.int64)


def psnr_from_mse(mse: np.ndarray) -> np.ndarray:
    """10·log10(255² / max(MSE, floor)); NaN stays NaN (no pixels to compare)."""
    with np.errstate(invalid="ignore"):
        floored = np.where(np.isnan(mse), np.nan, np.maximum(mse, PSNR_MSE_FLOOR))
    return 10.0 * np.log10(DATA_RANGE**2 / floored)


def psnr(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio per image, in dB.

    PSNR = 10·log10(255² / MSE), MSE = mean over all H·W·3 values of (pred − gt)², on uint8 values
    in [0, 255] (data_range 255). No window; the colour channels are pooled into one MSE (as
    skimage's `peak_signal_noise_ratio`). The MSE is floored at PSNR_MSE_FLOOR (1e-10), so
    identical images give the cap PSNR_CAP_DB ≈ 148.13 dB instead of inf. Higher is better.

    >>> gt = np.array([[[[0, 0, 0], [255, 255, 255]], [[0, 0, 0], [255, 255, 255]]]], np.uint8)
    >>> pred = gt.copy(); pred[0, 0, 0] = 255  # one pixel (3 of 12 values) off by 255
    >>> psnr(np.concatenate([pred, gt]), np.concatenate([gt, gt])).round(2).tolist()
    [6.02, 148.13]
    """
    check_images(pred, gt)
    count = pred.shape[1] * pred.shape[2] * pred.shape[3]
    return psnr_from_mse(_squared_error_sums(pred, gt) / count)


def _masked_sums(
    pred: np.ndarray, gt: np.ndarray, where: np.ndarray, power: int
) -> tuple[np.ndarray, np.ndarray]:
    """Σ|pred−gt|^power over the pixels (all 3 channels) where `where`, and the value count."""
    diff = np.abs(pred.astype(np.int32) - gt.astype(np.int32))
    if power == 2:
        diff = diff * diff
    per_pixel = diff.sum(axis=-1, dtype=np.int64)
    sums = np.einsum("nhw,nhw->n", per_pixel, where.astype(np.int64))
    return sums, 3 * where.sum(axis=(1, 2), dtype=np.int64)


def _ratio(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def l1_hole(pred: np.ndarray, gt: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Mean |pred − gt| over the hole pixels and their 3 channels, in uint8 units [0, 255].

    No window; NaN for an image without hole pixels. Lower is better. (MMagic's MAE is the same
    over [0, 1]: divide by 255.)

    >>> gt = np.zeros((1, 2, 2, 3), np.uint8); pred = gt.copy(); pred[0, 0] = 30; pred[0, 1] = 90
    >>> hole = np.array([[[True, False], [False, False]]])
    >>> l1_hole(pred, gt, hole).tolist()
    [30.0]
    """
    check_images(pred, gt)
    return _ratio(*_masked_sums(pred, gt, _check_hole(hole, gt), 1))


def psnr_hole(pred: np.ndarray, gt: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """PSNR over the hole pixels only: 10·log10(255² / MSE_hole), in dB.

    MSE_hole is the mean of (pred − gt)² over hole pixels × 3 channels, floored like `psnr`;
    NaN for an image without hole pixels. Higher is better.

    >>> gt = np.zeros((1, 2, 2, 3), np.uint8); pred = gt.copy(); pred[0, 0, 0] = 10
    >>> hole = np.array([[[True, False], [False, False]]])
    >>> psnr_hole(pred, gt, hole).round(2).tolist()
    [28.13]
    """
    check_images(pred, gt)
    return psnr_from_mse(_ratio(*_masked_sums(pred, gt, _check_hole(hole, gt), 2)))


def known_pixel_deviation(raw: np.ndarray, gt: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Mean |raw − gt| over the KNOWN pixels and their 3 channels, in uint8 units [0, 255].

    Zero for a model that keeps the unmasked region; large for one that damages it (e.g. a mask
    polarity bug: it then paints the known region). Composite scores cannot see this, as the
    composite takes the known pixels from gt. NaN for an image without known pixels. Lower is
    better.

    >>> gt = np.zeros((1, 2, 2, 3), np.uint8); raw = gt.copy(); raw[0, 1, 1] = 40
    >>> hole = np.array([[[True, False], [False, False]]])
    >>> known_pixel_deviation(raw, gt, hole).round(4).tolist()
    [13.3333]
    """
    check_images(raw, gt)
    return _ratio(*_masked_sums(raw, gt, ~_check_hole(hole, gt), 1))


def composite(raw: np.ndarray, gt: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The model's output inside the hole, gt outside: raw·m + gt·(1 − m) in uint8, m = hole.

    >>> gt = np.zeros((1, 1, 2, 3), np.uint8); raw = gt + 9
    >>> composite(raw, gt, np.array([[[True, False]]]))[0, :, :, 0].tolist()
    [[9, 0]]
    """
    check_images(raw, gt)
    return np.where(_check_hole(hole, gt)[..., None], raw, gt)


# --- SSIM ------------------------------------------------------------------------------------
# skimage filters the whole image (mode "reflect") and then drops a border of (win − 1)/2, so
# every pixel it averages has its window fully inside the image: the border mode never matters,
# and the uniform SSIM computes only that valid region. The batch is walked one image at a time:
# that keeps the five window maps in cache (a whole-batch version measured 2–3× slower here).


def _window_sums(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Σx, Σy, Σ(x² + y²), Σxy over every valid 7×7 window of an H×W×3 uint8 pair: 4×h×w×3 int32.

    OpenCV's box filter in float32 is exact here: every term and every partial sum is an integer
    below 2·49·255² ≈ 6.4e6 < 2²⁴, where float32 holds integers exactly (half the time of
    numpy's shifted int32 adds). SSIM needs Σx² and Σy² only as their sum: four maps, not five.
    """
    xf, yf = x.astype(np.float32), y.astype(np.float32)
    r = SSIM_WIN // 2
    h, w = x.shape[0] - 2 * r, x.shape[1] - 2 * r
    sums = np.empty((4, h, w, x.shape[2]), dtype=np.int32)
    for k, plane in enumerate((xf, yf, xf * xf + yf * yf, xf * yf)):
        box = cv2.boxFilter(plane, -1, (SSIM_WIN, SSIM_WIN), normalize=False)
        sums[k] = box[r : r + h, r : r + w]
    return sums


def _numpy_promotes(a: Any) -> Any:
    return a  # numpy makes int32 float64 in each product with a Python float by itself


def ssim_uniform_from_sums(
    sx: Any, sy: Any, sq: Any, sxy: Any, to_float: Callable[[Any], Any] = _numpy_promotes
) -> Any:
    """skimage's SSIM map (7×7 box, sample covariance) from the window sums Σx, Σy, Σ(x²+y²), Σxy.

    The sums are int32 arrays (here) or tensors (device_metrics.py, to_float `Tensor.double`, as
    torch would keep float32): one formula, so both paths give the same bits.
    """
    # The window sums are exact integers (max 2·49·255² ≈ 6.4e6), and so are the int32
    # numerators below (max 2·49²·255² ≈ 3.1e8 < 2³¹), so only the final ratio is rounded.
    n = SSIM_WIN * SSIM_WIN
    # With u = s/n and v = cov_norm·(s₂/n − u²), multiplying every factor by n² gives:
    sxsy = sx * sy
    sum_sq = sx * sx + sy * sy
    cov_num = n * sxy - sxsy
    var_num = n * sq - sum_sq
    cov_norm = n / (n - 1)
    c1, c2 = SSIM_C1 * n * n, SSIM_C2 * n * n
    num = (2.0 * to_float(sxsy) + c1) * (2.0 * cov_norm * to_float(cov_num) + c2)
    den = (to_float(sum_sq) + c1) * (cov_norm * to_float(var_num) + c2)
    return num / den


def _ssim_uniform_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """skimage's SSIM map of one H×W×3 uint8 pair, valid region: 7×7 box, sample covariance."""
    return ssim_uniform_from_sums(*_window_sums(x, y))


# Where x and y are equal over a whole window (a composite's known region), the map above is
# exactly 1.0: then sx = sy, sq = 2·sxy, so var_num = 2·cov_num in exact integers, the first
# factors of num and den are the same float, and (2.0·cov_norm)·cov_num and cov_norm·(2·cov_num)
# round the same value (scaling by 2 is exact): num == den > 0. So only windows that touch a
# differing pixel are computed, in bands of SSIM_BAND output rows cropped to the columns that
# need it (for the benchmark's masks ≈ 60 % of the map); the rest add exactly 1 each.
SSIM_BAND = 16


def _window_any(flags: np.ndarray, width: int) -> np.ndarray:
    """For each valid window of `width` along a 1-D bool array: does it hold any True?"""
    counts = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    return (counts[width:] - counts[:-width]) > 0


def _ssim_uniform_one(x: np.ndarray, y: np.ndarray) -> float:
    """skimage SSIM of one H×W×3 uint8 pair: the mean of _ssim_uniform_map, per channel."""
    differ = np.any(x != y, axis=-1)
    h, w = x.shape[0] - SSIM_WIN + 1, x.shape[1] - SSIM_WIN + 1
    rows = _window_any(differ.any(axis=1), SSIM_WIN)
    sums, computed = np.zeros(x.shape[-1], dtype=np.float64), 0
    for top in range(0, h, SSIM_BAND):
        bottom = min(h, top + SSIM_BAND)
        if not rows[top:bottom].any():
            continue
        band = differ[top : bottom + SSIM_WIN - 1]
        cols = np.flatnonzero(_window_any(band.any(axis=0), SSIM_WIN))
        left, right = int(cols[0]), int(cols[-1]) + 1
        crop = (slice(top, bottom + SSIM_WIN - 1), slice(left, right + SSIM_WIN - 1))
        sums += _ssim_uniform_map(x[crop], y[crop]).sum(axis=(0, 1), dtype=np.float64)
        computed += (bottom - top) * (right - left)
    sums += h * w - computed  # the windows of equal content, exactly 1.0 each
    return float((sums / (h * w)).mean())


def _gaussian_weights() -> np.ndarray:
    # scipy.ndimage._gaussian_kernel1d (order 0), as skimage's gaussian filter uses.
    x = np.arange(-GAUSS_RADIUS, GAUSS_RADIUS + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (GAUSS_SIGMA * GAUSS_SIGMA) * x * x)
    return phi / phi.sum()


GAUSS_WEIGHTS = _gaussian_weights()  # also the torch path's (device_metrics.py)


def _ssim_gauss_one(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. SSIM of one H×W×3 uint8 pair: Gaussian σ 1.5 (11 taps), population cov."""
    # Channel-first so that each filtered line is contiguous; scipy's correlate1d is one C pass
    # per axis (a numpy tap-by-tap version measured 2× slower). The border it computes is dropped.
    xf = np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float64)
    yf = np.ascontiguousarray(y.transpose(2, 0, 1), dtype=np.float64)
    maps = np.stack([xf, yf, xf * xf, yf * yf, xf * yf])
    filtered = correlate1d(correlate1d(maps, GAUSS_WEIGHTS, axis=2), GAUSS_WEIGHTS, axis=3)
    r = GAUSS_RADIUS
    ux, uy, uxx, uyy, uxy = filtered[:, :, r:-r, r:-r]
    uxuy = ux * uy
    sum_sq = ux * ux + uy * uy
    num = (2.0 * uxuy + SSIM_C1) * (2.0 * (uxy - uxuy) + SSIM_C2)
    den = (sum_sq + SSIM_C1) * ((uxx + uyy - sum_sq) + SSIM_C2)
    return float((num / den).mean(axis=(1, 2), dtype=np.float64).mean())


def _per_image(
    one: Callable[[np.ndarray, np.ndarray], float], pred: np.ndarray, gt: np.ndarray, win: int
) -> np.ndarray:
    check_images(pred, gt)
    if min(pred.shape[1:3]) < win:
        raise ValueError(f"SSIM needs images of at least {win}×{win}, got {pred.shape[1:3]}")
    return np.array([one(p, g) for p, g in zip(pred, gt, strict=True)], dtype=np.float64)


def ssim(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Structural similarity per image, exactly scikit-image's default convention.

    Equals `structural_similarity(pred, gt, channel_axis=-1, data_range=255)`: a 7×7 uniform
    window, sample covariance (× 49/48), K1 0.01, K2 0.03, so C1 = (0.01·255)², C2 = (0.03·255)².
    Each channel gets its own SSIM map, averaged over the valid region (a 3-pixel border dropped),
    then the 3 channel means are averaged. Range [−1, 1], 1 for identical images; higher is better.
    Images must be at least 7×7.

    >>> rng = np.random.default_rng(0); gt = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    >>> ssim(gt, gt).tolist()
    [1.0, 1.0]
    """
    return _per_image(_ssim_uniform_one, pred, gt, SSIM_WIN)


def ssim_gauss(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Structural similarity per image in the Wang et al. (2004) convention.

    Equals skimage's `structural_similarity(pred, gt, channel_axis=-1, data_range=255,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`: a Gaussian window with
    σ = 1.5 truncated at 3.5σ (11×11), population covariance, K1 0.01, K2 0.03. Per channel, mean
    over the valid region (a 5-pixel border dropped), then the mean of the 3 channels. Range
    [−1, 1]; higher is better. Images must be at least 11×11.

    >>> rng = np.random.default_rng(0); gt = rng.integers(0, 256, (1, 12, 12, 3), dtype=np.uint8)
    >>> ssim_gauss(gt, gt).tolist()
    [1.0]
    """
    return _per_image(_ssim_gauss_one, pred, gt, 2 * GAUSS_RADIUS + 1)


# --- registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """What a report needs to label and rank a score column."""

    name: str
    higher_is_better: bool
    convention: str  # one line: which convention, for table captions and the sidecar
    needs_weights: bool
    unit: str = ""
    # (image, gt, hole) -> float64 (N,); None where a scorer object computes it (LPIPSScorer).
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None


def _ignore_hole(
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    def call(image: np.ndarray, gt: np.ndarray, hole: np.ndarray) -> np.ndarray:
        return fn(image, gt)

    call.__name__ = fn.__name__
    return call


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "psnr",
            True,
            f"per-image PSNR on uint8 [0,255], MSE floored at 1e-10 (cap {PSNR_CAP_DB:.2f} dB)",
            False,
            "dB",
            _ignore_hole(psnr),
        ),
        Metric(
            "ssim",
            True,
            "skimage SSIM, 7×7 uniform, sample covariance, data_range 255, channel mean",
            False,
            "",
            _ignore_hole(ssim),
        ),
        Metric(
            "ssim_gauss",
            True,
            "Wang et al. SSIM (skimage), Gaussian σ 1.5 11×11, population cov., data_range 255",
            False,
            "",
            _ignore_hole(ssim_gauss),
        ),
        Metric("lpips", False, "LPIPS v0.1, alexnet trunk, inputs in [-1,1]", True),
        Metric("lpips_vgg", False, "LPIPS v0.1, vgg16 trunk, inputs in [-1,1]", True),
        Metric(
            "l1_hole",
            False,
            "mean |Δ| over hole pixels × 3 channels, uint8 units",
            False,
            "",
            l1_hole,
        ),
        Metric(
            "psnr_hole",
            True,
            "PSNR over hole pixels × 3 channels, uint8 [0,255], MSE floored at 1e-10",
            False,
            "dB",
            psnr_hole,
        ),
        Metric(
            "known_pixel_dev",
            False,
            "mean |Δ| over known pixels × 3 channels, uint8 units (0 if the model keeps them)",
            False,
            "",
            known_pixel_deviation,
        ),
    )
}
