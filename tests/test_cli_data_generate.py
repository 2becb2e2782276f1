"""`data sample` and `data masks`: the sample tree and the mask folders they leave on disk."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from harness.commands import data_generate
from harness.commands.data_generate import masks, sample
from harness.config import MaskCounts, Profile, load_benchmark
from harness.data import sample as sample_module
from harness.data.layout import AREA_BINS, bin_label, file_name
from harness.data.sample import build_sample_set
from harness.errors import DataError
from harness.progress import SilentReporter

REPO = Path(__file__).resolve().parents[1]
QUIET = SilentReporter(quiet=True)


@pytest.fixture
def small(tmp_path: Path) -> Profile:
    """The shipped sample profile, shrunk to 32 px and a handful of images per folder."""
    shipped = load_benchmark(REPO / "benchmark.yaml").profile("sample")
    return dataclasses.replace(
        shipped,
        data_root=tmp_path / "data" / "sample",
        image_size=32,
        sources={"scenes": (5, 2), "faces": (5, 2)},
        masks=MaskCounts(train=6, val=6, test=6),
        test_sets={"scenes_test": 6, "faces_test": 6, "textures_test": 4},
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A copy of benchmark.yaml whose data roots resolve inside tmp_path."""
    path = tmp_path / "benchmark.yaml"
    path.write_text((REPO / "benchmark.yaml").read_text())
    return path


def invoke(command: object, args: list[str]) -> Result:
    # Errors are translated to one-line messages by HarnessGroup, above these commands; invoked
    # alone, a DataError surfaces as result.exception with exit code 1.
    return CliRunner().invoke(command, args)  # type: ignore[arg-type]


def pngs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def open_png(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as image:
        return image.mode, np.asarray(image).copy()


def test_sample_tree_has_the_profiles_counts_sizes_and_modes(small: Profile) -> None:
    root = build_sample_set(small, seed=0, reporter=QUIET)
    assert root == small.data_root
    for source, (train, val) in small.sources.items():
        assert len(pngs(root / "sources" / source / "train")) == train
        assert len(pngs(root / "sources" / source / "val")) == val
    for test_set, count in small.test_sets.items():
        names = [p.name for p in pngs(root / "test" / test_set)]
        assert names == [file_name(i) for i in range(count)]
    images = [p for p in root.rglob("*.png") if "masks" not in p.parts]
    for path in images:
        mode, values = open_png(path)
        assert (mode, values.shape) == ("RGB", (32, 32, 3)), path
    for split in ("train", "val", "test"):
        folder = root / "masks" / split
        assert len(pngs(folder)) == getattr(small.masks, split)
        manifest = json.loads((folder / "manifest.json").read_text())
        # Six masks over six bins: one in each.
        assert sorted(m["bin"] for m in manifest["masks"]) == sorted(
            bin_label(lo, hi) for lo, hi in AREA_BINS
        )
        for path in pngs(folder):
            mode, values = open_png(path)
            assert mode == "L" and values.shape == (32, 32)
            assert set(np.unique(values).tolist()) <= {0, 255}
    listed = json.loads((root / "manifest.json").read_text())["files"]
    assert listed == {str(p.relative_to(root)): sha256(p) for p in root.rglob("*.png")}
    assert [p.name for p in root.parent.iterdir()] == ["sample"]  # no temp folder left


def test_no_image_is_used_twice_and_faces_are_tinted(small: Profile) -> None:
    root = build_sample_set(small, seed=3, reporter=QUIET)
    images = [p for p in root.rglob("*.png") if "masks" not in p.parts]
    repeats = {h: n for h, n in Counter(sha256(p) for p in images).items() if n > 1}
    assert repeats == {}
    for path in pngs(root / "test" / "faces_test") + pngs(root / "sources/faces/train"):
        rgb = open_png(path)[1].astype(int)
        # A grey face mapped onto a skin tone keeps red ≥ green ≥ blue in every pixel.
        assert (rgb[..., 0] >= rgb[..., 1]).all() and (rgb[..., 1] >= rgb[..., 2]).all()


def test_same_seed_builds_the_same_tree_and_another_seed_does_not(
    small: Profile, tmp_path: Path
) -> None:
    first = build_sample_set(small, seed=0, reporter=QUIET)
    again = build_sample_set(
        dataclasses.replace(small, data_root=tmp_path / "again"), seed=0, reporter=QUIET
    )
    other = build_sample_set(
        dataclasses.replace(small, data_root=tmp_path / "other"), seed=1, reporter=QUIET
    )
    manifest = (first / "manifest.json").read_bytes()
    assert (again / "manifest.json").read_bytes() == manifest
    assert (other / "manifest.json").read_bytes() != manifest
    files = json.loads(manifest)["files"]
    other_files = json.loads((other / "manifest.json").read_bytes())["files"]
    assert files.keys() == other_files.keys()
    assert all(files[name] != other_files[name] for name in files)


def test_a_crash_mid_build_leaves_nothing(small: Profile, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    # Every image and mask is written by then: only the manifest is missing.
    monkeypatch.setattr(sample_module, "write_data_manifest", crash)
    with pytest.raises(RuntimeError, match="disk on fire"):
        build_sample_set(small, seed=0, reporter=QUIET)
    assert list(small.data_root.parent.iterdir()) == []


def test_overwrite_replaces_and_its_absence_refuses(small: Profile) -> None:
    root = build_sample_set(small, seed=0, reporter=QUIET)
    (root / "stale.txt").write_text("from an older build")
    with pytest.raises(DataError, match="already exists") as caught:
        build_sample_set(small, seed=0, reporter=QUIET)
    assert str(root) in caught.value.message and "--overwrite" in str(caught.value.hint)
    assert (root / "stale.txt").exists()
    build_sample_set(small, seed=0, reporter=QUIET, overwrite=True)
    assert not (root / "stale.txt").exists()
    assert (root / "manifest.json").exists()
    assert [p.name for p in root.parent.iterdir()] == ["sample"]


def test_unknown_sets_and_unpaired_test_sets_are_refused(small: Profile) -> None:
    with pytest.raises(DataError, match="'place2' is not a bundled sample kind"):
        build_sample_set(dataclasses.replace(small, sources={"place2": (2, 1)}), 0, QUIET)
    with pytest.raises(DataError, match="only 6 test masks"):
        build_sample_set(dataclasses.replace(small, test_sets={"faces_test": 7}), 0, QUIET)
    assert not small.data_root.parent.exists() or list(small.data_root.parent.iterdir()) == []


def test_cli_sample_builds_the_shipped_profile(config: Path, tmp_path: Path) -> None:
    result = invoke(sample, ["--config", str(config), "--profile", "sample", "-q"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "data" / "sample"
    assert result.stdout.strip() == str(root)
    profile = load_benchmark(config).profile("sample")
    for source, (train, val) in profile.sources.items():
        assert len(pngs(root / "sources" / source / "train")) == train
        assert len(pngs(root / "sources" / source / "val")) == val
    for test_set, count in profile.test_sets.items():
        assert len(pngs(root / "test" / test_set)) == count
    for split in ("train", "val", "test"):
        assert len(pngs(root / "masks" / split)) == getattr(profile.masks, split)
    assert open_png(root / "test" / "scenes_test" / file_name(0))[1].shape == (128, 128, 3)
    manifest = (root / "manifest.json").read_bytes()

    again = invoke(sample, ["--config", str(config), "--seed", "0", "--overwrite", "-q"])
    assert again.exit_code == 0, again.output
    assert (root / "manifest.json").read_bytes() == manifest  # benchmark.yaml's seed is 0


def test_cli_sample_refuses_an_existing_tree(config: Path, tmp_path: Path) -> None:
    root = tmp_path / "data" / "sample"
    root.mkdir(parents=True)
    result = invoke(sample, ["--config", str(config), "-q"])
    assert result.exit_code == 1
    assert isinstance(result.exception, DataError)
    assert str(root) in result.exception.message
    assert list(root.iterdir()) == []


def test_cli_masks_writes_the_folder_and_prints_counts_per_bin(tmp_path: Path) -> None:
    out = tmp_path / "masks"
    result = invoke(masks, ["--out", str(out), "--count", "14", "--size", "32", "-q"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in pngs(out)] == [file_name(i) for i in range(14)]
    rows = dict(line.split() for line in result.stdout.splitlines())
    assert rows.pop("bin") == "masks" and rows.pop("total") == "14"
    # 14 masks over 6 bins: mask i asks for bin i mod 6, so the first two bins get a third.
    expected = {bin_label(lo, hi): "3" if i < 2 else "2" for i, (lo, hi) in enumerate(AREA_BINS)}
    assert rows == expected
    manifest = json.loads((out / "manifest.json").read_text())
    assert Counter(m["bin"] for m in manifest["masks"]) == Counter(
        {k: int(v) for k, v in rows.items()}
    )
    assert [p.name for p in tmp_path.iterdir()] == ["masks"]


def test_cli_masks_seed_and_hole_range_reach_the_files(tmp_path: Path) -> None:
    args = ["--count", "4", "--size", "32", "--hole-range", "0.3", "0.5", "-q"]
    assert invoke(masks, ["--out", str(tmp_path / "a"), "--seed", "1", *args]).exit_code == 0
    assert invoke(masks, ["--out", str(tmp_path / "b"), "--seed", "2", *args]).exit_code == 0
    for i in range(4):
        a, b = tmp_path / "a" / file_name(i), tmp_path / "b" / file_name(i)
        assert sha256(a) != sha256(b)
        assert 0.3 < (open_png(a)[1] == 255).mean() <= 0.5


def test_cli_masks_refuses_an_existing_folder_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "masks"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = invoke(masks, ["--out", str(out), "--count", "6", "--size", "32", "-q"])
    assert result.exit_code == 1
    assert isinstance(result.exception, DataError) and str(out) in result.exception.message
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    result = invoke(masks, ["--out", str(out), "--count", "6", "--size", "32", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [file_name(i) for i in range(6)] + [
        "manifest.json"
    ]


def test_cli_masks_rejects_a_hole_range_outside_the_bins(tmp_path: Path) -> None:
    out = tmp_path / "masks"
    result = invoke(masks, ["--out", str(out), "--count", "6", "--hole-range", "0.7", "0.9"])
    assert result.exit_code == 2
    assert "overlaps no area bin" in result.stderr
    assert not out.exists()


def test_cli_masks_crash_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = data_generate.write_masks

    def crash_after_writing(out_dir: Path, *args: object, **kwargs: object) -> None:
        real(out_dir, *args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("killed")

    monkeypatch.setattr(data_generate, "write_masks", crash_after_writing)
    result = invoke(masks, ["--out", str(tmp_path / "masks"), "--count", "6", "--size", "32"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
    assert list(tmp_path.iterdir()) == []


def test_cli_errors_read_as_one_line_through_the_whole_tree(config: Path, tmp_path: Path) -> None:
    cli = pytest.importorskip("harness.cli", reason="the full command tree is not assembled").cli
    (tmp_path / "data" / "sample").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["data", "sample", "--config", str(config), "-q"])
    assert result.exit_code == 1
    assert f"{tmp_path / 'data' / 'sample'}: already exists" in result.stderr
    assert "--overwrite" in result.stderr


def test_help_texts_end_with_an_example() -> None:
    for command in (sample, masks):
        result = CliRunner().invoke(command, ["--help"])
        assert result.exit_code == 0
        assert "Example:\n      inpaint-bench data " + command.name in result.stdout


def test_a_crop_is_never_handed_out_twice(small: Profile, monkeypatch: pytest.MonkeyPatch) -> None:
    # A painter that can only draw one crop must give up, not repeat it.
    monkeypatch.setattr(sample_module._Scenes, "draw", lambda self, rng, part: (0, 0, 0, 8, 0))
    with pytest.raises(DataError, match="scenes: ran out of distinct crops"):
        build_sample_set(small, seed=0, reporter=QUIET)
    assert list(small.data_root.parent.iterdir()) == []


@pytest.mark.parametrize("counts", [[5, 2, 6], [80, 30, 20]])
def test_train_val_and_test_faces_are_different_people(counts: list[int]) -> None:
    # [80, 30, 20] asks for more than the 100 faces: the splits share them out, still disjoint.
    plans = sample_module._Faces(16).plan(np.random.default_rng(0), counts)
    faces = [{crop[0] for crop in part} for part in plans]
    assert [len(part) for part in plans] == counts
    assert faces[0].isdisjoint(faces[1]) and faces[0].isdisjoint(faces[2])
    assert faces[1].isdisjoint(faces[2])
