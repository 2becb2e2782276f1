"""kill -9 of the harness in mid-run, then a rerun: nothing completed is lost or redone."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from datatree import tiny_run_args, write_tiny_benchmark
from runs import FAULTY

from harness.ledger import Ledger

BIN = Path(sys.executable).parent / "inpaint-bench"


def write_config(tmp_path: Path) -> Path:
    models = {
        f"m{i}": {"image": str(FAULTY), "batch_size": 1, "hyperparameters": {"variant": i}}
        for i in range(3)
    }
    return write_tiny_benchmark(tmp_path, models, train=(6, 2), test=4, budget="2s")


def statuses(run_dir: Path) -> dict[str, tuple[str, int, float]]:
    path = run_dir / "ledger.sqlite"
    if not path.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT label, kind, status, attempt, started_at FROM steps")
            return {
                f"{kind} {label}": (status, attempt, started)
                for label, kind, status, attempt, started in rows
            }
    except sqlite3.OperationalError:
        return {}


def adapter_processes(run_dir: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(run_dir).encode() in cmdline and b"adapter.py" in cmdline:
                found.append(int(entry.name))
    return found


def test_kill_9_mid_training_then_rerun_completes_without_redoing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run_dir = tmp_path / "run"
    command = [str(BIN), *tiny_run_args(config, run_dir), "-q"]
    harness = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    before: dict[str, tuple[str, int, float]] = {}
    while time.monotonic() < deadline and harness.poll() is None:
        before = statuses(run_dir)
        trains = [v for k, v in before.items() if k.startswith("train ")]
        if any(s == "done" for s, _, _ in trains) and any(s == "running" for s, _, _ in trains):
            break
        time.sleep(0.1)
    else:
        harness.kill()
        raise AssertionError(f"never reached a done + a running train step: {before}")
    os.kill(harness.pid, signal.SIGKILL)
    harness.wait()
    time.sleep(1.0)
    assert adapter_processes(run_dir) == [], "the job outlived the killed harness"

    done_before = {k: v for k, v in before.items() if v[0] == "done"}
    interrupted = [k for k, v in before.items() if v[0] == "running"]
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    after = statuses(run_dir)
    assert all(status == "done" for status, _, _ in after.values()), after
    for key, (_, attempt, started) in done_before.items():
        assert after[key][1] == attempt and after[key][2] == started, f"{key} was redone"
    for key in interrupted:
        assert after[key][1] == before[key][1] + 1
    with Ledger.in_run_dir(run_dir) as ledger:
        assert ledger.integrity_ok()
    for model in ("m0", "m1", "m2"):
        out = run_dir / "predictions" / "scenes" / model / "faces_test"
        assert len(list(out.glob("*.png"))) == 4
    assert not list((run_dir / "predictions").rglob(".*tmp*"))
