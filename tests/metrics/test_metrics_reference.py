"""PSNR, SSIM and the hole metrics of images/metrics/metrics.py against scikit-image and numpy.

numpy + scikit-image only: these run in the dev venv too (no torch).
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from _helpers import CASES, Pair, assert_close, correlated, seed_all, stack

skm = pytest.importorskip("skimage.metrics", reason="scikit-image is the PSNR/SSIM reference")
import metrics  # noqa: E402
from metrics import (  # noqa: E402
    METRICS,
    PSNR_CAP_DB,
    composite,
    known_pixel_deviation,
    l1_hole,
    psnr,
    psnr_hole,
    ssim,
    ssim_gauss,
)

# Tolerances per pair against the reference. Ours computes the 7×7 window sums exactly in int32
# and skimage in float64, so both agree to ~1e-14; 1e-6 is the contract's bound (style §5.13).
PSNR_ATOL = 1e-6
SSIM_ATOL = 1e-6
SSIM_GAUSS_ATOL = 1e-6
# Hole metrics are exact integer sums divided once: they must agree to float rounding.
HOLE_ATOL = 1e-9

CASE_IDS = sorted(CASES)


def _reference_skimage_psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    with np.errstate(divide="ignore"):  # identical images: skimage returns inf
        return float(skm.peak_signal_noise_ratio(image_true=gt, image_test=pred, data_range=255))


def _reference_skimage_ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(
        skm.structural_similarity(
            pred,
            gt,
            win_size=None,
            gradient=False,
            data_range=255,
            channel_axis=-1,
            gaussian_weights=False,
            full=False,
            use_sample_covariance=True,
            K1=0.01,
            K2=0.03,
        )
    )


def _reference_skimage_ssim_gauss(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(
        skm.structural_similarity(
            pred,
            gt,
            win_size=None,
            gradient=False,
            data_range=255,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            full=False,
            use_sample_covariance=False,
            K1=0.01,
            K2=0.03,
        )
    )


def _one(fn: object, pair: Pair, *hole: np.ndarray) -> float:
    return float(fn(pair.pred[None], pair.gt[None], *(h[None] for h in hole))[0])  # type: ignore[operator]


@pytest.mark.parametrize("case", CASE_IDS)
def test_psnr_matches_skimage(case: str) -> None:
    pair = CASES[case]
    ref = _reference_skimage_psnr(pair.pred, pair.gt)
    # skimage gives inf for identical images; ours gives the documented cap instead.
    expected = PSNR_CAP_DB if math.isinf(ref) else ref
    assert_close(_one(psnr, pair), expected, PSNR_ATOL, f"psnr {case}")


@pytest.mark.parametrize("case", CASE_IDS)
def test_ssim_matches_skimage(case: str) -> None:
    pair = CASES[case]
    ref = _reference_skimage_ssim(pair.pred, pair.gt)
    assert_close(_one(ssim, pair), ref, SSIM_ATOL, f"ssim {case}")


@pytest.mark.parametrize("case", CASE_IDS)
def test_ssim_gauss_matches_skimage(case: str) -> None:
    pair = CASES[case]
    ref = _reference_skimage_ssim_gauss(pair.pred, pair.gt)
    assert_close(_one(ssim_gauss, pair), ref, SSIM_GAUSS_ATOL, f"ssim_gauss {case}")


@pytest.mark.parametrize("case", CASE_IDS)
def test_hole_metrics_match_numpy(case: str) -> None:
    pair = CASES[case]
    p, g, m = pair.pred.astype(np.float64), pair.gt.astype(np.float64), pair.mask
    hole_ref = np.abs(p - g)[m].mean() if m.any() else np.nan
    known_ref = np.abs(p - g)[~m].mean() if (~m).any() else np.nan
    assert_close(_one(l1_hole, pair, m), hole_ref, HOLE_ATOL, f"l1_hole {case}")
    assert_close(_one(known_pixel_deviation, pair, m), known_ref, HOLE_ATOL, f"known {case}")
    if m.any():  # PSNR of the hole pixels alone, by skimage
        ref = _reference_skimage_psnr(pair.pred[m], pair.gt[m])
        expected = PSNR_CAP_DB if math.isinf(ref) else ref
    else:
        expected = np.nan
    assert_close(_one(psnr_hole, pair, m), expected, PSNR_ATOL, f"psnr_hole {case}")


def test_identical_images_hit_the_psnr_cap_and_ssim_one() -> None:
    pair = CASES["identical"]
    assert _one(psnr, pair) == PSNR_CAP_DB
    assert _one(psnr_hole, pair, pair.mask) == PSNR_CAP_DB
    assert round(PSNR_CAP_DB, 2) == 148.13  # 10·log10(255² / 1e-10)
    assert _one(ssim, pair) == 1.0
    assert _one(ssim_gauss, pair) == 1.0


@pytest.mark.parametrize("size", [256, 512])
def test_psnr_cap_marks_exact_matches_only(size: int) -> None:
    # The closest non-identical pair (one value off by 1) stays finite, below the cap, and exact.
    gt = seed_all().integers(0, 255, (1, size, size, 3), dtype=np.uint8)
    pred = gt.copy()
    pred[0, 0, 0, 0] += 1
    expected = 10 * math.log10(255**2 * 3 * size * size)
    assert_close(psnr(pred, gt), [expected], PSNR_ATOL, "one value off by one")
    assert psnr(pred, gt)[0] < PSNR_CAP_DB - 40


def test_all_known_and_all_hole_masks_give_nan_where_nothing_is_measured() -> None:
    known, hole = CASES["all_known"], CASES["all_hole"]
    assert np.isnan(_one(l1_hole, known, known.mask))
    assert np.isnan(_one(psnr_hole, known, known.mask))
    assert _one(known_pixel_deviation, known, known.mask) > 0
    assert np.isnan(_one(known_pixel_deviation, hole, hole.mask))
    assert _one(l1_hole, hole, hole.mask) > 0


def _same_size_pairs() -> list[Pair]:
    return [CASES[c] for c in CASE_IDS if CASES[c].gt.shape == (32, 32, 3)]


@pytest.mark.parametrize("name", sorted(m for m in METRICS if METRICS[m].fn is not None))
@pytest.mark.parametrize("batch", [1, 2, 3, 5])
def test_batched_equals_per_pair(name: str, batch: int) -> None:
    pairs = _same_size_pairs()
    assert len(pairs) >= 5
    fn = METRICS[name].fn
    assert fn is not None
    pred, gt, hole = stack(pairs)
    whole = fn(pred, gt, hole)
    starts = range(0, len(pred), batch)
    pieces = np.concatenate([fn(*(a[i : i + batch] for a in (pred, gt, hole))) for i in starts])
    singles = [float(fn(p.pred[None], p.gt[None], p.mask[None])[0]) for p in pairs]
    assert whole.dtype == np.float64 and whole.shape == (len(pairs),)
    np.testing.assert_array_equal(whole, pieces)
    np.testing.assert_array_equal(whole, singles)


def test_composite_keeps_known_pixels_and_takes_the_hole_from_raw() -> None:
    pred, gt, hole = stack(_same_size_pairs())
    comp = composite(pred, gt, hole)
    assert comp.dtype == np.uint8
    np.testing.assert_array_equal(comp[~hole], gt[~hole])
    np.testing.assert_array_equal(comp[hole], pred[hole])
    assert known_pixel_deviation(comp, gt, hole)[~hole.all(axis=(1, 2))].max() == 0.0


def test_known_pixel_dev_catches_a_polarity_inverted_output() -> None:
    # A model that reads the mask inverted paints the known region (here with its hole fill
    # value, white) while its hole is as good as a correct model's. Compositing hides that.
    rng = seed_all()
    gt = rng.integers(0, 200, (4, 32, 32, 3), dtype=np.uint8)
    hole = np.stack([CASES["correlated"].mask] * 4)
    fill = correlated(rng, gt, 0.95, 4.0)
    good_raw = np.where(hole[..., None], fill, gt)
    inverted_raw = np.where(hole[..., None], fill, np.uint8(255))
    for name, metric in METRICS.items():
        if metric.fn is None or name == "known_pixel_dev":
            continue
        good = metric.fn(composite(good_raw, gt, hole), gt, hole)
        bad = metric.fn(composite(inverted_raw, gt, hole), gt, hole)
        np.testing.assert_array_equal(good, bad, err_msg=f"composite {name} differs")
    assert known_pixel_deviation(good_raw, gt, hole).max() == 0.0
    assert known_pixel_deviation(inverted_raw, gt, hole).min() > 50.0
    assert psnr(inverted_raw, gt).max() < psnr(good_raw, gt).min()


def test_inputs_are_checked() -> None:
    gt = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        psnr(gt.astype(np.float32), gt)
    with pytest.raises(ValueError, match="shape"):
        ssim(gt, np.zeros((1, 8, 9, 3), np.uint8))
    with pytest.raises(ValueError, match="at least 11×11"):
        ssim_gauss(gt, gt)
    with pytest.raises(ValueError, match="hole"):
        l1_hole(gt, gt, np.zeros((1, 8, 7), bool))


def test_registry_describes_every_metric() -> None:
    assert list(METRICS) == [
        "psnr",
        "ssim",
        "ssim_gauss",
        "lpips",
        "lpips_vgg",
        "l1_hole",
        "psnr_hole",
        "known_pixel_dev",
    ]
    better = {m: METRICS[m].higher_is_better for m in METRICS}
    assert better == {
        "psnr": True,
        "ssim": True,
        "ssim_gauss": True,
        "lpips": False,
        "lpips_vgg": False,
        "l1_hole": False,
        "psnr_hole": True,
        "known_pixel_dev": False,
    }
    for name, metric in METRICS.items():
        assert metric.name == name
        assert metric.convention and "\n" not in metric.convention
        assert (metric.fn is None) == metric.needs_weights


def test_docstring_examples() -> None:
    result = doctest.testmod(metrics, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


# ssim() computes only windows that touch a pixel where pred and gt differ (the others are
# exactly 1): single changed pixels at the corners, edges and band boundaries (SSIM_BAND rows),
# and composites of free-form masks, against skimage and against the whole map's mean.
@pytest.mark.parametrize(
    "where", [(0, 0), (0, -1), (-1, 0), (-1, -1), (15, 40), (16, 16), (22, 3), (25, 44)]
)
def test_ssim_of_one_changed_pixel_matches_skimage(where: tuple[int, int]) -> None:
    gt = seed_all().integers(0, 256, (40, 45, 3), dtype=np.uint8)
    pred = gt.copy()
    pred[where] ^= 0x55
    ours = _one(ssim, Pair(pred, gt, np.zeros(gt.shape[:2], bool)))
    assert ours < 1.0
    assert_close(ours, _reference_skimage_ssim(pred, gt), SSIM_ATOL, f"pixel {where}")
    whole_map = metrics._ssim_uniform_map(pred, gt).mean(axis=(0, 1)).mean()
    assert_close(ours, whole_map, 1e-12, f"pixel {where} vs the whole map")


def test_ssim_of_free_form_composites_matches_skimage() -> None:
    from harness.data.masks import generate_mask

    rng = seed_all()
    for i in range(6):
        gt = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        hole = generate_mask(64, (0.01, 0.6), 0, i)
        comp = composite(correlated(rng, gt, 0.8, 15.0)[None], gt[None], hole[None])[0]
        ours = _one(ssim, Pair(comp, gt, hole))
        assert_close(ours, _reference_skimage_ssim(comp, gt), SSIM_ATOL, f"mask {i}")
        whole_map = metrics._ssim_uniform_map(comp, gt).mean(axis=(0, 1)).mean()
        assert_close(ours, whole_map, 1e-12, f"mask {i} vs the whole map")
