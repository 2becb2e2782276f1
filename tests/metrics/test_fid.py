"""images/metrics/fid.py: the Fréchet distance against an independent computation, the
weights-missing path, and score.py's set-level `fid` sidecar entry.

The FID Inception weights cannot be had here, so the extractor reports them missing (whether or
not pytorch-fid is installed); the `computed` path is exercised with a stand-in feature extractor.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import fid
import numpy as np
import pytest
import score
from _helpers import seed_all
from fid import (
    InceptionFeatures,
    WeightsMissing,
    activation_statistics,
    find_weights,
    frechet_distance,
)
from inpaint_sdk import Events
from lpips_scorer import WEIGHTS_MISSING
from metrics import METRICS, composite
from PIL import Image
from score import load_job, score_pairs

SIZE = 16
NUMPY_METRICS = [m for m in METRICS if not METRICS[m].needs_weights]


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def reference_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """||Δmu||² + Tr S1 + Tr S2 − 2·Tr sqrt(S1^½ S2 S1^½), every root by eigendecomposition."""
    root1 = _psd_sqrt(s1)
    inner = _psd_sqrt(root1 @ s2 @ root1)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(inner))


def _random_covariance(rng: np.random.Generator, dim: int, samples: int) -> np.ndarray:
    data = rng.normal(size=(samples, dim)) @ rng.normal(size=(dim, dim))
    return np.atleast_2d(np.cov(data, rowvar=False))


@pytest.mark.parametrize("dim", [1, 3, 16, 64])
def test_frechet_distance_matches_an_eigendecomposition(dim: int) -> None:
    rng = seed_all(dim)
    for _ in range(5):
        mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim) * 2
        s1 = _random_covariance(rng, dim, 4 * dim + 8)
        s2 = _random_covariance(rng, dim, 4 * dim + 8)
        ours = frechet_distance(mu1, s1, mu2, s2)
        ref = reference_distance(mu1, s1, mu2, s2)
        assert ours == pytest.approx(ref, rel=1e-6), (ours, ref)
        assert ours == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-6)  # symmetric


def test_identical_statistics_give_zero() -> None:
    rng = seed_all()
    mu, sigma = rng.normal(size=8), _random_covariance(rng, 8, 40)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_translation_only_gives_the_squared_mean_difference() -> None:
    rng = seed_all()
    mu, sigma = rng.normal(size=8), _random_covariance(rng, 8, 40)
    shift = rng.normal(size=8)
    expected = float(shift @ shift)
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(expected, rel=1e-6)


def test_singular_covariances_use_the_eps_offset() -> None:
    # Fewer samples than dimensions: both covariances are singular, as with small test sets.
    rng = seed_all()
    a, b = rng.normal(size=(5, 12)), rng.normal(size=(5, 12)) + 0.5
    (mu1, s1), (mu2, s2) = activation_statistics(a), activation_statistics(b)
    value = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(value)
    assert value == pytest.approx(reference_distance(mu1, s1, mu2, s2), rel=1e-4)


def test_activation_statistics_use_the_sample_covariance() -> None:
    rng = seed_all()
    features = rng.normal(size=(30, 4))
    mu, sigma = activation_statistics(features)
    centred = features - features.mean(axis=0)
    np.testing.assert_allclose(mu, features.mean(axis=0))
    np.testing.assert_allclose(sigma, centred.T @ centred / 29, rtol=1e-12)
    with pytest.raises(ValueError, match="N ≥ 2"):
        activation_statistics(features[:1])


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_extractor_reports_weights_missing_and_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsMissing):
        InceptionFeatures(device="cpu", weights_dir=tmp_path / "weights")
    with pytest.raises(WeightsMissing, match=fid.FID_WEIGHTS_FILE):
        find_weights(tmp_path / "weights")
    assert not any(tmp_path.rglob("*.pth"))  # nothing was fetched
    # The weights file alone is found in either place (the package is still needed to use it).
    path = fid.weights_path(tmp_path / "weights")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert find_weights(tmp_path / "weights") == path
    with pytest.raises(WeightsMissing):
        find_weights(tmp_path / "elsewhere")


# --- score.py ----------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    rng = seed_all()
    for i in range(6):
        gt = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        hole = np.zeros((SIZE, SIZE), bool)
        hole[2 : 6 + i, 3:9] = True
        raw = (gt.astype(int) + rng.integers(-40, 40, gt.shape)).clip(0, 255).astype(np.uint8)
        name = f"{i:06d}.png"
        for folder, array in (("gt", gt), ("pred", raw), ("masks", hole.astype(np.uint8) * 255)):
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.fromarray(array).save(tmp_path / folder / name)
    return tmp_path


def _score(root: Path, metrics: list[str]) -> tuple[score.ScoreResult, list[dict[str, object]]]:
    stream = io.StringIO()
    result = score_pairs(
        root / "gt",
        root / "pred",
        root / "masks",
        root / "out" / "scores.csv",
        metrics=metrics,
        events=Events(stream),
        weights_dir=root / "no-weights",
        workers=2,
    )
    return result, [json.loads(line) for line in stream.getvalue().splitlines()]


def test_score_with_fid_and_no_weights_writes_na(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tree / "torch"))
    result, events = _score(tree, [*NUMPY_METRICS, "fid"])
    sidecar = json.loads((tree / "out" / "scores.meta.json").read_text())
    expected = {"composite": None, "raw": None, "status": WEIGHTS_MISSING, "images": 6}
    assert sidecar["fid"] == expected
    assert result.metadata["fid"] == expected
    assert sidecar["higher_is_better"]["fid"] is False
    assert "fid" not in result.columns  # no per-image column: the CSV is unchanged
    assert result.columns == ["image", "variant", "hole_fraction", "bin", *NUMPY_METRICS]
    assert any(e["event"] == "warning" and "fid" in str(e["message"]) for e in events)
    plain, _ = _score(tree, NUMPY_METRICS)
    assert "fid" not in plain.metadata
    assert plain.rows == result.rows


class _StandIn:
    """A deterministic feature map in place of Inception: per-channel means and stds."""

    provenance = "stand-in (test)"

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = images.astype(np.float64)
        return np.concatenate([x.mean(axis=(1, 2)), x.std(axis=(1, 2))], axis=1)


def test_score_with_fid_computes_one_value_per_variant(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fid, "InceptionFeatures", _StandIn)
    result, _ = _score(tree, ["psnr", "fid"])
    entry = result.metadata["fid"]
    assert entry["status"] == "computed" and entry["images"] == 6
    names = sorted(p.name for p in (tree / "gt").iterdir())
    load = [
        np.stack([np.asarray(Image.open(tree / d / n)) for n in names])
        for d in ("gt", "pred", "masks")
    ]
    gt, raw, hole = load[0], load[1], load[2] == 255
    stats = {k: activation_statistics(_StandIn()(v)) for k, v in (("gt", gt), ("raw", raw))}
    stats["composite"] = activation_statistics(_StandIn()(composite(raw, gt, hole)))
    for variant in ("composite", "raw"):
        expected = frechet_distance(*stats[variant], *stats["gt"])
        assert entry[variant] == pytest.approx(expected, rel=1e-9)
    assert entry["composite"] < entry["raw"]  # the composite keeps the known pixels


def test_job_schema_accepts_fid(tmp_path: Path) -> None:
    job = {
        "contract_version": "1",
        "ground_truth": "gt",
        "predictions": "pred",
        "masks": "masks",
        "output": "out/scores.csv",
        "metrics": ["psnr", "fid"],
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    assert load_job(path)["metrics"] == ["psnr", "fid"]
