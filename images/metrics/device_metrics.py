"""PSNR and SSIM in torch, on the scoring device: the numbers of metrics.py, batch-wide on a GPU.

    scores = device_scores(["psnr", "ssim"], pred, gt, torch.device("cuda"))  # float64 (N,) each

metrics.py computes these per image with numpy on the CPU; on a GPU that leaves the CPU doing
SSIM while the LPIPS trunk idles (issue 16, P1 GPU). Here the same conventions (the docstrings of
metrics.psnr, metrics.ssim and metrics.ssim_gauss) run as whole-batch tensor operations, with the
same arithmetic, so that the CPU path and the CUDA path give the same values:

- PSNR: Σ(pred − gt)² per image in int64, exact; the division and log10 as metrics.py.
- SSIM (7×7 uniform): the window sums Σx, Σy, Σ(x² + y²), Σxy are integer sums of at most
  49 terms of at most 2·255², so they are exact in int32 (≤ 6.4e6), and so are the products the
  formula takes of them (≤ 3.1e8 < 2³¹): no rounding happens before the final float64 ratio,
  computed by the numpy path's own function (metrics.ssim_uniform_from_sums). Only the mean's
  summation order differs (≈ 1e-16).
- SSIM (Gaussian): the separable 11-tap correlation in float64, the valid region only (what
  skimage keeps after filtering with mode "reflect"); float64 sums of 11 products differ from
  scipy's in the last bits only (≈ 1e-16 relative), far inside the 1e-6 contract.

torch is imported at module level: import this module only where torch is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from metrics import (
    GAUSS_RADIUS,
    GAUSS_WEIGHTS,
    SSIM_C1,
    SSIM_C2,
    SSIM_WIN,
    check_images,
    psnr_from_mse,
    ssim_uniform_from_sums,
)


def _box_sum_valid(a: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Sums of `width` neighbours along `dim`, valid positions only (integer-exact)."""
    length = a.shape[dim] - width + 1
    out = a.narrow(dim, 0, length).clone()
    for k in range(1, width):
        out += a.narrow(dim, k, length)
    return out


def psnr_t(pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """metrics.psnr of uint8 N×H×W×3 tensors (any device); float64 (N,) on the host."""
    diff = pred.to(torch.int32) - gt.to(torch.int32)
    sums = (diff * diff).sum(dim=(1, 2, 3), dtype=torch.int64)
    count = pred.shape[1] * pred.shape[2] * pred.shape[3]
    return psnr_from_mse(sums.cpu().numpy() / count)


def ssim_t(pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """metrics.ssim (skimage's default SSIM) of uint8 N×H×W×3 tensors; float64 (N,) on the host."""
    x = pred.permute(0, 3, 1, 2).to(torch.int32)  # N×3×H×W: rows contiguous for the sums
    y = gt.permute(0, 3, 1, 2).to(torch.int32)
    maps = torch.stack([x, y, x * x + y * y, x * y])
    sums = _box_sum_valid(_box_sum_valid(maps, SSIM_WIN, 3), SSIM_WIN, 4)
    ssim_map = ssim_uniform_from_sums(*sums, to_float=torch.Tensor.double)
    return ssim_map.mean(dim=(2, 3)).mean(dim=1).cpu().numpy()


def ssim_gauss_t(pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """metrics.ssim_gauss (Wang et al.) of uint8 N×H×W×3 tensors; float64 (N,) on the host."""
    x = pred.permute(0, 3, 1, 2).double()
    y = gt.permute(0, 3, 1, 2).double()
    maps = torch.stack([x, y, x * x, y * y, x * y])  # 5×N×3×H×W
    k, n, c, h, w = maps.shape
    flat = maps.reshape(k * n * c, 1, h, w)
    taps = torch.as_tensor(GAUSS_WEIGHTS, dtype=torch.float64, device=flat.device)
    # No padding: the convolution yields exactly the valid region skimage keeps.
    flat = torch.nn.functional.conv2d(flat, taps.view(1, 1, 1, -1))
    flat = torch.nn.functional.conv2d(flat, taps.view(1, 1, -1, 1))
    r = GAUSS_RADIUS
    ux, uy, uxx, uyy, uxy = flat.reshape(k, n, c, h - 2 * r, w - 2 * r)
    uxuy = ux * uy
    sum_sq = ux * ux + uy * uy
    num = (2.0 * uxuy + SSIM_C1) * (2.0 * (uxy - uxuy) + SSIM_C2)
    den = (sum_sq + SSIM_C1) * ((uxx + uyy - sum_sq) + SSIM_C2)
    return (num / den).mean(dim=(2, 3)).mean(dim=1).cpu().numpy()


DEVICE_METRICS: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor], np.ndarray], int]] = {
    "psnr": (psnr_t, 1),
    "ssim": (ssim_t, SSIM_WIN),
    "ssim_gauss": (ssim_gauss_t, 2 * GAUSS_RADIUS + 1),
}


def device_scores(
    names: Sequence[str], pred: np.ndarray, gt: np.ndarray, device: torch.device | str
) -> dict[str, np.ndarray]:
    """The named DEVICE_METRICS of uint8 N×H×W×3 batches, computed on `device`.

    Each batch crosses to the device once for all the metrics. Values equal metrics.py's (see
    the module docstring): a test holds the CPU run of this code to skimage and to metrics.py.
    """
    check_images(pred, gt)
    smallest = max(DEVICE_METRICS[name][1] for name in names) if names else 1
    if min(pred.shape[1:3]) < smallest:
        raise ValueError(f"SSIM needs images of at least {smallest}×{smallest}, got {pred.shape}")
    with torch.inference_mode():
        pred_t = torch.from_numpy(np.ascontiguousarray(pred)).to(device)
        gt_t = torch.from_numpy(np.ascontiguousarray(gt)).to(device)
        return {name: DEVICE_METRICS[name][0](pred_t, gt_t) for name in names}
