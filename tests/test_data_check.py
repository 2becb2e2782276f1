"""check_data: a valid tree has no problems; each way of breaking one is reported at its file."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from datatree import band_mask, build_tree, make_profile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from harness.config import Profile
from harness.data.check import check_data, expected_file_count
from harness.data.layout import DataLayout
from harness.data.pngs import write_png
from harness.data.problem import Problem
from harness.progress import SilentReporter

T = TypeVar("T")


class RecordingReporter(SilentReporter):
    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.tracked: list[tuple[int | None, str, int]] = []

    def track(self, items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
        seen = 0
        for item in items:
            seen += 1
            yield item
        self.tracked.append((total, description, seen))


@pytest.fixture
def profile(tmp_path: Path) -> Profile:
    prof = make_profile(tmp_path / "data")
    build_tree(prof)
    return prof


def check(profile: Profile) -> list[Problem]:
    return check_data(profile, SilentReporter(quiet=True))


def only_at(problems: list[Problem], path: Path) -> list[str]:
    """The messages of `problems`, asserting that every one of them names `path`."""
    assert problems, "expected a problem"
    assert {p.path for p in problems} == {path}, problems
    return [p.message for p in problems]


def png_bytes(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_valid_tree_has_no_problems_and_every_file_is_tracked(profile: Profile) -> None:
    reporter = RecordingReporter()
    assert check_data(profile, reporter) == []
    files = expected_file_count(profile)
    assert files == 3 + 2 + 2 + 1 + 3 + 2 + 3 + 3 + 3
    assert reporter.tracked == [(files, "checking files", files)]


def test_a_missing_data_root_is_one_problem_with_the_rebuild_command(tmp_path: Path) -> None:
    problems = check(make_profile(tmp_path / "nowhere", name="seed"))
    assert problems == [
        Problem(
            tmp_path / "nowhere",
            "data folder not found",
            "re-run `inpaint-bench data prepare --profile seed ... --overwrite`",
        )
    ]


def test_the_sample_profile_hints_at_data_sample(tmp_path: Path) -> None:
    problems = check(make_profile(tmp_path / "nowhere", name="sample"))
    assert problems[0].hint == "re-run `inpaint-bench data sample --overwrite`"


def test_a_missing_folder_is_named_once(profile: Profile) -> None:
    layout = DataLayout(profile.data_root)
    shutil.rmtree(profile.data_root / "sources" / "faces")
    (layout.manifest).unlink()
    problems = check(profile)
    assert [(p.path, p.message) for p in problems] == [
        (profile.data_root / "sources" / "faces", "folder missing")
    ]


def test_a_missing_mask_split_is_reported(profile: Profile) -> None:
    folder = DataLayout(profile.data_root).mask_dir("val")
    shutil.rmtree(folder)
    problems = check(profile)
    assert Problem(folder, "folder missing", problems[0].hint) in problems


def test_a_zero_byte_image(profile: Profile) -> None:
    path = DataLayout(profile.data_root).source_dir("scenes", "train") / "000001.png"
    path.write_bytes(b"")
    messages = only_at(check(profile), path)
    assert "empty file (0 bytes)" in messages


def test_a_corrupt_png(profile: Profile) -> None:
    path = DataLayout(profile.data_root).test_dir("faces_test") / "000002.png"
    path.write_bytes(path.read_bytes()[:200])
    messages = only_at(check(profile), path)
    assert any(m.startswith("corrupt or unreadable image") for m in messages), messages


def test_jpeg_bytes_under_a_png_name(profile: Profile) -> None:
    path = DataLayout(profile.data_root).source_dir("faces", "val") / "000000.png"
    Image.new("RGB", (32, 32), "red").save(path, "JPEG")
    assert "not a PNG: holds JPEG data" in only_at(check(profile), path)


def test_a_wrong_size_image(profile: Profile) -> None:
    path = DataLayout(profile.data_root).source_dir("scenes", "val") / "000000.png"
    write_png(path, np.zeros((16, 24, 3), np.uint8))
    assert "wrong size 24x16: expected 32x32" in only_at(check(profile), path)


def test_an_rgba_image(profile: Profile) -> None:
    path = DataLayout(profile.data_root).test_dir("scenes_test") / "000000.png"
    path.write_bytes(png_bytes(np.zeros((32, 32, 4), np.uint8), "RGBA"))
    assert "expected an 8-bit RGB image, got 8-bit RGBA" in only_at(check(profile), path)


def test_a_three_channel_mask(profile: Profile) -> None:
    path = DataLayout(profile.data_root).mask_dir("train") / "000001.png"
    hole = np.repeat(band_mask(32, 0.25)[..., None], 3, axis=2)
    write_png(path, np.where(hole, 255, 0).astype(np.uint8))
    messages = only_at(check(profile), path)
    assert any(m.startswith("mask has 3 channels (8-bit RGB)") for m in messages), messages


def test_a_non_binary_mask(profile: Profile) -> None:
    path = DataLayout(profile.data_root).mask_dir("val") / "000000.png"
    pixels = np.where(band_mask(32, 0.25), 255, 0).astype(np.uint8)
    pixels[20, 5] = 128
    write_png(path, pixels)
    messages = only_at(check(profile), path)
    assert "mask is not binary: values other than 0 (known) and 255 (hole)" in messages


def test_an_inverted_mask_is_called_inverted(profile: Profile) -> None:
    path = DataLayout(profile.data_root).mask_dir("test") / "000002.png"
    write_png(path, np.where(band_mask(32, 0.25), 0, 255).astype(np.uint8))
    problems = [p for p in check(profile) if p.message.startswith("mask looks inverted")]
    assert [p.path for p in problems] == [path]
    assert "255 must mean hole" in problems[0].message
    assert "hole fraction 0.750" in problems[0].message
    assert "--mask-polarity hole-black" in problems[0].hint


def test_a_mask_without_holes_is_outside_the_range(profile: Profile) -> None:
    path = DataLayout(profile.data_root).mask_dir("test") / "000000.png"
    write_png(path, np.zeros((32, 32), np.uint8))
    messages = only_at(check(profile), path)
    assert "hole fraction 0.000 is outside the profile's hole_range (0.01, 0.6]" in messages


def test_a_count_mismatch(profile: Profile) -> None:
    folder = DataLayout(profile.data_root).source_dir("scenes", "val")
    (folder / "000001.png").unlink()
    problems = check(profile)
    assert Problem(folder, "expected 2 PNG files, found 1", problems[0].hint) in problems


def test_gaps_in_the_numbering(profile: Profile) -> None:
    folder = DataLayout(profile.data_root).source_dir("scenes", "train")
    (folder / "000001.png").rename(folder / "000009.png")
    messages = [p.message for p in check(profile) if p.path == folder]
    assert messages == ["files are not numbered 000000.png to 000002.png: missing 000001.png"]


def test_a_badly_named_png(profile: Profile) -> None:
    folder = DataLayout(profile.data_root).source_dir("faces", "train")
    (folder / "000001.png").rename(folder / "face.png")
    messages = [p.message for p in check(profile) if p.path == folder / "face.png"]
    assert any(m.startswith("unexpected file name") for m in messages), messages


def test_an_extra_non_png_file_and_folder(profile: Profile) -> None:
    note = DataLayout(profile.data_root).source_dir("scenes", "train") / "notes.txt"
    note.write_text("hello")
    extra = profile.data_root / "sources" / "other"
    extra.mkdir()
    problems = check(profile)
    assert {(p.path, p.message.split(":")[0]) for p in problems} == {
        (note, "unexpected file"),
        (extra, "unexpected folder"),
    }


def test_symlinks_are_reported_and_not_followed(profile: Profile, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "junk.txt").write_text("never looked at")
    folder = DataLayout(profile.data_root).source_dir("scenes", "train")
    target = folder / "000000.png"
    real = tmp_path / "real.png"
    shutil.move(target, real)
    os.symlink(real, target)
    os.symlink(outside, profile.data_root / "masks" / "linked")
    problems = check(profile)
    links = [p for p in problems if p.message.startswith("symbolic link")]
    assert {p.path for p in links} == {target, profile.data_root / "masks" / "linked"}
    assert not any("junk.txt" in str(p.path) for p in problems)


def test_test_images_must_pair_with_masks_by_name(profile: Profile) -> None:
    folder = DataLayout(profile.data_root).test_dir("scenes_test")
    (folder / "000002.png").rename(folder / "000007.png")
    pairing = [p for p in check(profile) if p.message.startswith("test images do not")]
    assert [(p.path, p.message) for p in pairing] == [
        (
            folder,
            "test images do not pair 1:1 with masks/test (only in scenes_test: 000007.png; "
            "only in masks/test: 000002.png)",
        )
    ]


def test_a_modified_file_breaks_the_manifest(profile: Profile) -> None:
    path = DataLayout(profile.data_root).test_dir("faces_test") / "000001.png"
    write_png(path, np.full((32, 32, 3), 7, np.uint8))
    problems = check(profile)
    assert [(p.path, p.message) for p in problems] == [
        (path, f"modified: sha256 differs from {profile.data_root / 'manifest.json'}")
    ]
    assert "restore the original file" in problems[0].hint


def test_a_missing_file_is_missing_from_the_manifest_too(profile: Profile) -> None:
    path = DataLayout(profile.data_root).mask_dir("train") / "000002.png"
    path.unlink()
    messages = [p.message for p in check(profile) if p.path == path]
    manifest = DataLayout(profile.data_root).mask_dir("train") / "manifest.json"
    assert messages == [
        f"listed in {profile.data_root / 'manifest.json'} but missing",
        f"listed in {manifest} but missing",
    ]


def test_a_missing_mask_manifest(profile: Profile) -> None:
    manifest = DataLayout(profile.data_root).mask_dir("test") / "manifest.json"
    manifest.unlink()
    assert [(p.path, p.message) for p in check(profile)] == [(manifest, "mask manifest missing")]


def test_an_unparseable_manifest(profile: Profile) -> None:
    DataLayout(profile.data_root).manifest.write_text("{not json")
    problems = check(profile)
    assert len(problems) == 1
    assert problems[0].message.startswith("unreadable manifest (JSONDecodeError")


@pytest.fixture(scope="module")
def shared_tree(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    prof = make_profile(
        tmp_path_factory.mktemp("fuzz") / "data",
        sources={"s": (2, 1)},
        masks=(2, 1, 2),
        test_sets={"t": 2},
    )
    build_tree(prof)
    return prof


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_bytes_give_problems_never_exceptions(
    shared_tree: Profile, data: st.DataObject
) -> None:
    files = sorted(shared_tree.data_root.rglob("*.png"))
    path = data.draw(st.sampled_from(files), label="file")
    original = path.read_bytes()
    how = data.draw(st.sampled_from(["flip", "truncate", "splice"]), label="how")
    at = data.draw(st.integers(0, len(original) - 1), label="at")
    if how == "flip":
        value = data.draw(st.integers(0, 255).filter(lambda v: v != original[at]), label="value")
        broken = original[:at] + bytes([value]) + original[at + 1 :]
    elif how == "truncate":
        broken = original[:at]
    else:
        broken = original[:at] + data.draw(st.binary(min_size=1, max_size=64)) + original[at:]
    try:
        path.write_bytes(broken)
        problems = check(shared_tree)
    finally:
        path.write_bytes(original)
    assert problems and all(isinstance(p, Problem) for p in problems)
    assert path in {p.path for p in problems}
