"""Free-form masks: each lands in its requested area bin, deterministically, as a binary L PNG."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from harness.data import masks as masks_module
from harness.data.layout import AREA_BINS, area_bin, bin_label, file_name
from harness.data.masks import (
    bin_counts,
    generate_mask,
    hole_count_range,
    mask_bins,
    write_masks,
)
from harness.errors import DataError

ALL_BINS = [bin_label(lo, hi) for lo, hi in AREA_BINS]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L", path
        return np.asarray(image).copy()


def test_same_seed_gives_identical_bytes_across_runs_and_counts(tmp_path: Path) -> None:
    write_masks(tmp_path / "a", 12, 48, seed=5)
    write_masks(tmp_path / "b", 12, 48, seed=5)
    write_masks(tmp_path / "c", 30, 48, seed=5)
    manifest = (tmp_path / "a/manifest.json").read_bytes()
    assert (tmp_path / "b/manifest.json").read_bytes() == manifest
    for i in range(12):
        name = file_name(i)
        assert (
            sha256(tmp_path / "a" / name)
            == sha256(tmp_path / "b" / name)
            == sha256(tmp_path / "c" / name)
        )


def test_different_seed_gives_different_masks(tmp_path: Path) -> None:
    write_masks(tmp_path / "a", 12, 48, seed=5)
    write_masks(tmp_path / "b", 12, 48, seed=6)
    for i in range(12):
        assert sha256(tmp_path / "a" / file_name(i)) != sha256(tmp_path / "b" / file_name(i))


def test_pixels_are_pinned() -> None:
    # Pins the drawing itself (not Pillow's PNG bytes): a change here changes every data identity.
    hole = generate_mask(64, (0.2, 0.3), seed=7, index=3)
    digest = hashlib.sha256(hole.tobytes()).hexdigest()
    assert digest == "9758e6c82606acef8853c6f8e79cee6c986db624bf417cdcaecc7bc867ebe570"


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    index=st.integers(0, 10**6),
    size=st.integers(16, 96),
    area=st.sampled_from(AREA_BINS),
)
def test_every_mask_lands_in_its_bin(seed: int, index: int, size: int, area: tuple) -> None:
    hole = generate_mask(size, area, seed, index)
    assert hole.dtype == bool and hole.shape == (size, size)
    assert area_bin(float(hole.mean())) == bin_label(*area)


@settings(max_examples=60, deadline=None)
@given(
    low=st.floats(0.01, 0.55),
    width=st.floats(0.01, 0.3),
    size=st.integers(48, 96),
    seed=st.integers(0, 1000),
)
def test_a_clipped_range_is_hit_too(low: float, width: float, size: int, seed: int) -> None:
    high = min(low + width, 0.6)
    hole = generate_mask(size, (low, high), seed, 0)
    assert low < hole.mean() <= high


def test_a_large_batch_is_binary_in_its_bins_and_matches_its_manifest(tmp_path: Path) -> None:
    records = write_masks(tmp_path, 600, 64, seed=11)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["polarity"] == "255 = hole, 0 = known"
    assert [m["file"] for m in manifest["masks"]] == [file_name(i) for i in range(600)]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [file_name(i) for i in range(600)]
    for i, entry in enumerate(manifest["masks"]):
        path = tmp_path / entry["file"]
        values = pixels(path)
        assert values.shape == (64, 64)
        assert set(np.unique(values).tolist()) <= {0, 255}
        fraction = float((values == 255).mean())
        assert area_bin(fraction) == entry["bin"] == ALL_BINS[i % 6]
        assert area_bin(entry["hole_fraction"]) == entry["bin"]
        assert entry["hole_fraction"] == pytest.approx(fraction, abs=1e-6)
        assert entry["sha256"] == sha256(path)
    assert bin_counts(records) == [(label, 100) for label in ALL_BINS]


def test_masks_only_use_the_bins_inside_the_hole_range(tmp_path: Path) -> None:
    write_masks(tmp_path, 9, 64, seed=0, hole_range=(0.15, 0.35))
    ranges = [(0.15, 0.2), (0.2, 0.3), (0.3, 0.35)]
    for i in range(9):
        fraction = (pixels(tmp_path / file_name(i)) == 255).mean()
        low, high = ranges[i % 3]
        assert low < fraction <= high, (i, fraction)


def test_ring_growth_alone_still_lands_in_the_bin(monkeypatch: pytest.MonkeyPatch) -> None:
    # With no shapes allowed, only the deterministic fallback can reach the bin.
    monkeypatch.setattr(masks_module, "_MAX_SHAPES", 0)
    for i, area in enumerate(AREA_BINS):
        hole = generate_mask(40, area, seed=1, index=i)
        assert area_bin(float(hole.mean())) == bin_label(*area)


def test_hole_count_range_agrees_with_area_bin() -> None:
    pixels_count = 10 * 10
    least, most = hole_count_range(10, (0.1, 0.2))
    assert (least, most) == (11, 20)
    for k in range(pixels_count + 1):
        inside = least <= k <= most
        assert (area_bin(k / pixels_count) == "(0.1,0.2]") == inside
    assert hole_count_range(2, (0.01, 0.1)) is None


@pytest.mark.parametrize("hole_range", [(0.7, 0.9), (0.5, 0.2), (-0.1, 0.3), (0.0, 1.5)])
def test_bad_hole_ranges_are_refused(hole_range: tuple[float, float]) -> None:
    with pytest.raises(DataError, match="hole range"):
        mask_bins(hole_range)


def test_mask_bins_clip_to_the_range() -> None:
    assert mask_bins((0.0, 1.0)) == list(AREA_BINS)
    assert mask_bins((0.05, 0.15)) == [(0.05, 0.1), (0.1, 0.15)]


def test_a_size_too_small_for_a_bin_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot have a hole fraction") as caught:
        write_masks(tmp_path / "tiny", 6, 2, seed=0)
    assert str(tmp_path / "tiny") in caught.value.message
    assert not (tmp_path / "tiny").exists()


def test_a_negative_seed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="seed -1"):
        write_masks(tmp_path, 6, 32, seed=-1)
