"""A read-only folder or a full disk ends a command with a clear error naming the folder and
what to do, never a traceback, and leaves nothing half-written. Each case runs the real CLI in
a private mount namespace (`unshare -Urm`): a read-only bind mount, or a tmpfs a few KiB large."""

from __future__ import annotations

import errno
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image
from runs import FAULTY

from harness.errors import storage_error

BIN = Path(sys.executable).parent / "inpaint-bench"


def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=4k none /mnt"],
        capture_output=True,
    )
    return done.returncode == 0


needs_unshare = pytest.mark.skipif(
    not namespaces_work(), reason="unshare -Urm with a tmpfs mount is not permitted here"
)


def workspace(root: Path, data_root: str) -> Path:
    for name, blue in (("scenes", 200), ("faces", 40)):
        folder = root / "photos" / name
        folder.mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (48, 48), (40 * i, 90, blue)).save(folder / f"p{i}.png")
    config = root / "benchmark.yaml"
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
                        "data_root": data_root,
                        "image_size": 32,
                        "train_budget": "1s",
                        "models": ["m0"],
                        "sources": {"scenes": {"train": 3, "val": 1}},
                        "masks": {"train": 2, "val": 1, "test": 2},
                        "test_sets": {"faces_test": 2},
                    }
                },
            }
        )
    )
    return config


def prepare_argv(root: Path, config: Path) -> str:
    return (
        f"{BIN} data prepare --config {config} --profile tiny -q"
        f" --source scenes={root / 'photos' / 'scenes'}"
        f" --test-set faces_test={root / 'photos' / 'faces'}"
    )


def in_namespace(root: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` (bash) as root of a private user and mount namespace."""
    return subprocess.run(
        ["unshare", "-Urm", "bash", "-c", f"set -e\ncd {root}\n{script}"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_only(folder: Path) -> str:
    return f"mkdir -p {folder}\nmount --bind {folder} {folder}\nmount -o remount,bind,ro {folder}\n"


def tmpfs(folder: Path, size: str) -> str:
    return f"mkdir -p {folder}\nmount -t tmpfs -o size={size} none {folder}\n"


def assert_clear(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert "CMD_EXIT=1" in done.stdout, output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output}"


@needs_unshare
def test_prepare_into_a_read_only_folder(tmp_path: Path) -> None:
    config = workspace(tmp_path, "ro/data")
    done = in_namespace(
        tmp_path,
        read_only(tmp_path / "ro")
        + f"{prepare_argv(tmp_path, config)} && echo CMD_EXIT=0 || echo CMD_EXIT=$?\n",
    )
    assert_clear(done, str(tmp_path / "ro"), "read-only file system", "hint: give a folder")


@needs_unshare
def test_prepare_onto_a_full_disk_leaves_nothing(tmp_path: Path) -> None:
    config = workspace(tmp_path, "full/data")
    done = in_namespace(
        tmp_path,
        tmpfs(tmp_path / "full", "8k")
        + f"{prepare_argv(tmp_path, config)} && echo CMD_EXIT=0 || echo CMD_EXIT=$?\n"
        + f"ls -A {tmp_path / 'full'} | sed 's/^/LEFT:/'\n",
    )
    assert_clear(
        done, f"{tmp_path / 'full' / 'data'}: writing the data tree", "no space left", "df -h"
    )
    assert "LEFT:" not in done.stdout, done.stdout


def run_argv(config: Path, run_dir: Path) -> str:
    return (
        f"{BIN} run --config {config} --profile tiny --runner local --run-dir {run_dir} -q"
        " && echo CMD_EXIT=0 || echo CMD_EXIT=$?\n"
    )


@needs_unshare
def test_run_into_a_read_only_run_dir(tmp_path: Path) -> None:
    config = workspace(tmp_path, "data")
    prepared = subprocess.run(prepare_argv(tmp_path, config).split(), capture_output=True)
    assert prepared.returncode == 0, prepared.stderr
    done = in_namespace(
        tmp_path, read_only(tmp_path / "ro") + run_argv(config, tmp_path / "ro/run")
    )
    assert_clear(done, str(tmp_path / "ro" / "run"), "read-only file system")


@needs_unshare
@pytest.mark.parametrize("size", ["40k", "150k"], ids=["ledger-cannot-start", "ledger-fills-up"])
def test_run_onto_a_full_disk(tmp_path: Path, size: str) -> None:
    config = workspace(tmp_path, "data")
    prepared = subprocess.run(prepare_argv(tmp_path, config).split(), capture_output=True)
    assert prepared.returncode == 0, prepared.stderr
    done = in_namespace(
        tmp_path, tmpfs(tmp_path / "full", size) + run_argv(config, tmp_path / "full/run")
    )
    assert_clear(done, "database or disk is full", "no space left on device", "df -h")


def test_storage_errors_are_translated_and_others_are_not() -> None:
    full = storage_error(OSError(errno.ENOSPC, "No space left on device", "/x/y.png"))
    assert full is not None and full.message.startswith("/x/y.png: no space left on device")
    ledger = storage_error(sqlite3.OperationalError("database or disk is full"), "/r/l.sqlite")
    assert ledger is not None and "/r/l.sqlite" in ledger.message and "df -h" in (ledger.hint or "")
    assert storage_error(OSError(errno.ENOENT, "No such file", "/x")) is None
    assert storage_error(sqlite3.OperationalError("no such table: steps")) is None
    assert storage_error(ValueError("no space left on device")) is None
