"""P4 predictions: one predict job per checkpoint for all its test sets (new) against one job per
test set (old), for wrapped models on the `sample` profile with the local runner.

    .venv/bin/python benchmarks/p4_predict_batch.py                   # aotgan, 2 rounds
    .venv/bin/python benchmarks/p4_predict_batch.py --models aotgan,madf --rounds 3

Upstream code comes from INPAINT_UPSTREAM_<MODEL> (e.g. /work/shared/upstream/aotgan). One base
run trains each model on both sources (`--max-steps`, default 2: the checkpoint, not how long it
trained, is what a predict job loads), then every measured run starts from a copy of the base
run's ledger with its predict steps removed, so it trains nothing and predicts everything from
the same checkpoints:

- **old**: one predict job per test set. The pipeline runs three times in one folder and one
  process, its profile holding the first test set, then the first two, then all three: each
  pass predicts only the set it adds, alone in its job, which is the per-set job exactly (one
  set is predicted from its own folders, harness/predict_batch.py).
- **new**: one pass with all three test sets: one job per model × source for all of them.

Each mode runs in a fresh process (`--drive`) through `harness.pipeline.Pipeline`, as
`inpaint-bench run --no-score` does, but without the command's data check, which refuses a
profile that holds fewer test sets than the data tree.

The two modes alternate (old first in even rounds, new first in odd ones); the figures are
medians over the rounds. Measured: the predict steps' busy time from the ledger (the union of
their start-to-finish intervals: a batched job's sets share one interval), the number of predict
jobs (distinct `job.step` in the steps' results), and the driver process's wall time (its three
passes in the old way also redo the pipeline's own checks and cached steps three times, which a
real run does not: the predict time is the figure to compare). The 1-minute load average is
recorded before and after every run, and the predictions of both modes are compared byte for
byte.
"""

from __future__ import annotations

import argparse
import dataclasses
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

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, report_targets, write_result

sys.path.insert(0, str(REPO))

from harness.sample_benchmark import write_sample_benchmark

BIN = Path(sys.executable).parent / "inpaint-bench"


def sample_sets() -> list[str]:
    doc = yaml.safe_load((REPO / "benchmark.yaml").read_text())
    return list(doc["profiles"]["sample"]["test_sets"])


def drive(mode: str, config: Path, run_dir: Path, max_steps: int) -> None:
    """In this process: the pipeline over `config`'s sample profile, old or new way."""
    from harness.config import load_benchmark
    from harness.pipeline import Pipeline
    from harness.progress import SilentReporter
    from harness.runners.local import LocalRunner

    profile = load_benchmark(config).profile("sample")
    reporter = SilentReporter(quiet=True)
    upstream = {}
    for model in profile.models:
        checkout = os.environ.get(f"INPAINT_UPSTREAM_{model.name.upper()}")
        if checkout:
            upstream[model.name] = Path(checkout)
    runner = LocalRunner(upstream, reporter)
    sets = list(profile.test_sets)
    passes = [sets[: n + 1] for n in range(len(sets))] if mode == "old" else [sets]
    for test_sets in passes:
        only = {t: profile.test_sets[t] for t in test_sets}
        pipeline = Pipeline(
            dataclasses.replace(profile, test_sets=only),
            run_dir,
            runner,
            reporter,
            max_steps=max_steps,
            image_base=config.resolve().parent,
            score=False,
        )
        summary = pipeline.run()
        if summary.failed:
            raise SystemExit(f"{mode}: {[(s.label, s.reason) for s in summary.failed]}")


def harness(argv: list[str]) -> float:
    """Run ARGV (an `inpaint-bench` command, or this script with --drive); its wall seconds.
    Exits the benchmark if it fails."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CI": "true"}
    # MADF's and AOT-GAN's VGG loss weights cannot be downloaded here: seeded random ones cost
    # the same (as in p4_make_bench.py); predictions do not use the loss network
    env.setdefault("INPAINT_RANDOM_LOSS_WEIGHTS", "1")
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start


def run_argv(config: Path, run_dir: Path, max_steps: int) -> list[str]:
    return [
        str(BIN),
        "run",
        "--config",
        str(config),
        "--profile",
        "sample",
        "--runner",
        "local",
        "--run-dir",
        str(run_dir),
        "--max-steps",
        str(max_steps),
        "--no-score",
        "-q",
    ]


def fresh_from(base: Path, run_dir: Path) -> None:
    """run_dir with the base run's ledger less its predict steps (their events too): training,
    describe and inputs are cached, every prediction is to make."""
    run_dir.mkdir(parents=True)
    source = sqlite3.connect(base / "ledger.sqlite")
    target = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        source.backup(target)
        with target:
            keys = "SELECT key FROM steps WHERE kind = 'predict'"
            target.execute(f"DELETE FROM events WHERE step_key IN ({keys})")
            target.execute(f"DELETE FROM violations WHERE step_key IN ({keys})")
            target.execute("DELETE FROM steps WHERE kind = 'predict'")
    finally:
        source.close()
        target.close()


def predict_figures(run_dir: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT status, started_at, finished_at, json_extract(result, '$.job.step')"
            " FROM steps WHERE kind = 'predict'"
        ).fetchall()
        jobs = conn.execute(
            "SELECT DISTINCT json_extract(result, '$.job.step'), json_extract(result, '$.setup_s'),"
            " json_extract(result, '$.wall_s') FROM steps WHERE kind = 'predict'"
        ).fetchall()
    finally:
        conn.close()
    spans = sorted((start, end) for _, start, end, _ in rows)
    busy, reach = 0.0, float("-inf")
    for start, end in spans:
        busy += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return {
        "predict_steps": len(rows),
        "not_done": sum(status != "done" for status, *_ in rows),
        "predict_jobs": len({job for *_, job in rows}),
        "predict_busy_s": round(busy, 2),
        # per job: start-up (process, imports, checkpoint) to run_start, and the whole job
        "job_setup_s": [setup for _, setup, _ in jobs],
        "job_wall_s": [wall for *_, wall in jobs],
    }


def predictions(run_dir: Path) -> dict[str, bytes]:
    files = sorted((run_dir / "predictions").rglob("*.png"))
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in files}


def measure(mode: str, config: Path, base: Path, run_dir: Path, steps: int) -> dict:
    fresh_from(base, run_dir)
    load_before = os.getloadavg()[0]
    script = [sys.executable, str(Path(__file__).resolve()), "--drive", mode]
    wall = harness([*script, str(config), str(run_dir), "--max-steps", str(steps)])
    return {
        "mode": mode,
        "harness_wall_s": round(wall, 2),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
        **predict_figures(run_dir),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="aotgan", help="comma-separated wrapped models")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--drive", choices=["old", "new"], help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.paths[0], args.paths[1], args.max_steps)
        return
    models = args.models.split(",")
    for model in models:
        if not os.environ.get(f"INPAINT_UPSTREAM_{model.upper()}"):
            raise SystemExit(f"set INPAINT_UPSTREAM_{model.upper()} to the authors' checkout")
    sets = sample_sets()
    work = Path(tempfile.mkdtemp(prefix="p4-predict-batch-"))
    try:
        whole = write_sample_benchmark(work, models, ["psnr"])
        harness([str(BIN), "data", "sample", "--config", str(whole), "-q"])
        base = work / "base"
        base_s = harness(run_argv(whole, base, args.max_steps))
        print(f"base run (train, describe, predict): {base_s:.1f} s")
        runs: list[dict[str, Any]] = []
        reference: dict[str, bytes] | None = None
        for round_no in range(args.rounds):
            order = ["old", "new"] if round_no % 2 == 0 else ["new", "old"]
            for mode in order:
                run_dir = work / f"{mode}-{round_no}"
                measured = measure(mode, whole, base, run_dir, args.max_steps)
                produced = predictions(run_dir)
                reference = reference if reference is not None else produced
                measured["round"] = round_no
                measured["images"] = len(produced)
                measured["equal_to_first_run"] = produced == reference
                runs.append(measured)
                print(
                    f"round {round_no} {mode}: predict {measured['predict_busy_s']} s in"
                    f" {measured['predict_jobs']} jobs, harness {measured['harness_wall_s']} s,"
                    f" load {measured['load_before']} → {measured['load_after']}"
                )
                shutil.rmtree(run_dir)
        old = statistics.median(r["predict_busy_s"] for r in runs if r["mode"] == "old")
        new = statistics.median(r["predict_busy_s"] for r in runs if r["mode"] == "new")
        measurements = {
            "profile": "sample",
            "models": models,
            "test_sets": sets,
            "max_steps": args.max_steps,
            "base_run_s": round(base_s, 2),
            "runs": runs,
            "median_old_predict_s": old,
            "median_new_predict_s": new,
            "speedup": round(old / new, 3),
            "median_old_harness_s": statistics.median(
                r["harness_wall_s"] for r in runs if r["mode"] == "old"
            ),
            "median_new_harness_s": statistics.median(
                r["harness_wall_s"] for r in runs if r["mode"] == "new"
            ),
        }
        jobs_per_mode = {r["mode"]: r["predict_jobs"] for r in runs}
        targets = {
            "new: one predict job per model × source (old: one per test set as well)": (
                jobs_per_mode["new"] * len(sets) == jobs_per_mode["old"]
            ),
            "every prediction step done": all(r["not_done"] == 0 for r in runs),
            "identical predictions in every run": all(r["equal_to_first_run"] for r in runs),
            "new predicts faster (median)": new < old,
        }
        print(f"predictions: old {old} s, new {new} s: ×{old / new:.2f}")
        report_targets(targets)
        print(write_result("p4_predict_batch", measurements, targets))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
