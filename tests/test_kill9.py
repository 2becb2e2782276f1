"""kill -9 of `inpaint-bench run` at 20 seeded random moments, each followed by a rerun.

A reference run, uninterrupted, gives the run's length T, its timeline (when each step began
and ended) and the results to match. 20 moments are drawn uniformly from (0, T) by a seeded
generator and sorted; each is placed in the reference's timeline as "start-up", "step S plus x
seconds" or "report plus x seconds". One run folder takes the kills in order: its run is killed
with SIGKILL when it reaches the first moment (S begins in the ledger, then x seconds), the rerun
in the same folder at the next, and so on, so that reruns, which skip what is done, are still
killed in every phase. A rerun that finishes before its moment completed (checked like the final
one) and the moment moves on to a fresh folder. After the 20th kill the folder is rerun to the end.

After every kill: the ledger passes `PRAGMA integrity_check`, no job the killed harness started
outlives it, and every step recorded done before is still done under the same attempt and start
time (never redone). Every completed folder holds the reference run's scores (CSV bytes and ledger
rows) and prediction PNGs, byte for byte: the fixture model is deterministic.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from datatree import tiny_run_args, write_tiny_benchmark
from runs import FAULTY

BIN = Path(sys.executable).parent / "inpaint-bench"
KILLS = 20
SEED = 20240917
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
    """(integrity ok, steps, score rows) read through a read-only connection: the rerun, not
    this check, is what must recover a ledger left mid-transaction."""
    path = run_dir / "ledger.sqlite"
    if not path.exists():
        return True, {}, []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
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


def results(run_dir: Path) -> dict[str, bytes]:
    """Every score CSV and prediction PNG of a run, by relative path (the CSVs' sidecars hold
    timings, so they are left out)."""
    files = [*(run_dir / "scores").rglob("*.csv"), *(run_dir / "predictions").rglob("*.png")]
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(files)}


REPORT = "report"  # the anchor of moments after the last step: report building and exit


@dataclass(frozen=True)
class Moment:
    """A point of the reference run's timeline, as the step running then and how far into it."""

    at: float  # seconds after the reference run started
    anchor: str | None  # "kind label" of that step; None: start-up, before any step; or REPORT
    offset: float  # seconds after the anchor began (after launch, for start-up)


def draw_moments(steps: Steps, started: float, length: float, rng: random.Random) -> list[Moment]:
    """KILLS moments spread uniformly over (0, length), sorted, each placed in its step."""
    spans = sorted((v[2] - started, v[3] - started, k) for k, v in steps.items())
    last = max(end for _, end, _ in spans)
    moments = []
    for at in sorted(rng.uniform(0.0, length) for _ in range(KILLS)):
        if at < spans[0][0]:
            moments.append(Moment(at, None, at))
        elif at >= last:
            moments.append(Moment(at, REPORT, at - last))
        else:
            begin, _, key = max(span for span in spans if span[0] <= at)
            moments.append(Moment(at, key, at - begin))
    return moments


def anchor_time(moment: Moment, steps: Steps, launched: float, total: int) -> float | None:
    """When this run reached the moment's anchor (time.time()), or None while it has not."""
    if moment.anchor is None:
        return launched
    if moment.anchor == REPORT:
        if len(steps) < total or any(v[0] != "done" for v in steps.values()):
            return None
        return max(launched, *(v[3] or 0.0 for v in steps.values()))
    mine = steps.get(moment.anchor)
    if mine is not None and mine[2] >= launched:
        return mine[2]
    if mine is not None and mine[0] == "done":
        # Done before this run began (an earlier kill overshot it): anchor on its first step.
        begun = [v[2] for v in steps.values() if v[2] >= launched]
        return min(begun) if begun else None
    return None


def run_to(moment: Moment, argv: list[str], run_dir: Path, total: int) -> int | None:
    """Run the harness and SIGKILL it at `moment`; None if killed, else its exit status."""
    launched = time.time()
    harness = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline: float | None = None
    while harness.poll() is None:
        if deadline is None:
            begin = anchor_time(moment, poll_steps(run_dir), launched, total)
            deadline = None if begin is None else begin + moment.offset
        if deadline is not None and time.time() >= deadline:
            os.kill(harness.pid, signal.SIGKILL)
            harness.wait()
            return None
        time.sleep(0.02)
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
    started = time.time()
    first = subprocess.run(command(config, reference_dir), capture_output=True, text=True)
    length = time.time() - started
    assert first.returncode == 0, first.stdout + first.stderr
    reference = results(reference_dir)
    _, reference_steps, scores = read_ledger(reference_dir)
    assert len([k for k in reference if k.endswith(".png")]) == 3 * len(MODELS)
    assert scores
    total = len(reference_steps)
    moments = draw_moments(reference_steps, started, length, random.Random(SEED))

    tally = Tally()
    run_dir = tmp_path / "run-1"
    done: Steps = {}  # every step seen done in this folder, as it was then
    pending = list(moments)
    for _ in range(MAX_RUNS):
        if not pending:
            break
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
        pending.pop(0)
        tally.kills += 1
        deadline = time.monotonic() + 10
        while jobs_of(run_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert jobs_of(run_dir) == [], f"kill {tally.kills}: a job outlived the killed harness"
        ok, steps, _ = read_ledger(run_dir)
        assert ok, f"kill {tally.kills}: the ledger fails integrity_check"
        tally.phases.append(phase(steps, total))
        tally.done_checked += never_redone(done, steps, f"kill {tally.kills}")
        done.update({k: v for k, v in steps.items() if v[0] == "done"})
    assert tally.kills == KILLS, f"only {tally.kills} kills in {MAX_RUNS} runs"

    final = subprocess.run(command(config, run_dir), capture_output=True, text=True)
    assert final.returncode == 0, final.stdout + final.stderr
    tally.completed += 1
    steps = check_completed(run_dir, reference, scores)
    tally.done_checked += never_redone(done, steps, "final rerun")
    attempts = sum(v[1] for v in steps.values())
    print(
        f"\nkill -9: reference run {length:.1f} s, {total} steps; {tally.kills} kills at"
        f" {[round(m.at, 1) for m in moments]} s over {tally.folders} run folder(s);"
        f" {tally.completed} runs completed, each equal to the reference; {tally.done_checked}"
        f" done-step checks, 0 redone; attempts in the last ledger: {attempts}; killed during:"
        f" {tally.phases}"
    )
