"""`run --executor slurm` on the one-node Slurm of CI: each job a Slurm batch job, the harness
killed with two trainings in flight on the cluster, and the rerun adopting them (no step
submitted twice), with the results of a local one-slot run."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from datatree import tiny_run_args, write_tiny_benchmark
from runs import FAULTY, faulty_launch, ledger_rows, rendezvous_benchmark, results
from slurmhost import STUCK_S, slurm_conf

from harness.errors import DockerUnavailable
from harness.executors import node, node_runners, slurm
from harness.executors.node import launch_from_json, launch_to_json, node_gpu
from harness.executors.slurm import ALIVE, SlurmRunner, job_states, time_limit_min
from harness.report.build import build_report
from harness.report_step import ReportChain
from harness.runners.local import LocalRunner

BIN = Path(sys.executable).parent / "inpaint-bench"
MODELS = ("m0", "m1")
SCORE_STEP = "score m0 (scenes) on faces_test"
REPORT_JOBS = (
    "SELECT j.job_id FROM external_jobs j JOIN steps s ON s.key = j.step_key"
    " WHERE s.kind = 'report'"
)


def test_a_launch_survives_its_trip_to_the_node(tmp_path: Path) -> None:
    launch = faulty_launch(tmp_path, gpu=0)
    assert launch_from_json(launch_to_json(launch)) == launch


def test_the_time_limit_is_budget_setup_cap_and_two_graces_plus_a_minute(tmp_path: Path) -> None:
    # (7200 + 1800 + 2 × 60) s = 152 min, + 1 for the node's own start
    assert time_limit_min(faulty_launch(tmp_path)) == 153


def test_the_node_uses_the_gpu_slurm_gave_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert node_gpu(0) == 3
    assert node_gpu(None) is None  # a CPU job stays on the CPU
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert node_gpu(0) == 0


def test_a_job_the_node_cannot_start_still_leaves_its_exit_file(tmp_path: Path) -> None:
    launch = dataclasses.replace(faulty_launch(tmp_path), image=str(tmp_path / "no-such-image"))
    spec = tmp_path / "job.launch.json"
    doc = {
        "launch": launch_to_json(launch),
        "events": str(tmp_path / "job.events"),
        "exit": str(tmp_path / "job.exit.json"),
        "upstream": {},
    }
    spec.write_text(json.dumps(doc))
    assert node.main(spec) == 1
    exit_info = json.loads((tmp_path / "job.exit.json").read_text())
    assert exit_info["exit_code"] == 1 and "no-such-image" in exit_info["error"]


def test_a_job_is_submitted_with_its_name_limit_and_gpu_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_slurm(args: list[str]) -> str:
        calls.append(args)
        return "" if args[0] == "squeue" else "4242\n"

    monkeypatch.setattr(slurm, "_slurm", fake_slurm)
    runner = SlurmRunner(LocalRunner(), tmp_path / "run", ("--partition=gpu",))
    job = runner.start(faulty_launch(tmp_path, gpu=0))
    name = f"ib-run123-{'ab' * 8}-train"
    base = tmp_path / "run" / "slurm" / name
    assert (job.job_id, job.name, job.adopted) == ("4242", name, False)
    assert calls == [
        ["squeue", "-h", "-n", name, "-o", "%i %T"],
        [
            "sbatch",
            "--parsable",
            f"--job-name={name}",
            f"--output={base}.out",
            f"--chdir={base.parent}",
            "--time=153",
            "--gres=gpu:1",
            "--partition=gpu",
            f"{base}.sh",
        ],
    ]
    assert (tmp_path / "run" / "slurm" / f"{name}.jobid").read_text() == "4242\n"
    spec = (base.parent / f"{name}.launch.json").read_text()
    assert '"KEEP": "1"' in spec and "OMP_NUM_THREADS" not in spec  # the node sets its own
    mounts = json.loads(spec)["launch"]["mounts"]  # the job's own, out of the rerun's reach
    assert (mounts["job"], mounts["outputs"]) == (f"{base}.job/job.json", f"{base}.outputs")


def test_a_job_still_queued_is_adopted_not_submitted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_slurm(args: list[str]) -> str:
        calls.append(args)
        return "77 RUNNING\n" if args[0] == "squeue" else pytest.fail("submitted again")

    monkeypatch.setattr(slurm, "_slurm", fake_slurm)
    job = SlurmRunner(LocalRunner(), tmp_path / "run").start(faulty_launch(tmp_path))
    assert (job.job_id, job.adopted) == ("77", True)
    assert [c[0] for c in calls] == ["squeue"]


def test_the_report_job_is_chained_on_the_last_score_job_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    job_ids = iter(["900", "901"])

    def fake_slurm(args: list[str]) -> str:
        calls.append(args)
        return "" if args[0] in ("squeue", "scancel") else next(job_ids) + "\n"

    monkeypatch.setattr(slurm, "_slurm", fake_slurm)
    runner = SlurmRunner(LocalRunner(), tmp_path / "run")
    chain = ReportChain(SimpleNamespace(run_id="run123", runner=runner))  # type: ignore[arg-type]
    chain.started(SimpleNamespace(job_id="41"))  # a score job
    name = "ib-run123-report"
    (submitted,) = [c for c in calls if c[0] == "sbatch"]
    assert submitted[2] == f"--job-name={name}"
    assert submitted[-3:-1] == ["--dependency=afterok:41", "--kill-on-invalid-dep=yes"]
    calls.clear()
    chain.started(SimpleNamespace(job_id="42"))  # the joint job failed: one model at a time
    # the report chained on 41 is cancelled (its node first), then chained on 42
    assert [c for c in calls if c[0] == "scancel"] == [
        ["scancel", "-b", "-s", "USR1", "900"],
        ["scancel", "900"],
    ]
    (submitted,) = [c for c in calls if c[0] == "sbatch"]
    assert "--dependency=afterok:42" in submitted
    assert chain.take().job_id == "901"
    spec = json.loads((tmp_path / "run" / "slurm" / f"{name}.launch.json").read_text())
    assert spec["report"]["ready"] == str(tmp_path / "run" / "slurm" / f"{name}.ready")


def test_a_node_without_the_models_image_fails_the_step_with_that_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_image(image: str, settings: dict, upstream: dict) -> None:
        raise DockerUnavailable(f"node gpu17: image {image} is not here", "docker load it")

    monkeypatch.setattr(node_runners, "docker_on_node", no_image)
    spec = tmp_path / "job.launch.json"
    doc = {
        "launch": launch_to_json(faulty_launch(tmp_path)) | {"image": "inpaint-bench/m0:abc"},
        "runner": "docker",
        "docker": {},
        "events": str(tmp_path / "job.events"),
        "exit": str(tmp_path / "job.exit.json"),
    }
    spec.write_text(json.dumps(doc))
    assert node.main(spec) == 1
    job = slurm.SlurmJob("7", "job", tmp_path / "job.events", tmp_path / "job.exit.json", False)
    assert job.wait(0) == 1
    assert job.node_error() == (
        "node gpu17: image inpaint-bench/m0:abc is not here\n  hint: docker load it"
    )


@pytest.mark.slow
def test_slurm_run_killed_with_jobs_on_the_cluster_adopts_them_and_matches_local(
    tmp_path: Path,
) -> None:
    slurm_conf()
    meeting = rendezvous_benchmark(tmp_path, MODELS)
    config, env, meet = meeting.config, meeting.env, meeting.meet
    reference_dir = tmp_path / "local"  # one slot on this host: each training meets itself
    local = subprocess.run(
        [str(BIN), *tiny_run_args(config, reference_dir), "-q"],
        env=env(1),
        capture_output=True,
        text=True,
    )
    assert local.returncode == 0, local.stdout + local.stderr
    meeting.clear()

    run_dir = tmp_path / "slurm"
    argv = [str(BIN), *tiny_run_args(config, run_dir), "-q", "--executor", "slurm"]
    argv += ["--slots", "2"]
    # Three at the rendezvous: the two trainings wait on the cluster until this test is the third.
    harness = subprocess.Popen(
        argv, env=env(3), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + STUCK_S
        while meeting.arrived() < 2:
            assert harness.poll() is None, "the harness ended before both trainings ran"
            assert time.monotonic() < deadline, "the trainings never started on the cluster"
            time.sleep(0.05)
        os.kill(harness.pid, signal.SIGKILL)
        harness.wait()
        submitted = ledger_rows(
            run_dir,
            "SELECT s.label, j.job_id FROM external_jobs j JOIN steps s ON s.key = j.step_key"
            " WHERE s.kind = 'train'",
        )
        assert sorted(label for label, _ in submitted) == [f"{m} on scenes" for m in MODELS]
        for label, job_id in submitted:  # the harness died; its jobs did not
            name = next(run_dir.glob(f"slurm/ib-*-{job_id_key(run_dir, label)}-train.jobid"))
            assert job_states(name.stem).get(job_id) in ALIVE, f"{label}: job {job_id} ended"

        rerun = subprocess.Popen(argv, env=env(3), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # The rerun follows the same two jobs (adopted, attempt 2) before they may go on.
        while len(adopted_trains(run_dir)) < 2:
            assert rerun.poll() is None, rerun.communicate()[0].decode()
            assert time.monotonic() < deadline, "the rerun did not adopt the running jobs"
            time.sleep(0.05)
        (meet / "test").touch()
        # Killed again once the report job is chained on the score job (which is then still
        # running: the report is submitted when it starts): the next rerun adopts both.
        while not list(run_dir.glob("slurm/ib-*-report.jobid")):
            assert rerun.poll() is None, rerun.communicate()[0].decode()
            assert time.monotonic() < deadline, "the report job was never submitted"
            time.sleep(0.05)
        os.kill(rerun.pid, signal.SIGKILL)
        rerun.wait()
        (chained,) = run_dir.glob("slurm/ib-*-report.jobid")
        report_job = chained.read_text().strip()
        last = subprocess.run(argv, env=env(3), capture_output=True, text=True, timeout=STUCK_S)
        assert last.returncode == 0, last.stdout + last.stderr
    finally:
        for path in run_dir.glob("slurm/**/*.jobid*"):
            subprocess.run(["scancel", path.read_text().strip()], check=False)

    assert results(run_dir) == results(reference_dir) and results(run_dir)
    jobs = ledger_rows(
        run_dir,
        "SELECT s.kind || ' ' || s.label, j.attempt, j.job_id, j.adopted FROM external_jobs j"
        " JOIN steps s ON s.key = j.step_key",
    )
    by_step: dict[str, set[str]] = {}
    for step, _, job_id, _ in jobs:
        by_step.setdefault(step, set()).add(job_id)
    assert all(len(ids) == 1 for ids in by_step.values()), f"submitted twice: {by_step}"
    steps = ledger_rows(run_dir, "SELECT kind || ' ' || label, status FROM steps")
    # Every job of the run ran on the cluster; one score job scores both models (its job is
    # recorded under the first model's step); the report is a job of its own.
    jobs_expected = {s for s, _ in steps if s.split()[0] in ("describe", "train", "predict")}
    jobs_expected |= {SCORE_STEP, "report report"}
    assert set(by_step) == jobs_expected
    assert {status for _, status in steps} == {"done"}
    adopted = sorted((step, attempt) for step, attempt, _, was_adopted in jobs if was_adopted)
    trains = [(f"train {m} on scenes", 2) for m in MODELS]
    assert adopted == sorted([("report report", 1), (SCORE_STEP, 2), *trains])
    assert by_step["report report"] == {report_job}

    # The report job was chained on the score job (submitted before it ended, afterok), wrote
    # the report a build here writes from the same run folder, and a rerun that changes
    # nothing reuses it.
    job_of = {step: job_id for step, _, job_id, _ in jobs}
    report, score = job_fields(job_of["report report"]), job_fields(job_of[SCORE_STEP])
    assert report["KillOInInvalidDependent"] == "Yes"  # only given with --dependency
    assert report["SubmitTime"] <= score["EndTime"]
    from_job = (run_dir / "report" / "report.md").read_text()
    build_report(run_dir)
    assert (run_dir / "report" / "report.md").read_text() == from_job
    again = subprocess.run(argv, env=env(1), capture_output=True, text=True, timeout=STUCK_S)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"report: {run_dir / 'report'}" in again.stdout
    assert ledger_rows(run_dir, REPORT_JOBS) == [(job_of["report report"],)]


@pytest.mark.slow
def test_a_slurm_job_over_its_budget_gets_sigterm_then_is_cancelled(tmp_path: Path) -> None:
    slurm_conf()
    models = {
        "m0": {
            "image": str(FAULTY),
            "batch_size": 1,
            "hyperparameters": {"fault": "ignore_sigterm"},
        }
    }
    runtime = {"grace": "3s", "setup_cap": "2m"}
    config = write_tiny_benchmark(tmp_path, models, train=(4, 1), test=3, runtime=runtime)
    run_dir = tmp_path / "run"
    argv = [str(BIN), *tiny_run_args(config, run_dir), "-q", "--executor", "slurm", "--no-score"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=STUCK_S)
    assert done.returncode == 1, done.stdout + done.stderr
    (row,) = ledger_rows(run_dir, "SELECT status, reason, result FROM steps WHERE kind = 'train'")
    status, reason, result = row
    assert status == "failed"
    assert reason.startswith("ignored SIGTERM for 3 s after its budget: killed"), reason
    assert json.loads(result)["signals"] == ["SIGTERM", "SIGKILL"]
    ((job_id,),) = ledger_rows(
        run_dir,
        "SELECT j.job_id FROM external_jobs j JOIN steps s ON s.key = j.step_key"
        " WHERE s.kind = 'train'",
    )
    (out,) = run_dir.glob(f"slurm/done/ib-*-train.out.{job_id}")
    assert "node: SIGTERM passed on to the job" in out.read_text()  # reached the node
    assert not [j for j in squeue_jobs() if j.startswith(job_id)]  # and the job is gone


def job_fields(job_id: str) -> dict[str, str]:
    """`scontrol show job`'s fields (slurmctld keeps an ended job for MinJobAge, an hour)."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    )
    return dict(f.split("=", 1) for f in shown.stdout.split() if "=" in f)


def squeue_jobs() -> list[str]:
    listed = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
    return listed.stdout.split()


def job_id_key(run_dir: Path, label: str) -> str:
    (key,) = ledger_rows(run_dir, f"SELECT key FROM steps WHERE label = '{label}'")[0]
    return key[:16]


def adopted_trains(run_dir: Path) -> list[tuple]:
    return ledger_rows(
        run_dir,
        "SELECT j.job_id FROM external_jobs j JOIN steps s ON s.key = j.step_key"
        " WHERE s.kind = 'train' AND j.adopted = 1",
    )
