"""The scale-out issue's end-to-end test on the one-node Slurm of CI: benchmark.yaml's `sample`
profile with its deterministic models (classical, and gatedconv stopped by --max-steps; PSNR and
SSIM) run with `--executor slurm --slots 2`, the harness killed -9 once a gatedconv training is
done and one of its predict jobs is on the cluster, then rerun to the end.

Between the kill and the rerun, the jobs the dead harness left are let end and their .jobid
files deleted: the harness's death between `sbatch` returning and that file being written
(docs/scaling.md), which once made a rerun submit the step again. Then: every step ran as
exactly one Slurm job (counted in slurmctld's own list, which keeps ended jobs for MinJobAge,
and in the ledger), the killed steps' jobs were adopted, the steps done before the kill were
not redone, and the predictions and score CSVs equal a local one-slot run's byte for byte.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from runs import ledger_rows, results
from slurmhost import STUCK_S, slurm_conf, wait_finished

from harness.executors.slurm import ALIVE
from harness.sample_benchmark import write_sample_benchmark

BIN = Path(sys.executable).parent / "inpaint-bench"
MODELS = ("classical", "gatedconv")
MAX_STEPS = 2  # CI time: the point is the kill and the resume, not the training


def run_argv(config: Path, run_dir: Path) -> list[str]:
    return [
        *(str(BIN), "run", "--config", str(config), "--profile", "sample", "--runner", "local"),
        *("--run-dir", str(run_dir), "--max-steps", str(MAX_STEPS), "-q"),
    ]


def queue() -> dict[str, str]:
    """Job name → state of every job Slurm lists as pending or running."""
    listed = subprocess.run(["squeue", "-h", "-o", "%j %T"], capture_output=True, text=True)
    return dict(line.split() for line in listed.stdout.splitlines() if line.strip())


def in_flight(run_dir: Path) -> dict[str, str]:
    """Name → job ID of the run's jobs whose outcome the harness has not taken yet (their
    .jobid file is still beside the events, not set aside in slurm/done)."""
    return {p.stem: p.read_text().strip() for p in (run_dir / "slurm").glob("*.jobid")}


def predict_on_the_cluster_unfinished(run_dir: Path) -> bool:
    """A predict job of the run is in the queue and its node has not written its exit file, so
    the harness cannot have taken its outcome: killed now, the harness leaves it in flight. (A
    predict step's rerun works in a fresh folder: the adopted job's outputs must reach it.)"""
    listed = queue()
    return any(
        name.endswith("-predict")
        and listed.get(name) in ALIVE
        and not (run_dir / "slurm" / f"{name}.exit.json").exists()
        for name in in_flight(run_dir)
    )


def gatedconv_trained(run_dir: Path) -> bool:
    done = ledger_rows(
        run_dir,
        "SELECT 1 FROM steps WHERE kind = 'train' AND label LIKE 'gatedconv %' AND status = 'done'",
    )
    return bool(done)


def slurm_jobs_of_run(prefix: str, since: datetime) -> dict[str, str]:
    """Job ID → name of every job slurmctld knows (ended ones too) whose name starts with
    `prefix`, submitted at `since` or later: the run ID is the run folder's hash, and pytest can
    give a later session an earlier one's folder (and so job names) while slurmctld still keeps
    that session's ended jobs."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True
    )
    found = {}
    for line in shown.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        submitted = datetime.fromisoformat(fields.get("SubmitTime", "1970-01-01T00:00:00"))
        if fields.get("JobName", "").startswith(prefix) and submitted >= since:
            found[fields["JobId"]] = fields["JobName"]
    return found


@pytest.mark.slow
def test_sample_profile_on_slurm_killed_and_resumed_submits_each_step_once(
    tmp_path: Path,
) -> None:
    slurm_conf()
    since = datetime.now().replace(microsecond=0)  # slurmctld's clock: this machine's, local
    # a 10-minute budget: --max-steps, not the clock, ends training, so that the deterministic
    # models give the same bytes on every run
    config = write_sample_benchmark(tmp_path, MODELS, ("psnr", "ssim"), train_budget="10m")
    data = subprocess.run(
        [str(BIN), "data", "sample", "--config", str(config), "--profile", "sample", "-q"],
        capture_output=True,
        text=True,
    )
    assert data.returncode == 0, data.stdout + data.stderr
    env = {**os.environ, "CI": "true"}
    reference_dir = tmp_path / "local"
    local = subprocess.run(run_argv(config, reference_dir), capture_output=True, text=True, env=env)
    assert local.returncode == 0, local.stdout + local.stderr
    reference = results(reference_dir)

    run_dir = tmp_path / "slurm"
    argv = [*run_argv(config, run_dir), "--executor", "slurm", "--slots", "2"]
    harness = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 2 * STUCK_S  # a stuck cluster, not a timing
        while not (gatedconv_trained(run_dir) and predict_on_the_cluster_unfinished(run_dir)):
            assert harness.poll() is None, "the run ended before the state to kill it in"
            assert time.monotonic() < deadline, "no predict job running after a gatedconv training"
            time.sleep(0.1)
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait()
        left = in_flight(run_dir)  # the harness is dead: this no longer changes
        assert left, "every job's outcome was taken before the kill landed"
        done_before = ledger_rows(
            run_dir, "SELECT kind, label, attempt, started_at FROM steps WHERE status = 'done'"
        )
        # The death between sbatch and the .jobid file, for every job the harness left: each
        # ends with no harness following it and no .jobid file to find it by.
        for name, job_id in left.items():
            wait_finished(job_id)
            (run_dir / "slurm" / f"{name}.jobid").unlink()

        rerun = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=2 * STUCK_S)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    finally:
        if harness.poll() is None:
            harness.kill()
        for job_id in in_flight(run_dir).values():
            subprocess.run(["scancel", job_id], check=False)

    assert results(run_dir) == reference and reference

    jobs = ledger_rows(
        run_dir,
        "SELECT s.kind || ' ' || s.label, j.job_id, j.adopted FROM external_jobs j"
        " JOIN steps s ON s.key = j.step_key",
    )
    by_step: dict[str, set[str]] = {}
    for step, job_id, _ in jobs:
        by_step.setdefault(step, set()).add(job_id)
    assert all(len(ids) == 1 for ids in by_step.values()), f"submitted twice: {by_step}"
    steps = ledger_rows(run_dir, "SELECT kind || ' ' || label, status FROM steps")
    assert {status for _, status in steps} == {"done"}
    jobs_expected = {s for s, _ in steps if s.split()[0] in ("describe", "train")}
    assert jobs_expected <= set(by_step), jobs_expected - set(by_step)
    # One predict job per checkpoint covers all its test sets (its first set's step records it).
    predicted = {s.rsplit(" on ", 1)[0] for s, _ in steps if s.startswith("predict ")}
    predict_jobs = [s.rsplit(" on ", 1)[0] for s in by_step if s.startswith("predict ")]
    assert sorted(predict_jobs) == sorted(predicted), by_step
    # The killed steps' jobs were adopted from their exit files, not submitted again.
    assert {job_id for _, job_id, adopted in jobs if adopted} == set(left.values())
    assert set(done_before) <= set(
        ledger_rows(run_dir, "SELECT kind, label, attempt, started_at FROM steps")
    ), "a step done before the kill was run again"

    # Slurm's own count: one job per name of this run, and each is one the ledger knows.
    prefix = "-".join(next(iter(left)).split("-")[:2]) + "-"  # ib-<run id>-
    on_slurm = slurm_jobs_of_run(prefix, since)
    counted = Counter(on_slurm.values())
    assert counted and max(counted.values()) == 1, f"names submitted twice: {counted}"
    assert set(on_slurm) == {job_id for _, job_id, _ in jobs}
    print(
        f"\nslurm sample: {len(on_slurm)} Slurm jobs for {len(steps)} steps, each submitted once;"
        f" killed with {len(left)} in flight ({', '.join(sorted(left))}), adopted from their"
        f" exit files after their .jobid files were deleted"
    )
