"""Tiny profiles and data trees for tests that really run model jobs."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from datatree import build_tree, make_profile, write_tiny_benchmark

from harness.config import ModelEntry, Profile, Runtime
from harness.runners.base import Launch, Limits, Mounts

REPO = Path(__file__).resolve().parents[1]
FAULTY = REPO / "tests" / "fixtures" / "images" / "faulty"


def faulty(name: str, fault: str = "none", budget_s: float = 1.0) -> ModelEntry:
    return ModelEntry(
        name=name,
        image=str(FAULTY),
        batch_size=1,
        train_budget_s=budget_s,
        hyperparameters={"fault": fault},
    )


def faulty_launch(root: Path, gpu: int | None = None) -> Launch:
    """A training launch of the faulty fixture with its mounts under root (for the executors'
    tests: what the harness hands a runner), its job file written."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "job.json").write_text(json.dumps({"job_id": "ab" * 8, "command": "train"}))
    return Launch(
        "m0",
        str(FAULTY),
        "train",
        Mounts({"images": root / "img"}, root / "job.json", root / "ck", root / "o"),
        Limits(setup_cap_s=1800.0, budget_s=7200.0, grace_s=60.0, memory_bytes=1 << 30),
        root / "train.log",
        gpu=gpu,
        env={"OMP_NUM_THREADS": "8", "KEEP": "1"},
        key="ab" * 32,
        run_id="run123",
    )


def reference(name: str, budget_s: float = 2.0, batch_size: int = 4) -> ModelEntry:
    return ModelEntry(
        name=name, image=str(REPO / "images" / name), batch_size=batch_size, train_budget_s=budget_s
    )


def tiny_run_profile(
    root: Path,
    models: list[ModelEntry],
    size: int = 32,
    setup_cap_s: float = 120.0,
    grace_s: float = 2.0,
) -> Profile:
    """One source, one test set of four images, size²; data built under root/data."""
    profile = make_profile(
        root / "data",
        name="tiny",
        image_size=size,
        sources={"scenes": (6, 2)},
        masks=(6, 2, 4),
        test_sets={"faces_test": 4},
    )
    profile = dataclasses.replace(
        profile,
        models=tuple(models),
        runtime=Runtime(setup_cap_s=setup_cap_s, grace_s=grace_s),
    )
    if not profile.data_root.exists():
        build_tree(profile)
    return profile


def results(run_dir: Path) -> dict[str, bytes]:
    """Every score CSV and prediction PNG of a run, by relative path (the CSVs' sidecars hold
    timings, so they are left out)."""
    files = [*(run_dir / "scores").rglob("*.csv"), *(run_dir / "predictions").rglob("*.png")]
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(files)}


def ledger_rows(run_dir: Path, sql: str) -> list[tuple]:
    """`sql` on the run's ledger, read-only while a harness may be writing it ([] before it
    exists or is migrated)."""
    path = run_dir / "ledger.sqlite"
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []  # created, not yet migrated


@dataclasses.dataclass(frozen=True)
class Rendezvous:
    """write_tiny_benchmark's profile whose models are the faulty fixture's `rendezvous`
    helper: each training waits before run_start until `wanted` parties (trainings, or the test
    touching a file of its own) are in `meet`, so a test sees jobs up together by their files."""

    config: Path
    meet: Path

    def env(self, wanted: int) -> dict[str, str]:
        return {
            **os.environ,
            "INPAINT_TEST_RENDEZVOUS": str(self.meet),
            "INPAINT_TEST_RENDEZVOUS_N": str(wanted),
        }

    def arrived(self) -> int:
        return len([p for p in self.meet.iterdir() if not p.name.startswith(".")])

    def clear(self) -> None:
        for path in self.meet.iterdir():
            path.unlink()


def rendezvous_benchmark(root: Path, models: Sequence[str]) -> Rendezvous:
    """root/benchmark.yaml (profile `tiny`) with one rendezvous training per model."""
    entries = {
        m: {"image": str(FAULTY), "batch_size": 1, "hyperparameters": {"fault": "rendezvous"}}
        for m in models
    }
    config = write_tiny_benchmark(root, entries, train=(4, 1), test=3)
    meet = root / "meet"
    meet.mkdir()
    return Rendezvous(config, meet)
