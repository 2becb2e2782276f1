"""`data prepare` and `data check` through the real `cli` group: outputs, messages, exit codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from datatree import band_mask, build_tree
from PIL import Image

from harness.cli import cli
from harness.config import Profile, load_benchmark
from harness.data.layout import DataLayout, file_name

CONFIG = """\
benchmark_version: 1
seed: 0
metrics: [psnr]
models:
  classical: {image: images/classical, batch_size: 1}
profiles:
  tiny:
    data_root: data/tiny
    image_size: 32
    train_budget: 30s
    models: [classical]
    sources:
      scenes: {train: 3, val: 1}
    masks: {train: 2, val: 1, test: 2}
    test_sets:
      scenes_test: 2
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "benchmark.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def tiny(config: Path) -> Profile:
    return load_benchmark(config).profile("tiny")


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def photos(folder: Path, count: int, blue: int = 200) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (48, 40), (30 * i, 100, blue)).save(folder / f"p{i}.jpg", quality=95)
    return folder


def test_check_says_ok_with_the_file_count(config: Path, tiny: Profile) -> None:
    build_tree(tiny)
    result = run("data", "check", "--config", config, "--profile", "tiny", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok: 11 files checked in {tiny.data_root}\n"


def test_check_lists_problems_with_hints_and_exits_1(config: Path, tiny: Profile) -> None:
    build_tree(tiny)
    broken = DataLayout(tiny.data_root).source_dir("scenes", "train") / "000002.png"
    broken.write_bytes(b"")
    result = run("data", "check", "--config", config, "--profile", "tiny")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{broken}: empty file (0 bytes)\n" in result.stderr
    assert (
        "  hint: re-run `inpaint-bench data prepare --profile tiny ... --overwrite`\n"
        in result.stderr
    )
    assert f"{broken}: modified: sha256 differs from" in result.stderr
    assert f"Error: {tiny.data_root}: 2 problem(s) found" in result.stderr


def test_check_caps_the_list(config: Path, tiny: Profile) -> None:
    build_tree(tiny)
    folder = DataLayout(tiny.data_root).test_dir("scenes_test")
    for i in range(60):
        (folder / f"note{i:02d}.txt").write_text("x")
    result = run("data", "check", "--config", config, "--profile", "tiny")
    assert result.exit_code == 1
    assert result.stderr.count(": unexpected file") == 50
    assert "... and 10 more\n" in result.stderr
    assert "60 problem(s) found" in result.stderr


def test_check_of_a_missing_tree(config: Path, tiny: Profile) -> None:
    result = run("data", "check", "--config", config, "--profile", "tiny")
    assert result.exit_code == 1
    assert f"{tiny.data_root}: data folder not found" in result.stderr


def test_prepare_builds_a_tree_that_checks_ok(tmp_path: Path, config: Path, tiny: Profile) -> None:
    photos(tmp_path / "scenes", 5)
    photos(tmp_path / "scenes_test", 2, blue=60)  # a photo shared with training is refused
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, fraction in enumerate((0.2, 0.45)):
        # Black = hole here: auto polarity must notice and invert.
        Image.fromarray(np.where(band_mask(64, fraction), 0, 255).astype(np.uint8)).save(
            masks / f"{i}.png"
        )
    result = run(
        "data",
        "prepare",
        "--config",
        config,
        "--profile",
        "tiny",
        "--source",
        f"scenes={tmp_path / 'scenes'}",
        "--test-set",
        f"scenes_test={tmp_path / 'scenes_test'}",
        "--masks",
        f"test={masks}",
        "--seed",
        "3",
        "-q",
    )
    assert result.exit_code == 0, result.output
    # Masks named 0.png, 1.png belong to no photo: the shuffle is said, even with -q.
    assert "warning: masks/test (" in result.stderr and "at random" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(tiny.data_root)
    assert lines[1].split()[:2] == ["split", "polarity"]
    assert [line.split()[:2] for line in lines[2:]] == [
        ["train", "generated"],
        ["val", "generated"],
        ["test", "hole-black"],
    ]
    test_dir = DataLayout(tiny.data_root).mask_dir("test")
    assert sorted(p.name for p in test_dir.glob("*.png")) == [file_name(0), file_name(1)]
    with Image.open(DataLayout(tiny.data_root).test_dir("scenes_test") / file_name(0)) as image:
        assert (image.mode, image.size) == ("RGB", (32, 32))
    check = run("data", "check", "--config", config, "--profile", "tiny", "-q")
    assert check.exit_code == 0, check.output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--source", "scenes", "expected NAME=DIR, got 'scenes'"),
        ("--source", "=DIR", "expected NAME=DIR, got '=DIR'"),
        ("--source", "nope={photos}", "'nope' is not one of scenes"),
        ("--masks", "training={photos}", "'training' is not one of train, val, test"),
        ("--source", "scenes={photos}/missing", "does not exist"),
    ],
)
def test_prepare_refuses_a_bad_name_dir_pair_with_exit_2(
    tmp_path: Path, config: Path, option: str, value: str, message: str
) -> None:
    folder = photos(tmp_path / "photos", 5)
    result = run(
        "data",
        "prepare",
        "--config",
        config,
        "--profile",
        "tiny",
        option,
        value.format(photos=folder),
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_prepare_names_an_unreadable_photo_and_exits_1(
    tmp_path: Path, config: Path, tiny: Profile
) -> None:
    photos(tmp_path / "scenes", 4)
    bad = photos(tmp_path / "scenes_test", 2) / "p1.jpg"
    bad.write_bytes(b"not a jpeg at all")
    result = run(
        "data",
        "prepare",
        "--config",
        config,
        "--profile",
        "tiny",
        "--source",
        f"scenes={tmp_path / 'scenes'}",
        "--test-set",
        f"scenes_test={tmp_path / 'scenes_test'}",
        "-q",
    )
    assert result.exit_code == 1
    assert f"Error: {bad}: unreadable image (UnidentifiedImageError" in result.stderr
    assert "hint: remove or replace it, or pass --skip-unreadable" in result.stderr
    assert not tiny.data_root.exists()


def test_prepare_needs_every_source(tmp_path: Path, config: Path) -> None:
    photos(tmp_path / "scenes_test", 2, blue=60)  # a photo shared with training is refused
    result = run(
        "data",
        "prepare",
        "--config",
        config,
        "--profile",
        "tiny",
        "--test-set",
        f"scenes_test={tmp_path / 'scenes_test'}",
    )
    assert result.exit_code == 1
    assert "Error: profile tiny needs source scenes: no folder given" in result.stderr
    assert "hint: pass --source NAME=DIR for each" in result.stderr


@pytest.mark.parametrize("command", ["prepare", "check"])
def test_help_ends_with_an_example(command: str) -> None:
    result = run("data", command, "--help")
    assert result.exit_code == 0
    assert "  Example:\n      inpaint-bench data " + command in result.stdout
