"""Fréchet Inception Distance (FID): a set-level metric, one number per (test set, variant).

FID compares two sets of images through the Gaussians fitted to their Inception-v3 pool features:

    FID = ||mu1 − mu2||² + Tr(S1 + S2 − 2·sqrt(S1·S2))

Conventions are those of the `pytorch-fid` package (Seitzer, the TTUR port): the FID Inception
network `pytorch_fid.inception.InceptionV3([3])` (2048-d pool3 features), inputs in [0, 1] resized
bilinearly to 299×299 and scaled to [−1, 1] inside the network; mean and covariance with
`np.cov(rowvar=False)` (N − 1); the matrix square root by `scipy.linalg.sqrtm`, an eps·I offset
added to both covariances when the product is singular (sqrtm not finite), and an imaginary part
dropped when it is numerical noise (diagonal |imag| ≤ 1e-3), else an error. Lower is better.
With few images (fewer than 2048) the covariances are singular and FID is biased upwards; it
is still comparable between models scored on the same set.

Only numpy and scipy are imported here; `InceptionFeatures` imports torch and pytorch_fid when it
is built. Its weights file `pt_inception-2015-12-05-6726825d.pth` is looked up in
<weights_dir or TORCH_HOME>/hub/checkpoints and is NEVER downloaded: the metrics image bakes it
at build time (as the LPIPS backbones); where it is absent FID reports `n/a (weights missing)`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
from lpips_scorer import WeightsMissing, torch_home
from metrics import _check_batch

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_DIMS = 2048
FID_EPS = 1e-6  # pytorch-fid's offset for a singular covariance product
IMAG_ATOL = 1e-3  # pytorch-fid: larger imaginary parts on the diagonal are an error
CONVENTION = (
    "FID (pytorch-fid InceptionV3 pool3, 2048-d; bilinear resize to 299; np.cov N−1; "
    "scipy sqrtm) over the whole test set, one value per variant"
)


def activation_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D×D, `np.cov(rowvar=False)`, N − 1) of N×D features."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features: expected N×D with N ≥ 2, got {features.shape}")
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Matrix is singular ..."; finiteness is checked below
        return np.asarray(scipy.linalg.sqrtm(matrix))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = FID_EPS
) -> float:
    """||mu1 − mu2||² + Tr(sigma1) + Tr(sigma2) − 2·Tr(sqrtm(sigma1·sigma2)).

    >>> mu, sigma = np.zeros(2), np.eye(2)
    >>> frechet_distance(mu, sigma, mu + [3.0, 4.0], sigma)
    25.0
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"means differ in shape: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"covariances {sigma1.shape}, {sigma2.shape} do not fit means {mu1.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # The product is (nearly) singular: add eps to both diagonals, as pytorch-fid does.
        offset = np.eye(len(sigma1)) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAG_ATOL):
            worst = float(np.max(np.abs(covmean.imag)))
            raise ValueError(f"sqrtm(sigma1·sigma2) has an imaginary component {worst}")
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    return float(value)


def weights_path(weights_dir: Path | None = None) -> Path:
    """<weights_dir or TORCH_HOME>/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth."""
    root = Path(weights_dir) if weights_dir is not None else torch_home()
    return root / "hub" / "checkpoints" / FID_WEIGHTS_FILE


def find_weights(weights_dir: Path | None = None) -> Path:
    """The FID Inception weights in weights_dir, else TORCH_HOME; WeightsMissing if neither."""
    candidates = [weights_path(weights_dir)] if weights_dir is not None else []
    candidates.append(weights_path(None))
    for path in candidates:
        if path.is_file():
            return path
    raise WeightsMissing(
        f"{' or '.join(map(str, dict.fromkeys(candidates)))}: FID Inception weights are missing "
        "(install pytorch-fid and bake the weights into the metrics image, or pass weights_dir)"
    )


class InceptionFeatures:
    """2048-d pool3 features of pytorch-fid's FID Inception network, for uint8 N×H×W×3 batches.

    Raises WeightsMissing when the `pytorch_fid` package or its weights file is absent; nothing is
    downloaded (the package's own URL loader is bypassed and the local file loaded instead).
    """

    def __init__(
        self, device: str = "auto", batch_size: int = 32, weights_dir: Path | None = None
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: expected ≥ 1, got {batch_size}")
        try:
            from pytorch_fid import inception
        except ImportError as error:
            raise WeightsMissing(
                f"FID needs the pytorch-fid package, which is not installed ({error})"
            ) from None
        path = find_weights(weights_dir)
        import torch

        def local_weights(*_args: Any, **_kwargs: Any) -> Any:
            return torch.load(path, map_location="cpu", weights_only=True)

        original = inception.load_state_dict_from_url
        inception.load_state_dict_from_url = local_weights  # never the network
        try:
            model = inception.InceptionV3(
                [inception.InceptionV3.BLOCK_INDEX_BY_DIM[FID_DIMS]],
                resize_input=True,
                normalize_input=True,
                use_fid_inception=True,
            )
        finally:
            inception.load_state_dict_from_url = original
        self._torch = torch
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        self.model = model.eval().requires_grad_(False).to(self.device)
        self.batch_size = batch_size
        self.provenance = f"{path.name} at {path}"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """N×2048 float64 features of uint8 N×H×W×3 images (scaled to [0, 1] first)."""
        _check_batch("images", images)
        torch = self._torch
        out = np.empty((len(images), FID_DIMS), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = np.ascontiguousarray(images[start : start + self.batch_size])
                x = torch.from_numpy(chunk).to(self.device).permute(0, 3, 1, 2).float() / 255.0
                pooled = self.model(x)[0]
                out[start : start + len(chunk)] = pooled.squeeze(3).squeeze(2).double().cpu()
        return out
