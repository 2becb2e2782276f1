"""Interrupted commands leave no temporary folder behind: SIGTERM and SIGINT during `data
prepare` delete its `.data.tmp-*` folder before exit, and the next command that owns a folder
deletes what a SIGKILL left (`.data.tmp-*`, `.report.tmp-*`). Signals are sent on an observed
state (the temporary folder holds a written PNG), never after a fixed delay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from reportfixture import build_run

from harness.data.atomic import atomic_dir, remove_stale
from harness.report.build import build_report

BIN = Path(sys.executable).parent / "inpaint-bench"
PHOTOS = 160


def workspace(root: Path) -> list[str]:
    """benchmark.yaml with a profile that imports enough photos to be interrupted while writing."""
    rng = np.random.default_rng(0)
    photos = root / "photos"
    photos.mkdir()
    for i in range(PHOTOS):
        pixels = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"p{i:03d}.jpg", quality=90)
    doc = {
        "benchmark_version": 1,
        "seed": 0,
        "metrics": ["psnr"],
        "models": {"m0": {"image": "images/classical", "batch_size": 1}},
        "profiles": {
            "big": {
                "data_root": "data",
                "image_size": 256,
                "train_budget": "1s",
                "models": ["m0"],
                "sources": {"scenes": {"train": PHOTOS - 20, "val": 10}},
                "masks": {"train": 2, "val": 1, "test": 2},
                "test_sets": {"scenes_test": 2},
            }
        },
    }
    (root / "benchmark.yaml").write_text(yaml.safe_dump(doc))
    return [
        str(BIN),
        "data",
        "prepare",
        "--config",
        str(root / "benchmark.yaml"),
        "--profile",
        "big",
        "--source",
        f"scenes={photos}",
        "--test-set",
        f"scenes_test={photos}",
        "-q",
    ]


def temporaries(root: Path) -> list[Path]:
    return sorted(root.glob(".data.tmp-*"))


def wait_for_a_written_png(process: subprocess.Popen, root: Path) -> bool:
    """Wait until a temporary data folder holds a PNG (True), or the process ends (False)."""
    while process.poll() is None:
        for tmp in temporaries(root):
            if next(tmp.rglob("*.png"), None) is not None:
                return True
        time.sleep(0.01)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_prepare_deletes_its_temporary_folder(
    tmp_path: Path, signum: signal.Signals
) -> None:
    argv = workspace(tmp_path)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for_a_written_png(process, tmp_path), "prepare ended before it wrote a PNG"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "Traceback" not in stderr, stderr
    assert temporaries(tmp_path) == []
    assert not (tmp_path / "data").exists()


def test_the_next_prepare_deletes_what_a_killed_one_left(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is now free: the folder below belongs to no live process
    stale = [
        tmp_path / f".data.tmp-{dead.pid}-abcd1234",
        tmp_path / ".data.tmp-k2j3h4g5",  # the naming before PIDs were recorded
        tmp_path / f".data.old-{dead.pid}-abcd1234",
    ]
    live = tmp_path / f".data.tmp-{os.getpid()}-efgh5678"  # a concurrent, running prepare's
    other = tmp_path / f".sample.tmp-{dead.pid}-abcd1234"  # another folder's: not ours to touch
    for folder in [*stale, live, other]:
        (folder / "sources").mkdir(parents=True)
        (folder / "sources" / "000000.png").write_bytes(b"x")
    with atomic_dir(tmp_path / "data") as tmp:
        (tmp / "made").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data", live.name, other.name])
    assert remove_stale(tmp_path / "data") == []  # nothing left to remove; the live one stays


def test_report_deletes_a_report_tmp_left_by_a_sigkill(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = run.run_dir / f".report.tmp-{dead.pid}-zz99yy88"
    (left / "figures").mkdir(parents=True)
    (left / "report.md").write_text("half a report")
    build_report(run.run_dir, images_root=run.images_root)
    assert not left.exists()
    assert (run.run_dir / "report" / "report.md").is_file()
