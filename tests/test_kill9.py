"""kill -9 of `inpaint-bench run` at 20 observed states of the run, each followed by a rerun.

An uninterrupted reference run gives the steps, in the order the harness runs them, and the
results to match. The 20 moments are states a watcher can see in the run folder, never points
on a clock, so that they are hit the same way on an idle or a busy machine: start-up (run.json
written), each step seen running in the ledger, each step seen done in the ledger (the harness
is between steps or starting the next), and the report (every step done, the harness still
alive). One run folder takes the kills in order: its run is killed with SIGKILL as soon as the
first state is seen, the rerun in the same folder at the next, and so on, so that reruns, which
skip what is done, are still killed in every phase. A state that this folder can no longer
reach (its step already done) moves on to a fresh folder, as does a run that finishes before
its state was seen (checked like the final one). After the 20th kill the folder is rerun to the
end.

After every kill: the ledger passes `PRAGMA integrity_check`, no job the killed harness started
outlives it, and every step recorded done before is still done under the same attempt and start
time (never redone). Every completed folder holds the reference run's scores (CSV bytes and ledger
rows) and prediction PNGs, byte for byte: the fixture model is deterministic.

With two CPU slots (`--slots 2`), a second test kills the harness while two trainings are in
flight at once and checks the same guarantees against a one-slot run.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from datatree import tiny_run_args, write_tiny_benchmark
from runs import FAULTY, rendezvous_benchmark, results

BIN = Path(sys.executable).parent / "inpaint-bench"
KILLS = 20
MODELS = ("m0", "m1")
MAX_RUNS = 60  # kills plus completions; far above what the seeded moments need

Steps = dict[str, tuple[str, int, float, float | None]]  # "kind label" → (status, attempt,
# started_at, finished_at)


def write_config(root: Path) -> Path:
    models = {m: {"image": str(FAULTY), "batch_size": 1} for m in MODELS}
    return write_tiny_benchmark(root, models, train=(4, 1), test=3)


def command(config: Path, run_dir: Path) -> list[str]:
    return [str(BIN), *tiny_run_args(config, run_dir), "-q"]


def read_ledger(run_dir: Path) -> tuple[bool, Steps, list[tuple]]:
    """(integrity ok, steps, score rows) of a copy of the ledger and its WAL files: the rerun,
    not this check, is what must recover the ledger a kill left mid-transaction, and a WAL that
    needs recovery cannot be read through a read-only connection at all."""
    path = run_dir / "ledger.sqlite"
    if not path.exists():
        return True, {}, []
    with tempfile.TemporaryDirectory(prefix="ledger-copy-") as tmp:
        for suffix in ("", "-wal", "-shm"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                shutil.copy2(source, Path(tmp) / (path.name + suffix))
        conn = sqlite3.connect(Path(tmp) / path.name)
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            return ok, _steps(conn), _scores(conn)
        finally:
            conn.close()


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _steps(conn: sqlite3.Connection) -> Steps:
    if "steps" not in _tables(conn):
        return {}
    rows = conn.execute("SELECT kind, label, status, attempt, started_at, finished_at FROM steps")
    return {f"{k} {label}": (s, a, t, f) for k, label, s, a, t, f in rows}


def _scores(conn: sqlite3.Connection) -> list[tuple]:
    if "scores" not in _tables(conn):
        return []
    return conn.execute(
        "SELECT s.source, s.model, s.test_set, s.image, s.variant, s.metric, s.value"
        " FROM scores s JOIN steps t ON t.key = s.step_key WHERE t.status = 'done'"
        " ORDER BY 1, 2, 3, 4, 5, 6"
    ).fetchall()


def poll_steps(run_dir: Path) -> Steps:
    """The steps as a running harness has committed them so far ({} while there is no ledger)."""
    path = run_dir / "ledger.sqlite"
    if not path.exists():
        return {}
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return _steps(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return {}  # created but not yet migrated


def jobs_of(run_dir: Path) -> list[int]:
    """Processes naming a path under `run_dir`: once its harness is dead, jobs it left behind."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if f"{run_dir}/".encode() in cmdline:
                found.append(int(entry.name))
    return found


PF_EXITING = 0x4  # /proc/<pid>/stat flags: the process is in exit
SIGKILL_BIT = 1 << (signal.SIGKILL - 1)  # in /proc/<pid>/status' pending-signal masks
DYING_S = 120.0  # how long a killed job may take to exit before the test calls it stuck


def killed(pid: int) -> bool:
    """The process is gone or on its way out: a zombie, exiting, or with SIGKILL pending (the
    harness' death signal is sent before the harness itself can be reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, IndexError):
        return True
    if fields[0] in ("Z", "X") or int(fields[6]) & PF_EXITING:
        return True
    pending = (line.split() for line in status.splitlines())
    return any(p[0] in ("SigPnd:", "ShdPnd:") and int(p[1], 16) & SIGKILL_BIT for p in pending)


def assert_no_job_outlives(run_dir: Path, when: str) -> None:
    """No job of `run_dir` runs on after its harness was killed and reaped: each one left is
    already killed (judged from its state, not from how long it takes), and then goes."""
    suspects = [pid for pid in jobs_of(run_dir) if not killed(pid)]
    if suspects:  # a killed process shows neither mark for an instant, between the two: look again
        time.sleep(0.1)
    orphans = [pid for pid in suspects if not killed(pid)]
    assert orphans == [], f"{when}: jobs outlived the killed harness: {orphans}"
    deadline = time.monotonic() + DYING_S  # a stuck kernel, not a timing
    while alive := jobs_alive(run_dir):
        assert time.monotonic() < deadline, f"{when}: killed jobs still exiting: {alive}"
        time.sleep(0.1)


def jobs_alive(run_dir: Path) -> list[int]:
    """Jobs of `run_dir` still alive, zombies left out (a reaped child is gone)."""
    alive = []
    for pid in jobs_of(run_dir):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


REPORT = "report"  # the state after the last step: report building and exit


@dataclass(frozen=True)
class Moment:
    """A state of the run that a watcher can see: `kind` of `step` ("kind label" in the ledger)."""

    kind: str  # "start-up", "running", "done" or REPORT
    step: str | None = None

    def __str__(self) -> str:
        return self.kind if self.step is None else f"{self.step} {self.kind}"


def moments_of(steps: Steps) -> list[Moment]:
    """Start-up, each step running and done (in the reference's order), the report: 20 states
    for the fixture's 9 steps."""
    order = sorted(steps, key=lambda k: steps[k][2])
    inner = [Moment(kind, key) for key in order for kind in ("running", "done")]
    return [Moment("start-up"), *inner, Moment(REPORT)]


def reached(moment: Moment, run_dir: Path, steps: Steps, launched: float, total: int) -> bool:
    """Whether this run (launched at `launched`) is in `moment`'s state now."""
    if moment.kind == "start-up":
        return (run_dir / "run.json").exists()
    if moment.kind == REPORT:
        return len(steps) == total and all(v[0] == "done" for v in steps.values())
    mine = steps.get(moment.step or "")
    if mine is None:
        return False
    if moment.kind == "running":
        return mine[0] == "running" and mine[2] >= launched
    return mine[0] == "done" and (mine[3] or 0.0) >= launched


def reachable(moment: Moment, done: Steps) -> bool:
    """A rerun skips steps done in its folder: their states cannot come again there."""
    return moment.step is None or moment.step not in done


def run_to(moment: Moment, argv: list[str], run_dir: Path, total: int) -> int | None:
    """Run the harness and SIGKILL it as soon as `moment`'s state is seen; None if killed, else
    its exit status (it finished before the state was seen)."""
    launched = time.time()
    harness = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while harness.poll() is None:
        if reached(moment, run_dir, poll_steps(run_dir), launched, total):
            os.kill(harness.pid, signal.SIGKILL)
            harness.wait()
            return None
        time.sleep(0.01)
    return harness.returncode


def phase(steps: Steps, total: int) -> str:
    running = [k for k, v in steps.items() if v[0] == "running"]
    if running:
        return running[0].split(" ")[0]
    if len(steps) == total and all(v[0] == "done" for v in steps.values()):
        return REPORT
    return "start-up" if not steps else "between steps"


@dataclass
class Tally:
    kills: int = 0
    completed: int = 0
    folders: int = 1
    phases: list[str] = field(default_factory=list)
    moments: list[str] = field(default_factory=list)
    done_checked: int = 0


def never_redone(before: Steps, after: Steps, when: str) -> int:
    for key, seen in before.items():
        assert after[key][:3] == seen[:3], f"{when}: {key} was redone: {seen} then {after[key]}"
    return len(before)


def check_completed(run_dir: Path, reference: dict[str, bytes], scores: list[tuple]) -> Steps:
    ok, steps, rows = read_ledger(run_dir)
    assert ok, f"{run_dir}: ledger fails integrity_check"
    assert steps and all(v[0] == "done" for v in steps.values()), steps
    assert results(run_dir) == reference, f"{run_dir}: results differ from the reference run"
    assert rows == scores, f"{run_dir}: ledger scores differ from the reference run"
    outputs = [*(run_dir / "scores").rglob("*"), *(run_dir / "predictions").rglob("*")]
    assert not [p for p in outputs if ".tmp" in p.name], "temporary files left among results"
    assert (run_dir / "report" / "report.md").is_file()
    return steps


@pytest.mark.slow
def test_kill_9_at_20_moments_loses_nothing_and_redoes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    reference_dir = tmp_path / "reference"
    first = subprocess.run(command(config, reference_dir), capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    reference = results(reference_dir)
    _, reference_steps, scores = read_ledger(reference_dir)
    assert len([k for k in reference if k.endswith(".png")]) == 3 * len(MODELS)
    assert scores
    total = len(reference_steps)
    moments = moments_of(reference_steps)
    assert len(moments) == KILLS, [str(m) for m in moments]

    tally = Tally()
    run_dir = tmp_path / "run-1"
    done: Steps = {}  # every step seen done in this folder, as it was then
    pending = list(moments)
    for _ in range(MAX_RUNS):
        if not pending:
            break
        if not reachable(pending[0], done):
            tally.folders += 1
            run_dir = tmp_path / f"run-{tally.folders}"
            done = {}
        status = run_to(pending[0], command(config, run_dir), run_dir, total)
        if status is not None:
            # Finished before the moment came: a rerun that completed. Next, a fresh folder.
            assert status == 0, f"{run_dir}: exit status {status}"
            tally.completed += 1
            steps = check_completed(run_dir, reference, scores)
            tally.done_checked += never_redone(done, steps, "completed rerun")
            tally.folders += 1
            run_dir = tmp_path / f"run-{tally.folders}"
            done = {}
            continue
        moment = pending.pop(0)
        tally.moments.append(str(moment))
        tally.kills += 1
        assert_no_job_outlives(run_dir, f"kill {tally.kills}")
        ok, steps, _ = read_ledger(run_dir)
        assert ok, f"kill {tally.kills}: the ledger fails integrity_check"
        # Killed on seeing run.json: within the watcher's poll the harness may already have
        # made the masked test inputs (milliseconds), but no model step has begun: that is
        # still a kill at start-up.
        at_start = moment.kind == "start-up" and all(k.startswith("inputs ") for k in steps)
        tally.phases.append("start-up" if at_start else phase(steps, total))
        tally.done_checked += never_redone(done, steps, f"kill {tally.kills}")
        done.update({k: v for k, v in steps.items() if v[0] == "done"})
    assert tally.kills == KILLS, f"only {tally.kills} kills in {MAX_RUNS} runs"

    final = subprocess.run(command(config, run_dir), capture_output=True, text=True)
    assert final.returncode == 0, final.stdout + final.stderr
    tally.completed += 1
    steps = check_completed(run_dir, reference, scores)
    tally.done_checked += never_redone(done, steps, "final rerun")
    attempts = sum(v[1] for v in steps.values())
    phases = {"start-up", "describe", "train", "predict", "score", REPORT}
    assert phases <= set(tally.phases), f"phases hit: {tally.phases} at {tally.moments}"
    print(
        f"\nkill -9: reference run of {total} steps; {tally.kills} kills at {tally.moments}"
        f" over {tally.folders} run folder(s);"
        f" {tally.completed} runs completed, each equal to the reference; {tally.done_checked}"
        f" done-step checks, 0 redone; attempts in the last ledger: {attempts}; killed during:"
        f" {tally.phases}"
    )


@pytest.mark.slow
def test_kill_9_with_two_jobs_in_flight_leaves_no_orphan_and_resumes(tmp_path: Path) -> None:
    """Two CPU slots: the harness is killed while both trainings run (each waits at a
    rendezvous for the other, so both are seen up at once); the rerun finishes with the
    results of a one-slot run, and only the two killed trainings run a second time."""
    meeting = rendezvous_benchmark(tmp_path, MODELS)
    config, env = meeting.config, meeting.env
    reference_dir = tmp_path / "reference"  # one slot: each training meets only itself
    first = subprocess.run(
        command(config, reference_dir), capture_output=True, text=True, env=env(1)
    )
    assert first.returncode == 0, first.stdout + first.stderr
    reference = results(reference_dir)
    _, reference_steps, scores = read_ledger(reference_dir)
    meeting.clear()

    run_dir = tmp_path / "run"
    argv = [*command(config, run_dir), "--slots", "2"]
    harness = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(len(MODELS))
    )
    try:
        # Both trainings are up once both have written their rendezvous files.
        while meeting.arrived() < len(MODELS):
            assert harness.poll() is None, "the harness ended before both jobs were up"
            time.sleep(0.01)
        in_flight = jobs_alive(run_dir)
        os.kill(harness.pid, signal.SIGKILL)
    finally:
        harness.wait()
    assert len(in_flight) >= len(MODELS), f"jobs seen in flight: {in_flight}"
    assert_no_job_outlives(run_dir, "two jobs in flight")
    ok, killed, _ = read_ledger(run_dir)
    assert ok, "the ledger fails integrity_check"
    trains = {k: v for k, v in killed.items() if k.startswith("train ")}
    assert sorted(trains) == [f"train {m} on scenes" for m in MODELS]
    assert {v[:2] for v in trains.values()} == {("running", 1)}

    meeting.clear()
    rerun = subprocess.run(argv, capture_output=True, text=True, env=env(len(MODELS)))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    steps = check_completed(run_dir, reference, scores)
    assert set(steps) == set(reference_steps), "steps differ from the one-slot run's"
    never_redone({k: v for k, v in killed.items() if v[0] == "done"}, steps, "rerun")
    attempts = {k: v[1] for k, v in steps.items()}
    assert attempts == {k: 2 if k in trains else 1 for k in steps}, attempts
