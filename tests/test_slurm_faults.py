"""Two faults of `--executor slurm` (docs/scaling.md), each made to happen, never waited for:

- the harness dies between `sbatch` returning and the job's .jobid file being written, and the
  job ends before the rerun: the rerun must adopt the ended job (its node wrote its job ID into
  the exit file), not submit the step again;
- a node does not see the run folder (the login node's /tmp or local disk): the run must stop
  with an error that names the run folder and says how to choose a shared one.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from runs import faulty_launch
from slurmhost import STUCK_S, slurm_conf, wait_finished

from harness.errors import HarnessError
from harness.executors import node, slurm
from harness.executors.node import launch_to_json
from harness.executors.slurm import SlurmJob, SlurmRunner
from harness.runners.base import Launch
from harness.runners.local import LocalRunner


def failing_launch(tmp_path: Path) -> Launch:
    """A launch the node cannot start (no such image): the job ends at once, exit file written.
    Its run ID is new, so that its job name is too: slurmctld keeps ended jobs, and a later
    session's tmp_path can be an earlier one's (pytest reuses a removed folder's number)."""
    run_id = uuid.uuid4().hex[:12]
    launch = faulty_launch(tmp_path)
    return dataclasses.replace(launch, image=str(tmp_path / "no-such-image"), run_id=run_id)


def test_the_node_creates_its_events_file_and_names_its_job_in_the_exit_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    spec = tmp_path / "job.launch.json"
    doc = {
        "launch": launch_to_json(failing_launch(tmp_path)),
        "events": str(tmp_path / "job.events"),
        "exit": str(tmp_path / "job.exit.json"),
        "upstream": {},
    }
    spec.write_text(json.dumps(doc))
    assert node.main(spec) == 1
    assert (tmp_path / "job.events").read_bytes() == b""  # there, though the job never ran
    exit_info = json.loads((tmp_path / "job.exit.json").read_text())
    assert (exit_info["exit_code"], exit_info["job_id"]) == (1, "4242")


def no_submission(calls: list[list[str]]) -> object:
    def fake_slurm(args: list[str]) -> str:
        calls.append(args)
        return "" if args[0] == "squeue" else pytest.fail(f"called {args}")

    return fake_slurm


def job_files(run_dir: Path, launch: Launch) -> tuple[Path, Path]:
    """(exit file, .jobid file) where SlurmRunner keeps them for this launch."""
    base = run_dir / "slurm" / f"ib-{launch.run_id}-{launch.key[:16]}-{launch.command}"
    base.parent.mkdir(parents=True, exist_ok=True)
    return base.with_suffix(".exit.json"), base.with_suffix(".jobid")


def test_an_ended_job_without_its_jobid_file_is_adopted_from_its_exit_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(slurm, "_slurm", no_submission(calls))
    launch = faulty_launch(tmp_path)
    exit_file, _ = job_files(tmp_path / "run", launch)
    exit_file.write_text(json.dumps({"exit_code": 0, "data_changes": [], "job_id": "555"}))
    job = SlurmRunner(LocalRunner(), tmp_path / "run").start(launch)
    assert (job.job_id, job.adopted, job.wait(None)) == ("555", True, 0)
    assert [c[0] for c in calls] == ["squeue"]


def test_an_exit_file_from_before_job_ids_is_adopted_by_its_jobid_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run folders of the first cut: the exit file has no job ID, the .jobid file has it."""
    monkeypatch.setattr(slurm, "_slurm", no_submission([]))
    launch = faulty_launch(tmp_path)
    exit_file, recorded = job_files(tmp_path / "run", launch)
    exit_file.write_text(json.dumps({"exit_code": 3, "data_changes": []}))
    recorded.write_text("556\n")
    job = SlurmRunner(LocalRunner(), tmp_path / "run").start(launch)
    assert (job.job_id, job.adopted, job.wait(None)) == ("556", True, 3)


def test_an_adopted_job_hands_its_outputs_to_the_new_attempts_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A predict-like step: attempt 1's job is submitted, the harness dies, the job ends, and
    the rerun (attempt 2) wipes the step's work folder and wants the outputs in outputs-2."""
    monkeypatch.setattr(slurm, "_slurm", lambda args: "" if args[0] == "squeue" else "4242\n")
    work = tmp_path / "work"
    first = faulty_launch(work)
    outputs_1 = work / "outputs-1"
    first.mounts.job.write_text(json.dumps({"output": f"{outputs_1.resolve()}/scores_0.csv"}))
    first = dataclasses.replace(first, mounts=dataclasses.replace(first.mounts, outputs=outputs_1))
    run_dir = tmp_path / "run"
    job = SlurmRunner(LocalRunner(), run_dir).start(first)
    own = run_dir / "slurm" / f"{job.name}.outputs"
    copy = json.loads((run_dir / "slurm" / f"{job.name}.job" / "job.json").read_text())
    assert copy == {"output": f"{own.resolve()}/scores_0.csv"}  # the job writes to its own
    (own / "scores_0.csv").write_text("the job's result")  # what the node's job wrote
    exit_file, recorded = job_files(run_dir, first)
    exit_file.write_text(json.dumps({"exit_code": 0, "job_id": "4242"}))
    recorded.unlink()  # the harness died before writing it

    shutil.rmtree(work)  # the rerun's attempt 2 starts afresh
    again = dataclasses.replace(
        faulty_launch(work), mounts=dataclasses.replace(first.mounts, outputs=work / "outputs-2")
    )
    adopted = SlurmRunner(LocalRunner(), run_dir).start(again)
    assert (adopted.job_id, adopted.adopted, adopted.wait(None)) == ("4242", True, 0)
    assert (work / "outputs-2" / "scores_0.csv").read_text() == "the job's result"


def queue_says(state: str, calls: list[list[str]]) -> object:
    def fake_slurm(args: list[str]) -> str:
        calls.append(args)
        return f"77 {state}\n" if args[0] == "squeue" and state else ""

    return fake_slurm


def test_a_job_running_long_without_its_events_file_stops_the_run_naming_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(slurm, "_slurm", queue_says("RUNNING", calls))
    monkeypatch.setattr(slurm, "NODE_START_S", 0.0)  # "long": from the first look
    run_dir = tmp_path / "run"
    folder = run_dir / "slurm"
    job = SlurmJob("77", "ib-x", folder / "ib-x.events", folder / "ib-x.exit.json", False)
    with pytest.raises(HarnessError) as raised:
        job.wait(None)
    assert f"{run_dir}: Slurm job 77 (ib-x) ran for 0 s without creating" in raised.value.message
    assert "filesystem the login node and the nodes share" in raised.value.message
    assert "--run-dir" in str(raised.value.hint)
    assert ["scancel", "77"] in calls  # it would never have got further


def test_a_job_the_harness_cancelled_before_it_ran_is_no_run_folder_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while pending (the setup cap ran out in the queue): no node ever saw it, and the
    supervisor's reason says why; the run goes on."""
    calls: list[list[str]] = []
    monkeypatch.setattr(slurm, "_slurm", queue_says("", calls))
    folder = tmp_path / "run" / "slurm"
    job = SlurmJob("78", "ib-y", folder / "ib-y.events", folder / "ib-y.exit.json", False)
    job.send_signal(signal.SIGKILL)
    assert job.wait(None) == -signal.SIGKILL
    # the node first (SIGUSR1: it kills a container), then the job
    assert [c for c in calls if c[0] == "scancel"] == [
        ["scancel", "-b", "-s", "USR1", "78"],
        ["scancel", "78"],
    ]


def slurm_jobs_named(name: str) -> list[str]:
    """IDs of every job slurmctld still knows by this name, ended ones included (MinJobAge)."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True
    )
    found = []
    for line in shown.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("JobName") == name:
            found.append(fields["JobId"])
    return found


@pytest.mark.slow
def test_a_harness_death_before_the_jobid_file_is_written_submits_nothing_again(
    tmp_path: Path,
) -> None:
    slurm_conf()
    launch = failing_launch(tmp_path)
    run_dir = tmp_path / "run"
    first = SlurmRunner(LocalRunner(), run_dir).start(launch)
    assert wait_finished(first.job_id) == "FAILED"  # the node's exit status 1: see below
    # The harness died before this file was written; the job ended while none followed it.
    _, recorded = job_files(run_dir, launch)
    recorded.unlink()
    again = SlurmRunner(LocalRunner(), run_dir).start(launch)
    assert (again.job_id, again.adopted) == (first.job_id, True)
    assert again.wait(STUCK_S) == 1  # the node's outcome: it could not start the image
    assert slurm_jobs_named(first.name) == [first.job_id]


@pytest.mark.slow
def test_a_node_that_does_not_see_the_run_folder_stops_the_run_naming_it(
    tmp_path: Path,
) -> None:
    slurm_conf()
    launch = failing_launch(tmp_path)
    run_dir = tmp_path / "run"
    # Held in the queue until the fault is in place: then the node cannot read what the login
    # node wrote for it, as on a run folder only the login node sees.
    job = SlurmRunner(LocalRunner(), run_dir, ("--hold",)).start(launch)
    try:
        (run_dir / "slurm" / f"{job.name}.launch.json").unlink()
        subprocess.run(["scontrol", "release", job.job_id], check=True)
        with pytest.raises(HarnessError) as raised:
            job.wait(STUCK_S)
    finally:
        subprocess.run(["scancel", job.job_id], check=False)
    assert f"{run_dir}: Slurm job {job.job_id} ({job.name}) left the queue" in raised.value.message
    assert "must be on a filesystem the login node and the nodes share" in raised.value.message
    assert "--run-dir" in str(raised.value.hint)
    assert not job.exit_file.exists() and not job.events.exists()
