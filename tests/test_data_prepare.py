"""prepare_data and harness.data.photos: conversions, crops, seeded splits, polarity, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datatree import band_mask, make_profile
from PIL import Image

import harness.data.masks
from harness.config import Profile
from harness.data import photos
from harness.data.check import check_data
from harness.data.layout import DataLayout, file_name
from harness.data.manifest import mask_record, read_mask_manifest, write_mask_manifest
from harness.data.pngs import read_mask, read_rgb, write_png
from harness.data.prepare import prepare_data
from harness.data.prepare_masks import split_seed
from harness.data.prepare_report import PrepareReport, mask_table
from harness.errors import DataError
from harness.progress import SilentReporter

SIZE = 32
QUADRANTS = {"tl": (255, 0, 0), "tr": (0, 255, 0), "bl": (0, 0, 255), "br": (255, 255, 255)}


class NoteReporter(SilentReporter):
    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


def colour(i: int) -> tuple[int, int, int]:
    """A distinct, JPEG-proof colour per input index, so outputs can be traced to inputs."""
    return (20 * i % 256, 255 - 20 * i % 256, 128)


def photo_folder(
    folder: Path, count: int, size: tuple[int, int] = (40, 50), blue: int = 128
) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", size, (*colour(i)[:2], blue)).save(folder / f"photo{i:02d}.png")
    return folder


def other_photos(folder: Path, count: int, size: tuple[int, int] = (40, 50)) -> Path:
    """Test photos: other pixels than any training photo's (a shared photo is refused)."""
    return photo_folder(folder, count, size, blue=40)


def mask_folder(
    folder: Path, fractions: list[float], hole_white: bool = True, size: int = 64
) -> Path:
    folder.mkdir(parents=True)
    for i, fraction in enumerate(fractions):
        hole = band_mask(size, fraction)
        white = hole if hole_white else ~hole
        Image.fromarray(np.where(white, 255, 0).astype(np.uint8), "L").save(folder / f"m{i}.png")
    return folder


def source_of(pixels: np.ndarray) -> int:
    """The index i whose colour(i) the uniform image `pixels` shows."""
    mean = pixels.reshape(-1, 3).mean(axis=0)
    distances = [np.abs(mean - colour(i)).sum() for i in range(12)]
    return int(np.argmin(distances))


@pytest.fixture
def generated(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int, int]]:
    """Stand in for write_masks (implemented elsewhere): band masks, calls recorded."""
    calls: list[tuple[str, int, int, int]] = []

    def fake(
        out_dir: Path,
        count: int,
        size: int,
        seed: int,
        hole_range: tuple[float, float] = (0.01, 0.6),
        reporter: object = None,
    ) -> list:
        calls.append((out_dir.name, count, size, seed))
        records = []
        for i in range(count):
            hole = band_mask(size, 0.25)
            write_png(out_dir / file_name(i), np.where(hole, 255, 0).astype(np.uint8))
            records.append(mask_record(out_dir / file_name(i), hole))
        write_mask_manifest(out_dir, records)
        return records

    monkeypatch.setattr(harness.data.masks, "write_masks", fake)
    return calls


@pytest.fixture
def profile(tmp_path: Path) -> Profile:
    return make_profile(
        tmp_path / "out" / "data",
        sources={"scenes": (3, 2)},
        masks=(3, 2, 2),
        test_sets={"scenes_test": 2},
    )


def prepare(profile: Profile, tmp_path: Path, **kwargs: object) -> PrepareReport:
    args: dict = {
        "sources": {"scenes": tmp_path / "photos"},
        "test_sets": {"scenes_test": tmp_path / "t"},
        "masks": {},
        "mask_polarity": "auto",
        "seed": 0,
        "reporter": SilentReporter(quiet=True),
    }
    args.update(kwargs)
    return prepare_data(profile, **args)


# --- photos: orientation, modes, crops ---------------------------------------------------------


def quadrant_image(side: int) -> Image.Image:
    pixels = np.zeros((side, side, 3), np.uint8)
    half = side // 2
    pixels[:half, :half], pixels[:half, half:] = QUADRANTS["tl"], QUADRANTS["tr"]
    pixels[half:, :half], pixels[half:, half:] = QUADRANTS["bl"], QUADRANTS["br"]
    return Image.fromarray(pixels)


def quadrant_colours(pixels: np.ndarray) -> dict[str, tuple[int, ...]]:
    h = pixels.shape[0] // 2
    centres = {
        "tl": (h // 2, h // 2),
        "tr": (h // 2, 3 * h // 2),
        "bl": (3 * h // 2, h // 2),
        "br": (3 * h // 2, 3 * h // 2),
    }
    return {k: tuple(round(v / 255) * 255 for v in pixels[r, c]) for k, (r, c) in centres.items()}


def test_an_exif_rotated_jpeg_comes_out_upright(tmp_path: Path) -> None:
    upright = quadrant_image(64)
    # Orientation 6 means "rotate 90° clockwise to display", so store it turned anticlockwise.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "rotated.jpg", "JPEG", exif=exif, quality=95)
    assert quadrant_colours(np.asarray(stored)) != QUADRANTS
    png = photos.photo_png(photos.open_photo(tmp_path / "rotated.jpg", SIZE), SIZE)
    (tmp_path / "out.png").write_bytes(png)
    assert quadrant_colours(read_rgb(tmp_path / "out.png")) == QUADRANTS


@pytest.mark.parametrize(
    ("mode", "pixel", "expected"),
    [
        ("L", 77, (77, 77, 77)),
        ("1", 1, (255, 255, 255)),
        ("RGBA", (10, 20, 30, 0), (255, 255, 255)),  # fully transparent: the white background
        ("RGBA", (10, 20, 30, 255), (10, 20, 30)),
        ("LA", (0, 128), (128, 128, 128)),  # half-transparent black over white
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("P", 3, (3, 252, 1)),
    ],
)
def test_every_mode_becomes_rgb_of_the_right_size(
    tmp_path: Path, mode: str, pixel: object, expected: tuple[int, int, int]
) -> None:
    image = Image.new(mode, (50, 40), pixel)  # type: ignore[arg-type]
    if mode == "P":
        image.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    fmt = "TIFF" if mode == "CMYK" else "PNG"
    path = tmp_path / f"in.{fmt.lower()}"
    image.save(path, fmt)
    (tmp_path / "out.png").write_bytes(photos.photo_png(photos.open_photo(path, SIZE), SIZE))
    out = read_rgb(tmp_path / "out.png")
    assert out.shape == (SIZE, SIZE, 3)
    assert np.abs(out.astype(int) - expected).max() <= 1, out[0, 0]


def test_a_palette_image_with_a_transparent_index_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("P", (40, 40), 5)
    image.putpalette([0, 0, 0] * 256)
    image.save(tmp_path / "p.png", transparency=5)
    assert Image.open(tmp_path / "p.png").info.get("transparency") == 5
    out = np.asarray(photos.open_photo(tmp_path / "p.png", SIZE))
    assert (out == 255).all()


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    levels = np.array([[0, 257 * 64, 257 * 128, 65535]], np.uint16).repeat(4, axis=0)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = np.asarray(photos.open_photo(tmp_path / "deep.png", SIZE))
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    assert out[0, :, 0].tolist() == [0, 64, 128, 255]


def test_a_tall_image_keeps_its_middle_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (96, SIZE, 3), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "tall.png")
    out = np.asarray(
        photos.fit_square(
            photos.open_photo(tmp_path / "tall.png", SIZE), SIZE, Image.Resampling.LANCZOS
        )
    )
    assert np.array_equal(out, pixels[32:64])


def test_an_odd_margin_leaves_the_extra_pixel_on_the_right(tmp_path: Path) -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (SIZE, SIZE + 3, 3), np.uint8)
    out = photos.fit_square(Image.fromarray(pixels), SIZE, Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(out), pixels[:, 1 : SIZE + 1])


def test_a_wide_image_is_resized_by_its_shorter_side_then_centre_cropped() -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (64, 128, 3), np.uint8)
    out = np.asarray(photos.fit_square(Image.fromarray(pixels), SIZE, Image.Resampling.LANCZOS))
    # Independently: halve both sides (64 x 32), then keep columns 16..47.
    halved = np.asarray(Image.fromarray(pixels).resize((64, 32), Image.Resampling.LANCZOS))
    assert np.array_equal(out, halved[:, 16:48])


def test_image_files_lists_what_pil_opens_sorted_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("b/2.JPG", "a.png", "b/1.webp", ".hidden.png", "notes.txt", "c.pdf"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in photos.image_files(tmp_path)] == [
        "a.png",
        "b/1.webp",
        "b/2.JPG",
    ]


# --- prepare_data -----------------------------------------------------------------------------


def test_a_prepared_tree_passes_the_check(
    tmp_path: Path, profile: Profile, generated: list
) -> None:
    photo_folder(tmp_path / "photos", 6)
    other_photos(tmp_path / "t", 3, size=(64, 48))
    report = prepare(profile, tmp_path)
    assert report.root == profile.data_root and report.images == 3 + 2 + 2
    assert check_data(profile, SilentReporter(quiet=True)) == []
    assert sorted(name for name, *_ in generated) == ["test", "train", "val"]
    assert len({seed for *_, seed in generated}) == 3  # splits never share generated masks
    assert [seed for *_, seed in generated] == [split_seed(0, s) for s in ("train", "val", "test")]
    assert not list(profile.data_root.parent.glob(".*"))


def test_the_split_is_seeded_and_disjoint(
    tmp_path: Path, profile: Profile, generated: list
) -> None:
    photo_folder(tmp_path / "photos", 8)
    other_photos(tmp_path / "t", 2)

    def chosen(seed: int) -> list[int]:
        prepare(profile, tmp_path, seed=seed, overwrite=True)
        layout = DataLayout(profile.data_root)
        return [
            source_of(read_rgb(layout.source_dir("scenes", split) / file_name(i)))
            for split, count in (("train", 3), ("val", 2))
            for i in range(count)
        ]

    first, again, other = chosen(0), chosen(0), chosen(1)
    assert first == again
    assert len(set(first)) == 5 and set(first) <= set(range(8))
    assert other != first


def test_not_enough_photos_names_the_folder_and_counts(
    tmp_path: Path, profile: Profile, generated: list
) -> None:
    photo_folder(tmp_path / "photos", 4)
    other_photos(tmp_path / "t", 2)
    with pytest.raises(DataError) as error:
        prepare(profile, tmp_path)
    assert error.value.message == (
        f"{tmp_path / 'photos'}: needs 5 images for source scenes (3 train + 2 val), found 4"
    )
    assert not profile.data_root.parent.exists() or not any(profile.data_root.parent.iterdir())


def test_a_corrupt_photo_fails_late_and_leaves_nothing(
    tmp_path: Path, profile: Profile, generated: list
) -> None:
    photo_folder(tmp_path / "photos", 5)
    bad = other_photos(tmp_path / "t", 2) / "photo01.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(DataError, match=r"t/photo01\.png: unreadable image") as error:
        prepare(profile, tmp_path)
    assert "--skip-unreadable" in (error.value.hint or "")
    assert list(profile.data_root.parent.iterdir()) == []  # no tree, no temporary folder


def test_a_failure_keeps_the_previous_tree(
    tmp_path: Path, profile: Profile, generated: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo_folder(tmp_path / "photos", 5)
    other_photos(tmp_path / "t", 2)
    prepare(profile, tmp_path)
    before = (profile.data_root / "manifest.json").read_text()

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(harness.data.masks, "write_masks", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare(profile, tmp_path, seed=5, overwrite=True)
    assert (profile.data_root / "manifest.json").read_text() == before
    assert [p.name for p in profile.data_root.parent.iterdir()] == ["data"]


def test_an_existing_tree_needs_overwrite(
    tmp_path: Path, profile: Profile, generated: list
) -> None:
    profile.data_root.mkdir(parents=True)
    photo_folder(tmp_path / "photos", 5)
    other_photos(tmp_path / "t", 2)
    with pytest.raises(DataError, match="already exists") as error:
        prepare(profile, tmp_path)
    assert error.value.hint == "pass --overwrite to replace it"


def test_skip_unreadable_takes_the_next_file_and_reports_it(
    tmp_path: Path, profile: Profile, generated: list
) -> None:
    folder = photo_folder(tmp_path / "photos", 8)
    other_photos(tmp_path / "t", 2)
    for i in range(3):
        (folder / f"photo{i:02d}.png").write_bytes(b"")
    reporter = NoteReporter()
    report = prepare(profile, tmp_path, skip_unreadable=True, reporter=reporter)
    # Five readable photos are needed and five are left, so all three empty ones were met.
    assert sorted(path.name for path, _ in report.skipped) == [
        "photo00.png",
        "photo01.png",
        "photo02.png",
    ]
    assert all("UnidentifiedImageError" in reason for _, reason in report.skipped)
    assert len([n for n in reporter.notes if n.startswith("skipped unreadable")]) == 3
    layout = DataLayout(profile.data_root)
    chosen = {
        source_of(read_rgb(layout.source_dir("scenes", s) / file_name(i)))
        for s, n in (("train", 3), ("val", 2))
        for i in range(n)
    }
    assert chosen == {3, 4, 5, 6, 7}


def test_unknown_and_missing_names_are_refused(tmp_path: Path, profile: Profile) -> None:
    photo_folder(tmp_path / "photos", 5)
    other_photos(tmp_path / "t", 2)
    with pytest.raises(DataError, match="source 'faces' is not in profile fixture"):
        prepare(
            profile, tmp_path, sources={"scenes": tmp_path / "photos", "faces": tmp_path / "photos"}
        )
    with pytest.raises(DataError, match="needs test set scenes_test: no folder given"):
        prepare(profile, tmp_path, test_sets={})
    with pytest.raises(DataError, match=r"masks_dir: folder not found"):
        prepare(profile, tmp_path, masks={"train": tmp_path / "masks_dir"})


@pytest.mark.parametrize(("hole_white", "expected"), [(True, "hole-white"), (False, "hole-black")])
def test_auto_polarity_detects_both_conventions(
    tmp_path: Path, profile: Profile, generated: list, hole_white: bool, expected: str
) -> None:
    photo_folder(tmp_path / "photos", 5)
    other_photos(tmp_path / "t", 2)
    fractions = [0.1, 0.2, 0.3, 0.4]
    mask_folder(tmp_path / "m", fractions, hole_white=hole_white)
    reporter = NoteReporter()
    report = prepare(profile, tmp_path, masks={"train": tmp_path / "m"}, reporter=reporter)
    train = report.masks[0]
    assert (train.split, train.polarity, train.auto) == ("train", expected, True)
    assert any(
        n.startswith("masks/train: median white fraction") and expected in n for n in reporter.notes
    )
    folder = DataLayout(profile.data_root).mask_dir("train")
    holes = [read_mask(folder / file_name(i)).mean() for i in range(3)]
    # Each output hole is one of the inputs' bands, give or take a row lost to resizing.
    assert all(min(abs(h - f) for f in fractions) <= 1 / SIZE for h in holes), holes
    assert check_data(profile, SilentReporter(quiet=True)) == []


def test_explicit_polarity_overrides_auto_and_out_of_range_masks_are_replaced(
    tmp_path: Path, profile: Profile, generated: list
) -> None:
    photo_folder(tmp_path / "photos", 5)
    other_photos(tmp_path / "t", 2)
    # White = hole; two masks are empty (fraction 0) and one is 80% hole: all outside.
    mask_folder(tmp_path / "m", [0.0, 0.25, 0.8, 0.0, 0.35, 0.45])
    report = prepare(profile, tmp_path, masks={"test": tmp_path / "m"}, mask_polarity="hole-white")
    test = report.masks[2]
    assert (test.polarity, test.auto) == ("hole-white", False)
    records = read_mask_manifest(DataLayout(profile.data_root).mask_dir("test"))
    assert len(records) == 2 and all(0.01 < r.hole_fraction <= 0.6 for r in records)
    assert sum(test.bins.values()) == 2
    # Left out in seeded order, each named with its reason.
    assert {p.name for p, _ in test.excluded} <= {"m0.png", "m2.png", "m3.png"}
    assert all("outside (0.01, 0.6]" in why for _, why in test.excluded)


def test_too_few_masks_in_range_names_the_polarity(
    tmp_path: Path, profile: Profile, generated: list
) -> None:
    photo_folder(tmp_path / "photos", 5)
    other_photos(tmp_path / "t", 2)
    mask_folder(tmp_path / "m", [0.2, 0.3, 0.25])
    with pytest.raises(
        DataError, match=r"found 0 \(read as hole-black.*; 3 left out, e.g. "
    ) as error:
        prepare(profile, tmp_path, masks={"train": tmp_path / "m"}, mask_polarity="hole-black")
    assert "--mask-polarity" in (error.value.hint or "")


def test_rgb_and_antialiased_masks_are_binarised_with_nearest(
    tmp_path: Path, profile: Profile, generated: list
) -> None:
    photo_folder(tmp_path / "photos", 5)
    other_photos(tmp_path / "t", 2)
    folder = tmp_path / "m"
    folder.mkdir()
    yy, xx = np.mgrid[:100, :100]
    for i, radius in enumerate((20, 25, 30)):
        # A soft-edged disc: every grey level from 0 to 255 on its rim.
        soft = np.clip((radius - np.hypot(yy - 50, xx - 50)) * 40 + 128, 0, 255).astype(np.uint8)
        mode = ("RGB", "RGBA", "L")[i]
        channels = {
            "RGB": np.dstack([soft] * 3),
            "RGBA": np.dstack([soft] * 3 + [soft * 0 + 255]),
            "L": soft,
        }[mode]
        Image.fromarray(channels, mode).save(folder / f"disc{i}.png")
    prepare(profile, tmp_path, masks={"train": folder})
    for i in range(3):
        path = DataLayout(profile.data_root).mask_dir("train") / file_name(i)
        with Image.open(path) as image:
            assert (image.mode, image.size) == ("L", (SIZE, SIZE))
            assert set(np.unique(np.asarray(image)).tolist()) == {0, 255}


def test_mask_table_lists_every_split_and_bin(
    tmp_path: Path, profile: Profile, generated: list
) -> None:
    photo_folder(tmp_path / "photos", 5)
    other_photos(tmp_path / "t", 2)
    mask_folder(tmp_path / "m", [0.15, 0.15, 0.35, 0.55])
    report = prepare(profile, tmp_path, masks={"val": tmp_path / "m"})
    lines = mask_table(report).splitlines()
    assert lines[0].split() == [
        "split",
        "polarity",
        "(0.01,0.1]",
        "(0.1,0.2]",
        "(0.2,0.3]",
        "(0.3,0.4]",
        "(0.4,0.5]",
        "(0.5,0.6]",
        "excluded",
        "specks",
        "from",
    ]
    assert lines[1].split() == [
        "train",
        "generated",
        "0",
        "0",
        "3",
        "0",
        "0",
        "0",
        "0",
        "0",
        "generated",
    ]
    val = lines[2].split()
    assert val[:3] == ["val", "hole-white", "(auto)"] and val[-1] == str(tmp_path / "m")
    assert sum(map(int, val[3:9])) == 2
    body = json.loads((DataLayout(profile.data_root).mask_dir("val") / "manifest.json").read_text())
    assert body["polarity"] == "255 = hole, 0 = known"
