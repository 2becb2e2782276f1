"""The torch PSNR/SSIM of images/metrics/device_metrics.py against scikit-image and metrics.py.

This is the code the scorer runs on a GPU (issue 16, P1 GPU). It runs here on the CPU, and on
CUDA too where there is one: the same tensor operations, so equal values on the CPU show the
arithmetic (integer window sums, float64 formula) and a GPU session reruns them on CUDA.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from _helpers import CASES, assert_close, box_mask, correlated, seed_all, stack

torch = pytest.importorskip("torch", reason="the device path is torch code")
skm = pytest.importorskip("skimage.metrics", reason="scikit-image is the PSNR/SSIM reference")
import metrics  # noqa: E402
import score  # noqa: E402
from device_metrics import DEVICE_METRICS, device_scores  # noqa: E402

# Against skimage: the contract's bound (style §5.13). Against metrics.py (the numpy path): the
# same integer window sums and float64 formula, so only the order of the final mean may differ.
SKIMAGE_ATOL = 1e-6
NUMPY_ATOL = 1e-12
NAMES = list(DEVICE_METRICS)
# The CUDA cases exist where there is a device (benchmarks/gpu.sh runs them on the GPU machine),
# rather than skipping here: CI forbids skips, and the CPU cases run the same torch code.
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def _skimage(name: str, pred: np.ndarray, gt: np.ndarray) -> float:
    if name == "psnr":
        with np.errstate(divide="ignore"):  # identical images: skimage returns inf
            ref = skm.peak_signal_noise_ratio(image_true=gt, image_test=pred, data_range=255)
        return metrics.PSNR_CAP_DB if math.isinf(ref) else float(ref)
    gauss = name == "ssim_gauss"
    return float(
        skm.structural_similarity(
            pred,
            gt,
            data_range=255,
            channel_axis=-1,
            gaussian_weights=gauss,
            sigma=1.5,
            use_sample_covariance=not gauss,
            K1=0.01,
            K2=0.03,
        )
    )


def _check(pred: np.ndarray, gt: np.ndarray, device: str, what: str) -> dict[str, np.ndarray]:
    ours = device_scores(NAMES, pred, gt, device)
    for name in NAMES:
        assert ours[name].dtype == np.float64 and ours[name].shape == (len(pred),)
        ref = [_skimage(name, p, g) for p, g in zip(pred, gt, strict=True)]
        assert_close(ours[name], ref, SKIMAGE_ATOL, f"{name} {what} vs skimage")
        numpy_path = metrics.METRICS[name].fn(pred, gt, np.zeros(pred.shape[:3], bool))  # type: ignore[misc]
        assert_close(ours[name], numpy_path, NUMPY_ATOL, f"{name} {what} vs metrics.py")
    return ours


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", sorted(c for c in CASES if min(CASES[c].gt.shape[:2]) >= 11))
def test_each_case_matches_skimage_and_the_numpy_path(case: str, device: str) -> None:
    pair = CASES[case]
    _check(pair.pred[None], pair.gt[None], device, case)


@pytest.mark.parametrize("device", DEVICES)
def test_random_batches_and_their_composites(device: str) -> None:
    rng = seed_all()
    for h, w in ((11, 11), (37, 50), (64, 33)):
        gt = rng.integers(0, 256, (4, h, w, 3), dtype=np.uint8)
        raw = np.stack([correlated(rng, g, 0.85, 12.0) for g in gt])
        hole = np.stack([box_mask(rng, h, w) for _ in gt])
        _check(raw, gt, device, f"raw {h}×{w}")
        # A composite equals gt outside the hole: many windows of identical content, SSIM 1 there
        _check(metrics.composite(raw, gt, hole), gt, device, f"composite {h}×{w}")


@pytest.mark.parametrize("device", DEVICES)
def test_edge_cases_flat_extreme_and_identical(device: str) -> None:
    black, white = np.zeros((1, 16, 16, 3), np.uint8), np.full((1, 16, 16, 3), 255, np.uint8)
    grey = np.full((1, 16, 16, 3), 128, np.uint8)
    noise = seed_all().integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    for pred, gt, what in (
        (black, white, "black vs white"),
        (grey, grey, "flat identical"),
        (noise, noise, "noise identical"),
        (white, noise, "flat vs noise"),
        (255 - noise, noise, "inverted"),
    ):
        ours = _check(pred, gt, device, what)
        if pred is gt:  # identical: exactly the PSNR cap and SSIM 1, not merely close
            assert ours["psnr"][0] == metrics.PSNR_CAP_DB
            assert ours["ssim"][0] == 1.0 and ours["ssim_gauss"][0] == 1.0


def test_batched_equals_per_pair() -> None:
    pred, gt, _ = stack([CASES[c] for c in sorted(CASES) if CASES[c].gt.shape == (32, 32, 3)])
    whole = device_scores(NAMES, pred, gt, "cpu")
    for i in range(len(pred)):
        single = device_scores(NAMES, pred[i : i + 1], gt[i : i + 1], "cpu")
        for name in NAMES:
            assert_close(whole[name][i], single[name][0], NUMPY_ATOL, f"{name} pair {i}")


def test_inputs_are_checked() -> None:
    small = np.zeros((1, 10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="at least 11×11"):
        device_scores(["ssim_gauss"], small, small, "cpu")
    with pytest.raises(ValueError, match="expected uint8"):
        device_scores(["psnr"], small.astype(np.float32), small, "cpu")


def test_scorer_with_device_metrics_equals_the_numpy_scorer(tmp_path: Path) -> None:
    from PIL import Image

    rng = seed_all()
    for i in range(5):
        gt = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        hole = box_mask(rng, 40, 48)
        raw = correlated(rng, gt, 0.9, 9.0)
        if i % 2:
            raw = np.where(hole[..., None], raw, gt)  # a model that composites
        for folder, image in (("gt", gt), ("pred", raw), ("masks", np.where(hole, 255, 0))):
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.fromarray(image.astype(np.uint8)).save(tmp_path / folder / f"{i}.png")
    names = ["psnr", "ssim", "ssim_gauss", "l1_hole"]
    runs = {}
    for on_device in (False, True):
        runs[on_device] = score.score_pairs(
            tmp_path / "gt",
            tmp_path / "pred",
            tmp_path / "masks",
            tmp_path / f"{on_device}.csv",
            metrics=names,
            device="cpu",
            device_metrics=on_device,
            workers=2,
        )
    assert runs[True].metadata["psnr_ssim_on"] == "cpu"
    assert runs[False].metadata["psnr_ssim_on"] == "cpu (numpy)"
    assert "device_metrics" in runs[True].metadata["timings_s"]
    for ours, numpy_row in zip(runs[True].rows, runs[False].rows, strict=True):
        assert (ours["image"], ours["variant"]) == (numpy_row["image"], numpy_row["variant"])
        for name in names:
            assert_close(ours[name], numpy_row[name], NUMPY_ATOL, f"{name} {ours['image']}")
