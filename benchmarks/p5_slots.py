"""P5 two CPU slots against one: the `sample` profile with its deterministic models, run
sequentially and with `--slots 2`, alternated, each in a fresh run folder.

    .venv/bin/python benchmarks/p5_slots.py              # 2 rounds (sequential, slots) × 2
    .venv/bin/python benchmarks/p5_slots.py --rounds 1 --max-steps 5    # a quick look
    .venv/bin/python benchmarks/p5_slots.py --slurm   # two Slurm jobs in flight instead of two
                                                      # slots (needs $SLURM_CONF; see
                                                      # docs/scaling.md#slurm-in-ci)

The deterministic models are classical (no training) and gatedconv stopped by --max-steps
(its budget is raised to 10 minutes here, so the step count, not the clock, ends training):
both runs do the same work, and their predictions and score CSVs must be equal byte for byte.
Metrics are psnr and ssim (no LPIPS weights needed). The sequential run's jobs use torch's
default threads (one per core); with two slots each job gets cores/2 threads (OMP_NUM_THREADS,
set by the harness), so the two jobs side by side do not oversubscribe the cores.

This machine's 2 cores are shared with other users: the load average is recorded before and
after every run, and the rounds alternate so that a burst of outside load hits both modes.
Target: the two-slot run is faster than the sequential one (median wall time), with identical
results.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, report_targets, write_result

sys.path.insert(0, str(REPO))

from harness.sample_benchmark import write_sample_benchmark

BIN = Path(sys.executable).parent / "inpaint-bench"
MODELS = ["classical", "gatedconv"]


def results(run_dir: Path) -> dict[str, bytes]:
    files = [*(run_dir / "scores").rglob("*.csv"), *(run_dir / "predictions").rglob("*.png")]
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(files)}


def steps(run_dir: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT kind, label, status, started_at, finished_at FROM steps")
        return [
            {"kind": k, "label": label, "status": s, "start": a, "end": b}
            for k, label, s, a, b in rows
        ]
    finally:
        conn.close()


def busy_s(found: list[dict[str, Any]]) -> float:
    """Seconds in which at least one step ran (union of the steps' intervals)."""
    spans = sorted((s["start"], s["end"]) for s in found if s["end"] is not None)
    total, reach = 0.0, float("-inf")
    for start, end in spans:
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total


def one_run(
    config: Path, run_dir: Path, slots: int, max_steps: int, slurm: bool = False
) -> dict[str, Any]:
    argv = [str(BIN), "run", "--config", str(config), "--profile", "sample"]
    argv += ["--runner", "local", "--run-dir", str(run_dir), "--max-steps", str(max_steps), "-q"]
    if slots > 1:
        argv += ["--slots", str(slots)]
    if slurm:
        argv += ["--executor", "slurm"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CI": "true"}
    load_before = os.getloadavg()
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    found = steps(run_dir)
    trains = [s for s in found if s["kind"] == "train"]
    return {
        "slots": slots,
        "wall_s": round(wall, 2),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "steps": len(found),
        "failed": [s["label"] for s in found if s["status"] != "done"],
        "train_s": {s["label"]: round(s["end"] - s["start"], 2) for s in trains},
        "steps_busy_s": round(busy_s(found), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--slurm", action="store_true", help="the second mode on Slurm")
    args = parser.parse_args()
    name = "p5_slots_slurm" if args.slurm else "p5_slots"
    work = Path(tempfile.mkdtemp(prefix="p5-slots-"))
    try:
        config = write_sample_benchmark(
            work, MODELS, ["psnr", "ssim"], data_root=REPO / "data" / "sample", train_budget="10m"
        )
        runs: list[dict[str, Any]] = []
        reference: dict[str, bytes] | None = None
        equal = True
        for round_no in range(args.rounds):
            for slots in (1, 2):
                run_dir = work / f"run-{round_no}-{slots}"
                slurm = args.slurm and slots > 1
                measured = one_run(config, run_dir, slots, args.max_steps, slurm)
                measured["executor"] = "slurm" if slurm else "host"
                produced = results(run_dir)
                if reference is None:
                    reference = produced
                measured["results_equal_first_run"] = produced == reference
                equal = equal and produced == reference and bool(produced)
                runs.append(measured)
                print(
                    f"round {round_no} slots {slots}: {measured['wall_s']} s, load"
                    f" {measured['load_before'][0]} → {measured['load_after'][0]}, equal"
                    f" {measured['results_equal_first_run']}"
                )
                shutil.rmtree(run_dir)
        sequential = statistics.median(r["wall_s"] for r in runs if r["slots"] == 1)
        two = statistics.median(r["wall_s"] for r in runs if r["slots"] == 2)
        measurements = {
            "profile": "sample",
            "models": MODELS,
            "max_steps": args.max_steps,
            "cores": len(os.sched_getaffinity(0)),
            "runs": runs,
            "median_sequential_s": sequential,
            "median_two_slots_s": two,
            "speedup": round(sequential / two, 3),
        }
        targets = {
            "two slots finish faster than one (median wall time)": two < sequential,
            "identical predictions and scores in every run": equal,
        }
        print(f"sequential {sequential} s, two slots {two} s: ×{sequential / two:.2f}")
        report_targets(targets)
        print(write_result(name, measurements, targets))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
