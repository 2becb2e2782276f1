"""`data prepare` keeps test photos with their own masks (by name, stem or a pairs file), warns
when it pairs at random, and refuses a photo in two of train, val and test (exact copies,
naming both files); near copies are warned about by prepare and check. `val: 0` is one meaning
everywhere: an empty folder that prepare makes and check and run accept."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import imagehash
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from datatree import band_mask, make_profile
from PIL import Image
from runs import FAULTY
from skimage import data as skdata

from harness.cli import cli
from harness.config import Profile
from harness.data.check import check_data
from harness.data.layout import DataLayout, file_name
from harness.data.leakage import NEAR_BITS, perceptual_hash
from harness.data.pngs import read_mask, read_rgb
from harness.data.prepare import prepare_data
from harness.data.prepare_report import PrepareReport
from harness.data.problem import Problem
from harness.errors import DataError
from harness.progress import SilentReporter

SIZE = 32
TESTS = 4


def colour(i: int, blue: int) -> tuple[int, int, int]:
    return (25 * i % 256, 255 - 25 * i % 256, blue)


def photos(folder: Path, count: int, blue: int, suffix: str = ".png", prefix: str = "p") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (40, 40), colour(i, blue)).save(folder / f"{prefix}{i:02d}{suffix}")
    return folder


def fraction_of(i: int) -> float:
    """Mask i's hole fraction: one per photo, so a prepared pair can be traced to its inputs."""
    return 0.125 + 0.0625 * i


def write_mask(path: Path, i: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    hole = band_mask(64, fraction_of(i))
    Image.fromarray(np.where(hole, 255, 0).astype(np.uint8)).save(path)


def photo_index(pixels: np.ndarray, blue: int, count: int) -> int:
    mean = pixels.reshape(-1, 3).mean(axis=0)
    return int(np.argmin([np.abs(mean - colour(i, blue)).sum() for i in range(count)]))


def mask_index(hole: np.ndarray, count: int) -> int:
    return int(np.argmin([abs(hole.mean() - fraction_of(i)) for i in range(count)]))


def profile_of(
    root: Path, tests: int = TESTS, test_sets: tuple[str, ...] = ("faces_test",)
) -> Profile:
    return make_profile(
        root / "data",
        image_size=SIZE,
        sources={"scenes": (3, 1)},
        masks=(2, 1, tests),
        test_sets=dict.fromkeys(test_sets, tests),
    )


def prepare(profile: Profile, root: Path, test_sets: dict[str, Path], **kwargs) -> PrepareReport:
    if "sources" not in kwargs:
        kwargs["sources"] = {"scenes": photos(root / "scenes", 5, blue=200)}
    args = {
        "test_sets": test_sets,
        "masks": {},
        "mask_polarity": "auto",
        "seed": 0,
        "reporter": SilentReporter(quiet=True),
    } | kwargs
    return prepare_data(profile, **args)


def assert_pairs_kept(profile: Profile, test_set: str, count: int, blue: int) -> None:
    layout = DataLayout(profile.data_root)
    for i in range(profile.masks.test):
        photo = photo_index(read_rgb(layout.test_dir(test_set) / file_name(i)), blue, count)
        mask = mask_index(read_mask(layout.mask_dir("test") / file_name(i)), count)
        assert photo == mask, f"test image {i} is photo {photo} but has mask {mask}"


# --- pairs -----------------------------------------------------------------------------------


def test_masks_in_their_own_folder_pair_by_stem(tmp_path: Path) -> None:
    # AOT-GAN's and TFill's examples: image/x.jpg with mask/x.png.
    images = photos(tmp_path / "image", 6, blue=40, suffix=".jpg")
    for i in range(6):
        write_mask(tmp_path / "mask" / f"p{i:02d}.png", i)
    profile = profile_of(tmp_path)
    report = prepare(profile, tmp_path, {"faces_test": images}, masks={"test": tmp_path / "mask"})
    assert report.masks[2].pairing == "stem with faces_test"
    assert_pairs_kept(profile, "faces_test", 6, blue=40)
    assert not [w for w in report.warnings if "at random" in w]
    assert check_data(profile, SilentReporter(quiet=True)) == []


def test_masks_beside_their_photos_pair_by_stem(tmp_path: Path) -> None:
    # LaMa's examples: x.png beside x_mask000.png in one folder.
    folder = photos(tmp_path / "examples", 6, blue=40)
    for i in range(6):
        write_mask(folder / f"p{i:02d}_mask000.png", i)
    profile = profile_of(tmp_path)
    report = prepare(profile, tmp_path, {"faces_test": folder}, masks={"test": folder})
    assert report.masks[2].pairing == "stem with faces_test"
    assert_pairs_kept(profile, "faces_test", 6, blue=40)


def test_same_names_pair_by_name_and_a_left_out_mask_takes_its_photo_with_it(
    tmp_path: Path,
) -> None:
    images = photos(tmp_path / "images", 6, blue=40)
    for i in range(6):
        write_mask(tmp_path / "masks" / f"p{i:02d}.png", i)
    # An empty mask (outside hole_range) must drop its photo too, not shift the pairs.
    Image.new("L", (64, 64), 0).save(tmp_path / "masks" / "p02.png")
    profile = profile_of(tmp_path)
    report = prepare(profile, tmp_path, {"faces_test": images}, masks={"test": tmp_path / "masks"})
    assert report.masks[2].pairing == "name with faces_test"
    assert [p.name for p, _ in report.masks[2].excluded] in ([], ["p02.png"])
    assert_pairs_kept(profile, "faces_test", 6, blue=40)
    layout = DataLayout(profile.data_root)
    chosen = {
        photo_index(read_rgb(layout.test_dir("faces_test") / file_name(i)), 40, 6)
        for i in range(TESTS)
    }
    assert 2 not in chosen


def test_a_pairs_file_pairs_unrelated_names(tmp_path: Path) -> None:
    images = photos(tmp_path / "images", 5, blue=40)
    lines = []
    for i in range(5):
        write_mask(tmp_path / "masks" / f"hole-{100 + i}.png", i)
        lines.append(f"p{i:02d}.png,hole-{100 + i}.png")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("# photo, mask\n" + "\n".join(lines) + "\n")
    profile = profile_of(tmp_path)
    report = prepare(
        profile,
        tmp_path,
        {"faces_test": images},
        masks={"test": tmp_path / "masks"},
        pairs={"faces_test": pairs},
    )
    assert report.masks[2].pairing == f"pairs file {pairs} with faces_test"
    assert_pairs_kept(profile, "faces_test", 5, blue=40)


def test_a_bad_pairs_file_line_is_named(tmp_path: Path) -> None:
    images = photos(tmp_path / "images", 5, blue=40)
    write_mask(tmp_path / "masks" / "m.png", 0)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("p00.png,m.png\np01.png,missing.png\n")
    with pytest.raises(DataError, match=rf"{pairs}:2: .*missing.png is not a file inside"):
        prepare(
            profile_of(tmp_path),
            tmp_path,
            {"faces_test": images},
            masks={"test": tmp_path / "masks"},
            pairs={"faces_test": pairs},
        )


def test_unrelated_masks_are_shuffled_with_a_warning(tmp_path: Path) -> None:
    images = photos(tmp_path / "images", 5, blue=40)
    for i in range(5):
        write_mask(tmp_path / "masks" / f"{i:05d}.png", i)
    report = prepare(
        profile_of(tmp_path), tmp_path, {"faces_test": images}, masks={"test": tmp_path / "masks"}
    )
    assert report.masks[2].pairing is None
    assert any("at random" in w and "--pairs" in w for w in report.warnings), report.warnings


def test_masks_that_pair_with_two_test_sets_are_refused(tmp_path: Path) -> None:
    a = photos(tmp_path / "a", 4, blue=40)
    b = photos(tmp_path / "b", 4, blue=80)
    for i in range(4):
        write_mask(tmp_path / "masks" / f"p{i:02d}.png", i)
    profile = profile_of(tmp_path, test_sets=("a_test", "b_test"))
    with pytest.raises(DataError, match="pair with the photos of test sets a_test, b_test") as e:
        prepare(profile, tmp_path, {"a_test": a, "b_test": b}, masks={"test": tmp_path / "masks"})
    assert "--no-pairing" in (e.value.hint or "")
    assert not profile.data_root.exists()
    # The seed layout on request: one set of test masks shared at random, no pairing, no warning.
    report = prepare(
        profile,
        tmp_path,
        {"a_test": a, "b_test": b},
        masks={"test": tmp_path / "masks"},
        pair_masks=False,
    )
    assert report.masks[2].pairing is None
    assert not [w for w in report.warnings if "at random" in w]


# --- leakage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["copy", "symlink", "hard link"])
def test_a_photo_in_train_and_test_is_refused_naming_both(tmp_path: Path, how: str) -> None:
    scenes = photos(tmp_path / "scenes", 4, blue=200)
    tests = photos(tmp_path / "tests", 4, blue=40)
    # Every scene is trained on (3 train + 1 val of 4), so the copy is always chosen.
    target = tests / "p00.png"
    target.unlink()
    {"copy": shutil.copy, "symlink": os.symlink, "hard link": os.link}[how](
        scenes / "p01.png", target
    )
    profile = profile_of(tmp_path)
    with pytest.raises(DataError) as raised:
        prepare(profile, tmp_path, {"faces_test": tests}, sources={"scenes": scenes})
    message = raised.value.message
    assert str(scenes / "p01.png") in message and str(target) in message
    assert "are the same image" in message
    assert not profile.data_root.exists()
    assert not list(tmp_path.glob(".data.tmp-*"))


def near_copy_inputs(root: Path) -> tuple[Path, Path]:
    """Training photos from scikit-image, and test photos of which one is a JPEG re-encode,
    slightly brightened, of a training photo."""
    scenes, tests = root / "scenes", root / "tests"
    scenes.mkdir()
    tests.mkdir()
    shots = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    for i, shot in enumerate(shots):
        Image.fromarray(shot).save(scenes / f"s{i}.png")
    others = [skdata.hubble_deep_field(), skdata.immunohistochemistry(), skdata.retina()]
    for i, shot in enumerate(others):
        Image.fromarray(shot).save(tests / f"t{i}.png")
    brighter = np.clip(skdata.coffee().astype(np.int16) + 6, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(tests / "coffee_again.jpg", quality=80)
    return scenes, tests


def test_near_copies_are_warned_about_by_prepare_and_check(tmp_path: Path) -> None:
    scenes, tests = near_copy_inputs(tmp_path)
    profile = make_profile(
        tmp_path / "data",
        image_size=64,
        sources={"scenes": (3, 1)},
        masks=(2, 1, 4),
        test_sets={"faces_test": 4},
    )
    report = prepare(profile, tmp_path, {"faces_test": tests}, sources={"scenes": scenes})
    near = [w for w in report.warnings if w.startswith("near-duplicate")]
    assert len(near) == 1 and str(scenes / "s1.png") in near[0]
    assert str(tests / "coffee_again.jpg") in near[0]
    warnings: list[Problem] = []
    assert check_data(profile, SilentReporter(quiet=True), warnings) == []
    assert [w.message.startswith("near copy of") for w in warnings] == [True]


def test_the_perceptual_hash_is_imagehashs_phash() -> None:
    # The reference: imagehash's own distance between the two images' hashes.
    a = Image.fromarray(skdata.coffee()).resize((64, 64))
    b = Image.fromarray(skdata.chelsea()).resize((64, 64))
    ours = int(np.count_nonzero(perceptual_hash(a) != perceptual_hash(b)))
    assert ours == imagehash.phash(a) - imagehash.phash(b)
    assert ours > NEAR_BITS


def test_check_refuses_the_same_image_in_train_and_test(tmp_path: Path) -> None:
    from datatree import build_tree

    profile = profile_of(tmp_path)
    build_tree(profile)
    layout = DataLayout(profile.data_root)
    train = layout.source_dir("scenes", "train") / file_name(1)
    test = layout.test_dir("faces_test") / file_name(2)
    shutil.copy(train, test)
    problems = check_data(profile, SilentReporter(quiet=True))
    leaks = [p for p in problems if "the same image (sha256)" in p.message]
    assert len(leaks) == 1
    assert {leaks[0].path, Path(leaks[0].message.split(" as ")[1].split(":")[0])} == {train, test}


# --- val: 0 ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_val_zero_is_prepared_checked_and_run(tmp_path: Path) -> None:
    scenes = photos(tmp_path / "scenes", 4, blue=200)
    tests = photos(tmp_path / "tests", 3, blue=40)
    config = tmp_path / "benchmark.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "benchmark_version": 1,
                "seed": 0,
                "metrics": ["psnr"],
                "models": {"m0": {"image": str(FAULTY), "batch_size": 1}},
                "runtime": {"grace": "5s", "setup_cap": "2m"},
                "profiles": {
                    "tiny": {
                        "data_root": "data",
                        "image_size": SIZE,
                        "train_budget": "1s",
                        "models": ["m0"],
                        "sources": {"scenes": {"train": 4, "val": 0}},
                        "masks": {"train": 2, "val": 0, "test": 3},
                        "test_sets": {"faces_test": 3},
                    }
                },
            }
        )
    )
    common = ["--config", str(config), "--profile", "tiny"]
    runner = CliRunner()
    prepared = runner.invoke(
        cli,
        [
            "data",
            "prepare",
            *common,
            "--source",
            f"scenes={scenes}",
            "--test-set",
            f"faces_test={tests}",
            "-q",
        ],
        catch_exceptions=False,
    )
    assert prepared.exit_code == 0, prepared.output
    layout = DataLayout(tmp_path / "data")
    assert layout.source_dir("scenes", "val").is_dir()
    assert list(layout.source_dir("scenes", "val").iterdir()) == []
    checked = runner.invoke(cli, ["data", "check", *common, "-q"], catch_exceptions=False)
    assert checked.exit_code == 0, checked.output
    run = subprocess.run(
        [
            str(Path(sys.executable).parent / "inpaint-bench"),
            "run",
            *common,
            "--runner",
            "local",
            "--run-dir",
            str(tmp_path / "run"),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "folder missing" not in run.stderr
    assert (tmp_path / "run" / "report" / "report.md").is_file()


def test_flat_images_are_not_called_near_copies(tmp_path: Path) -> None:
    # Uniform photos of different colours hash alike (their bits are rounding noise).
    red, blue = Image.new("RGB", (64, 64), (200, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 200))
    assert perceptual_hash(red) is None and perceptual_hash(blue) is None
    profile = profile_of(tmp_path)
    report = prepare(profile, tmp_path, {"faces_test": photos(tmp_path / "t", 4, blue=40)})
    assert not [w for w in report.warnings if w.startswith("near-duplicate")]


def test_a_few_names_shared_by_accident_do_not_pair(tmp_path: Path) -> None:
    from harness.data.pairs import find_pairs

    # Numbered files of unrelated folders: 3 of 10 photo stems happen to be mask stems too.
    photos_ = [tmp_path / "p" / f"{i:05d}.jpg" for i in (1, 2, 3, 40001, 40002, 40003, 40004)]
    masks = [tmp_path / "m" / f"{i:05d}.png" for i in range(100)]
    assert find_pairs(photos_, tmp_path / "p", masks, tmp_path / "m") is None
    # Every photo with its mask (the smaller side complete): the stem rule applies.
    pairing = find_pairs(photos_[:3], tmp_path / "p", masks, tmp_path / "m")
    assert pairing is not None and pairing.rule == "stem"
    assert [(p.stem, m.stem) for p, m in pairing.pairs] == [
        ("00001",) * 2,
        ("00002",) * 2,
        ("00003",) * 2,
    ]
