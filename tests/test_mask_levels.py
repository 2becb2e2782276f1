"""Imported masks are split at their own grey levels (Otsu); masks that are not two-level are
named and left out; speckle components are counted. References: scikit-image's threshold_otsu
and measure.label, computed here independently of harness.data.mask_levels' code paths."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from datatree import make_profile
from PIL import Image
from skimage.filters import threshold_otsu
from skimage.measure import label

from harness.data.layout import DataLayout, file_name
from harness.data.mask_levels import speckles, split_levels
from harness.data.pngs import read_mask
from harness.data.prepare import prepare_data
from harness.errors import DataError
from harness.progress import SilentReporter

SIZE = 64


def jpeg_mask(seed: int, background: int = 127, quality: int = 60) -> Image.Image:
    """A mask as object-removal tools save it: holes 255 on a 127 background, as a JPEG."""
    rng = np.random.default_rng(seed)
    # A little noise around the background, as a scan or a resampled export carries.
    gray = (background + rng.integers(-3, 4, (128, 128))).astype(np.uint8)
    top, left = rng.integers(10, 60, 2)
    gray[top : top + 30, left : left + 50] = 255
    buffer = io.BytesIO()
    Image.fromarray(gray, "L").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer)


def test_threshold_is_otsus_and_jpeg_noise_makes_no_speckles() -> None:
    for seed in range(5):
        gray = np.asarray(jpeg_mask(seed).convert("L"))
        levels = split_levels(gray)
        assert levels.problem is None
        assert levels.threshold == int(threshold_otsu(gray))
        assert np.array_equal(levels.white, gray > threshold_otsu(gray))
        # The old fixed 128 made the noise of the 127 background into many specks.
        assert label(gray >= 128, connectivity=2).max() > 10
        assert label(levels.white, connectivity=2).max() == 1


@pytest.mark.parametrize("levels", [(0, 255), (0, 1), (127, 255)])
def test_masks_of_exactly_two_values_keep_their_pixels(levels: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    white = rng.random((40, 40)) < 0.3
    split = split_levels(np.where(white, levels[1], levels[0]).astype(np.uint8))
    assert split.problem is None and np.array_equal(split.white, white)


@pytest.mark.parametrize(
    ("gray", "fragment"),
    [
        (np.tile(np.arange(256, dtype=np.uint8), (64, 1)), "lie between its grey levels"),
        (
            # Two greys 40 apart, with the noise of a scan or a JPEG.
            (np.where(np.eye(32, dtype=bool), 140, 100) + np.arange(32) % 3).astype(np.uint8),
            "only 40 apart",
        ),
    ],
    ids=["gradient", "low-contrast"],
)
def test_masks_that_are_not_two_level_say_why(gray: np.ndarray, fragment: str) -> None:
    problem = split_levels(gray).problem
    assert problem is not None and fragment in problem


def test_speckles_count_small_components_like_skimage() -> None:
    rng = np.random.default_rng(1)
    hole = np.zeros((256, 256), bool)
    hole[50:120, 60:140] = True  # one large component
    dots = rng.integers(0, 256, (40, 2))
    hole[dots[:, 0], dots[:, 1]] = True
    labels = label(hole, connectivity=2)
    areas = np.bincount(labels.ravel())[1:]
    assert speckles(hole) == int(np.count_nonzero(areas <= 6))  # 1e-4 of 256² is 6 px
    assert speckles(hole) > 20


def test_prepare_imports_jpeg_masks_cleanly_and_names_what_it_leaves_out(tmp_path: Path) -> None:
    profile = make_profile(
        tmp_path / "data",
        image_size=SIZE,
        sources={"scenes": (2, 1)},
        masks=(3, 1, 1),
        test_sets={"scenes_test": 1},
    )
    photos, tests = tmp_path / "photos", tmp_path / "tests"
    photos.mkdir()
    tests.mkdir()
    for i in range(3):
        Image.new("RGB", (70, 70), (30 * i, 60, 90)).save(photos / f"p{i}.png")
    Image.new("RGB", (70, 70), (200, 10, 10)).save(tests / "t.png")
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(4):
        jpeg_mask(i).save(masks / f"m{i}.jpg")
    Image.fromarray(np.tile(np.arange(128, dtype=np.uint8) * 2, (128, 1))).save(masks / "ramp.png")
    report = prepare_data(
        profile,
        {"scenes": photos},
        {"scenes_test": tests},
        {"train": masks},
        "auto",
        0,
        SilentReporter(quiet=True),
    )
    train = report.masks[0]
    assert train.polarity == "hole-white"  # 255 holes on a 127 background
    assert train.specks == 0
    names = {path.name: why for path, why in train.excluded}
    assert set(names) <= {"ramp.png"}
    folder = DataLayout(profile.data_root).mask_dir("train")
    for i in range(3):
        hole = read_mask(folder / file_name(i))
        assert label(hole, connectivity=2).max() == 1
        assert 0.05 < hole.mean() < 0.15  # 30x50 of 128²: 9 %, not the 100 % of `>= 128`


def test_too_few_two_level_masks_names_one(tmp_path: Path) -> None:
    profile = make_profile(
        tmp_path / "data",
        image_size=SIZE,
        sources={"scenes": (2, 1)},
        masks=(1, 1, 1),
        test_sets={"scenes_test": 1},
    )
    photos, tests = tmp_path / "photos", tmp_path / "tests"
    photos.mkdir()
    tests.mkdir()
    for i in range(3):
        Image.new("RGB", (70, 70), (30 * i, 60, 90)).save(photos / f"p{i}.png")
    Image.new("RGB", (70, 70), (200, 10, 10)).save(tests / "t.png")
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(np.tile(np.arange(128, dtype=np.uint8) * 2, (128, 1))).save(masks / "ramp.png")
    with pytest.raises(DataError) as raised:
        prepare_data(
            profile,
            {"scenes": photos},
            {"scenes_test": tests},
            {"train": masks},
            "auto",
            0,
            SilentReporter(quiet=True),
        )
    assert f"{masks / 'ramp.png'}: not a two-level mask" in raised.value.message
    assert not profile.data_root.exists()
