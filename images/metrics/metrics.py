"""Image-quality metrics for inpainting: pure batch functions and an LPIPS scorer.

Every function takes uint8 RGB batches, N×H×W×3 in [0, 255], and (where it needs one) a bool hole
batch, N×H×W with True = hole (the contract's mask value 255). It returns float64 of shape (N,): one
score per image, never a pooled score; means and intervals are computed later from these rows.

    >>> gt = np.zeros((1, 2, 2, 3), np.uint8); pred = gt + 10
    >>> float(psnr(pred, gt)[0])  # 10·log10(255² / 10²)
    28.130803608679106

Only numpy, scipy (a scikit-image dependency) and OpenCV (its box filter) are imported here, so
the PSNR/SSIM tests run without torch; LPIPSScorer imports torch and lpips when it is built.
Conventions (anchors §5):

- PSNR: per image, uint8 [0,255], MSE over all pixels and channels, floored at PSNR_MSE_FLOOR.
- SSIM: scikit-image's `structural_similarity(pred, gt, channel_axis=-1, data_range=255)`.
- SSIM (Gaussian): the same with `gaussian_weights=True, sigma=1.5, use_sample_covariance=False`
  (Wang et al. 2004).
- LPIPS v0.1 (lpips package), inputs scaled to [-1, 1], alexnet or vgg16 trunk.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
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


def _ssim_uniform_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """skimage's SSIM map of one H×W×3 uint8 pair, valid region: 7×7 box, sample covariance."""
    # The window sums are exact integers (max 2·49·255² ≈ 6.4e6), and so are the int32
    # numerators below (max 2·49²·255² ≈ 3.1e8 < 2³¹), so only the final ratio is rounded.
    sx, sy, sq, sxy = _window_sums(x, y)
    n = SSIM_WIN * SSIM_WIN
    # With u = s/n and v = cov_norm·(s₂/n − u²), multiplying every factor by n² gives:
    sxsy = sx * sy
    sum_sq = sx * sx + sy * sy
    cov_num = n * sxy - sxsy
    var_num = n * sq - sum_sq
    cov_norm = n / (n - 1)
    c1, c2 = SSIM_C1 * n * n, SSIM_C2 * n * n
    num = (2.0 * sxsy + c1) * (2.0 * cov_norm * cov_num + c2)
    den = (sum_sq + c1) * (cov_norm * var_num + c2)
    return num / den


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


# --- LPIPS -----------------------------------------------------------------------------------
# Torchvision backbones by lpips net name, with their full sha256. Same as
# contracts/sdk/inpaint_weights.py PRETRAINED (a test checks it); kept here so that the
# weights-missing check needs no torch. images/metrics/Dockerfile bakes these files.
LPIPS_BACKBONES: dict[str, tuple[str, str]] = {
    "alex": (
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
    ),
    "vgg": (
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    ),
}
# The smallest side each trunk takes: alexnet's conv1 (11/4) and two 3/2 max-pools; vgg16's four
# 2/2 max-pools before relu5_3.
LPIPS_MIN_SIZE = {"alex": 31, "vgg": 16}
LPIPS_EPS = 1e-10  # lpips.normalize_tensor's eps
WEIGHTS_MISSING = "n/a (weights missing)"
RANDOM_BACKBONE = "random (test only)"
PRETRAINED = "pretrained"


class WeightsMissing(RuntimeError):
    """The LPIPS backbone file is absent: report the column as `n/a (weights missing)`."""


class WeightsCorrupt(RuntimeError):
    """The LPIPS backbone file is there but is not the expected one (sha256 or keys)."""


def torch_home() -> Path:
    """$TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch (torch.hub's own rule)."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "torch"


def backbone_path(net: str, weights_dir: Path | None = None) -> Path:
    """Where torch.hub keeps the backbone: <weights_dir or TORCH_HOME>/hub/checkpoints/<file>."""
    url, _ = LPIPS_BACKBONES[net]
    root = Path(weights_dir) if weights_dir is not None else torch_home()
    return root / "hub" / "checkpoints" / url.rsplit("/", 1)[1]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class LPIPSFeatures:
    """Unit-normalised trunk activations of a batch, one N×C×h×w tensor per LPIPS layer."""

    layers: tuple[Any, ...]

    def __len__(self) -> int:
        return int(self.layers[0].shape[0])

    def __getitem__(self, index: slice | np.ndarray) -> LPIPSFeatures:
        """Rows by slice or integer index array (e.g. the images a variant still needs)."""
        return LPIPSFeatures(tuple(layer[index] for layer in self.layers))

    @classmethod
    def cat(cls, parts: list[LPIPSFeatures]) -> LPIPSFeatures:
        """Rows of several batches, in order (e.g. parts computed by different threads)."""
        if len(parts) == 1:
            return parts[0]
        import torch

        return cls(
            tuple(torch.cat(layer) for layer in zip(*(p.layers for p in parts), strict=True))
        )

    def to(self, device: Any) -> LPIPSFeatures:
        """Move (e.g. to "cpu" to keep ground-truth features across models)."""
        return LPIPSFeatures(tuple(layer.to(device) for layer in self.layers))


class LPIPSScorer:
    """LPIPS v0.1 distances (lpips package), with ground-truth features reusable across models.

    Inputs are uint8 N×H×W×3 in [0, 255], scaled to [−1, 1] as x/127.5 − 1 (lpips.im2tensor). The
    distance is Σ_layers mean_hw(w_l · (f̂_l(pred) − f̂_l(gt))²), f̂ the channel-normalised trunk
    activations and w_l the lpips linear layers (which ship in the lpips wheel). Spatial mean, no
    resizing; ≥ 0, lower is better. Batched by `batch_size` on `device` ("auto": CUDA if present).

        scorer = LPIPSScorer("alex")
        gt_features = scorer.features(gt)           # once per ground truth
        d = scorer.distance(pred, gt_features)      # per model / variant
        d = scorer(pred, gt)                        # the same in one call

    The trunk (alexnet/vgg16) comes from <weights_dir or TORCH_HOME>/hub/checkpoints, checked
    against its sha256 prefix; nothing is downloaded. Missing → `WeightsMissing`. Only with
    `allow_random_backbone=True` (tests) is a seeded random trunk used; `weights` then reads
    RANDOM_BACKBONE so every result can carry the flag.
    """

    def __init__(
        self,
        net: str = "alex",
        device: str = "auto",
        batch_size: int = 32,
        weights_dir: Path | None = None,
        *,
        allow_random_backbone: bool = False,
        seed: int = 0,
    ) -> None:
        if net not in LPIPS_BACKBONES:
            raise ValueError(f"net: expected one of {sorted(LPIPS_BACKBONES)}, got {net!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected ≥ 1, got {batch_size}")
        path = backbone_path(net, weights_dir)
        if path.is_file():
            digest = _sha256(path)
            if digest != LPIPS_BACKBONES[net][1]:
                raise WeightsCorrupt(
                    f"{path}: sha256 {digest[:12]}… is not the pinned "
                    f"{LPIPS_BACKBONES[net][1][:12]}…; rebuild the metrics image"
                )
            self.weights, self.provenance = PRETRAINED, f"{path.name} sha256 {digest}"
        elif allow_random_backbone:
            self.weights = self.provenance = RANDOM_BACKBONE
        else:
            raise WeightsMissing(
                f"{path}: LPIPS {net} backbone weights are missing; they are baked into the "
                "metrics image at build time (images/metrics/Dockerfile), or pass weights_dir"
            )
        import lpips
        import torch

        self._torch = torch
        self.net, self.batch_size = net, batch_size
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        # pnet_rand=True: lpips never asks torchvision to download; the trunk is loaded below.
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            torch.manual_seed(seed)  # the same random trunk in every process (tests)
            warnings.filterwarnings("ignore", message=".*deprecated since 0.13")  # pretrained=
            model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        if self.weights == PRETRAINED:
            load_backbone(model.net, torch.load(path, map_location="cpu", weights_only=True))
        model = model.eval().requires_grad_(False).to(self.device)
        self.model = model.to(memory_format=torch.channels_last)
        # Each NetLinLayer is (Dropout,) Conv2d(C, 1, 1, bias=False): its weights as a C vector.
        self._weights = [lin.model[-1].weight.flatten() for lin in model.lins]

    def _batches(self, images: np.ndarray) -> Iterator[tuple[int, Any]]:
        torch = self._torch
        if min(images.shape[1:3]) < LPIPS_MIN_SIZE[self.net]:
            raise ValueError(
                f"LPIPS {self.net} needs images of at least {LPIPS_MIN_SIZE[self.net]} px a side, "
                f"got {images.shape[1:3]}"
            )
        for start in range(0, len(images), self.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch_size]))
            yield start, self.trunk(chunk)

    def trunk(self, chunk: Any) -> tuple[Any, ...]:
        """The trunk's five activations of a uint8 N×H×W×3 tensor (the un-normalised features).

        The batch stays channels-last (N×H×W×3 permuted), as the trunk's weights are: oneDNN's
        convolutions skip two layout conversions per layer that way.
        """
        x = chunk.to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return tuple(self.model.net.forward(self.model.scaling_layer(x)))

    def _normalize(self, feat: Any) -> Any:
        """lpips.normalize_tensor (x / (‖x‖₂ over channels + 1e-10)) in two passes, not five.

        vector_norm is one fused reduction where lpips squares, sums and takes the root in
        separate passes over the map (values ≤ 1e-9 apart from lpips' order).
        """
        norm = self._torch.linalg.vector_norm(feat, dim=1, keepdim=True)
        return feat / norm.add_(LPIPS_EPS)

    @contextmanager
    def _precise(self) -> Iterator[None]:
        # cuDNN convolutions default to TF32 on Ampere+; scores use IEEE fp32 on every card.
        if self.device.type != "cuda":
            yield
            return
        conv = self._torch.backends.cudnn.conv
        previous = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = previous

    def features(self, gt: np.ndarray) -> LPIPSFeatures:
        """The normalised trunk activations of `gt` (uint8 N×H×W×3), on the scorer's device."""
        _check_batch("gt", gt)
        torch = self._torch
        parts: list[list[Any]] = []
        with torch.inference_mode(), self._precise():
            for _, outs in self._batches(gt):
                parts.append([self._normalize(out) for out in outs])
        return LPIPSFeatures(tuple(torch.cat(layer) for layer in zip(*parts, strict=True)))

    def distance(self, pred: np.ndarray, gt_features: LPIPSFeatures) -> np.ndarray:
        """LPIPS of each `pred` image against the matching `gt_features` row; float64 (N,)."""
        _check_batch("pred", pred)
        if len(pred) != len(gt_features):
            raise ValueError(f"{len(pred)} predictions but {len(gt_features)} gt feature rows")
        torch = self._torch
        out = np.empty(len(pred), dtype=np.float64)
        with torch.inference_mode(), self._precise():
            for start, outs in self._batches(pred):
                total = 0  # summed in layer order, as lpips.LPIPS.forward does
                for k, feat in enumerate(outs):
                    ref = gt_features.layers[k][start : start + len(feat)].to(self.device)
                    # in place: the maps are too large for the cache, and each pass costs
                    diff = self._normalize(feat).sub_(ref).square_()
                    # lpips applies its 1×1 linear layer, then the spatial mean; both are linear,
                    # so the mean goes first: one pass over the map instead of two (≤ 1e-7 apart)
                    total = total + diff.mean([2, 3]) @ self._weights[k]
                out[start : start + len(feat)] = total.double().cpu().numpy()
        return out

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        check_images(pred, gt)
        return self.distance(pred, self.features(gt))


def load_backbone(net: Any, state: dict[str, Any]) -> None:
    """Copy torchvision `features.<i>.*` weights into lpips' trunk slices (`slice<k>.<i>.*`)."""
    mapped = {}
    for slice_name, block in net.named_children():
        for index, layer in block.named_children():
            for param, _ in layer.named_parameters():
                key = f"features.{index}.{param}"
                if key not in state:
                    raise WeightsCorrupt(f"backbone state dict has no {key}")
                mapped[f"{slice_name}.{index}.{param}"] = state[key]
    net.load_state_dict(mapped, strict=True)


# --- registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """What a report needs to label and rank a score column."""

    name: str
    higher_is_better: bool
    convention: str  # one line: which convention, for table captions and the sidecar
    needs_weights: bool
    unit: str = ""
    # (image, gt, hole) -> float64 (N,); None where a scorer object computes it (LPIPS).
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
