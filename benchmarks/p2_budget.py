"""P2 budget use: one real training job of the reference model (images/gatedconv, local runner,
CPU) under a 120 s budget, through the pipeline's own train step (job file, ledger, runner,
supervisor), measured from its event stream, its ledger row and the child process's lifetime.

    .venv/bin/python benchmarks/p2_budget.py            # 120 s budget
    .venv/bin/python benchmarks/p2_budget.py --quick    # 20 s budget, for trying things out

Targets: the share of the budget clock (run_start → run_stop) spent in training steps ≥ 99 %;
overshoot of the budget ≤ the grace period; harness overhead per job (the harness's wall time
for the job minus the child's own wall time, process start → exit) ≤ 1 s.

Step time comes from the events alone: the adapter's loop does nothing but steps (and, every
progress_every_s, one progress line) between run_start and the loop's exit, which the final
progress event marks; after it come the final checkpoint and run_stop. A mid-run checkpoint
would show as a `checkpoint` event before the final progress and is charged in full to the
non-step time, from the progress event before it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import select
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, report_targets, write_result

from harness.config import load_benchmark
from harness.data.manifest import data_identity
from harness.images import ImageFolder
from harness.ledger import Ledger
from harness.pipeline import Pipeline, RunSummary
from harness.progress import SilentReporter
from harness.runners.base import Launch
from harness.runners.local import LocalProcess, LocalRunner
from harness.running import ensure_data

MODEL = "gatedconv"
SOURCE = "scenes"
# One clock for the harness and the child's lifetime: the kernel's, since boot, which
# /proc/<pid>/stat's start time also counts in.
CLOCK = time.CLOCK_BOOTTIME
TICKS = os.sysconf("SC_CLK_TCK")


def boottime() -> float:
    return time.clock_gettime(CLOCK)


# Event times are wall-clock (time.time()): this maps the boot clock onto it.
WALL_OFFSET = time.time() - boottime()


class _Lifetime:
    """When the child started (kernel's record) and exited (its pidfd turning readable), read
    without reaping it, so the supervisor's own wait() is untouched."""

    def __init__(self, pid: int) -> None:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # field 22 (starttime), counted after the parenthesised command name
        self.started = int(stat.rsplit(")", 1)[1].split()[19]) / TICKS
        self.exited: float | None = None
        fd = os.pidfd_open(pid)
        threading.Thread(target=self._watch, args=(fd,), daemon=True).start()

    def _watch(self, fd: int) -> None:
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        poll.poll()
        self.exited = boottime()
        os.close(fd)


class TimedRunner(LocalRunner):
    """The local runner, noting the child's lifetime."""

    def __init__(self) -> None:
        super().__init__()
        self.lifetime: _Lifetime | None = None

    def start(self, launch: Launch) -> LocalProcess:
        process = super().start(launch)
        self.lifetime = _Lifetime(process.popen.pid)
        return process


def step_time(events: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds in steps and outside them within run_start → run_stop, from event times."""
    start = next(e["time"] for e in events if e["event"] == "run_start")
    stop = next(e["time"] for e in events if e["event"] == "run_stop")
    # The final progress line is the loop's exit: the last progress before the last checkpoint.
    last_ckpt = max(i for i, e in enumerate(events) if e["event"] == "checkpoint")
    final = max(i for i, e in enumerate(events[:last_ckpt]) if e["event"] == "progress")
    outside = stop - events[final]["time"]
    previous = start
    for e in events[:final]:
        if e["event"] == "checkpoint":  # a mid-run save: charge it from the line before it
            outside += e["time"] - previous
        previous = e["time"]
    loop = events[final]["time"] - start
    return {"clock_s": stop - start, "steps_s": stop - start - outside, "loop_s": loop}


def run(budget_s: float) -> dict[str, Any]:
    config = REPO / "benchmark.yaml"
    reporter = SilentReporter(quiet=True)
    ensure_data(config, "sample", reporter)
    profile = load_benchmark(config).profile("sample")
    model = next(m for m in profile.models if m.name == MODEL)
    model = dataclasses.replace(model, train_budget_s=budget_s)
    profile = dataclasses.replace(profile, models=(model,))
    folder = ImageFolder.at(model.image, base=REPO)
    runner = TimedRunner()
    with tempfile.TemporaryDirectory(prefix="p2-budget-") as tmp:
        pipeline = Pipeline(profile, Path(tmp), runner, reporter, image_base=REPO)
        summary = RunSummary(pipeline.run_dir, profile.name, runner.name)
        data_id = data_identity(profile.data_root)
        with Ledger.in_run_dir(pipeline.run_dir) as ledger:
            began = boottime()
            step = pipeline._train(ledger, summary, model, folder, SOURCE, data_id)
            ended = boottime()
            row = ledger.get(step.key)
            events = [
                e
                for e in _events(ledger, step.key)
                if e["event"] in ("run_start", "progress", "checkpoint", "run_stop")
            ]
    assert row is not None and runner.lifetime is not None
    if step.status != "done":
        raise SystemExit(f"the train job failed: {step.reason}")
    life = runner.lifetime
    for _ in range(50):  # the watcher thread may lag the supervisor's wait() by a tick
        if life.exited is not None:
            break
        time.sleep(0.01)
    assert life.exited is not None
    times = step_time(events)
    child_s = life.exited - life.started
    harness_s = ended - began
    run_start = next(e["time"] for e in events if e["event"] == "run_start")
    child_started_wall = life.started + WALL_OFFSET
    return {
        "budget_s": budget_s,
        "grace_s": profile.runtime.grace_s,
        "image_size": profile.image_size,
        "batch_size": model.batch_size,
        "steps": step.result["steps"],
        "stop_reason": step.result["reason"],
        "budget_clock_s": round(times["clock_s"], 3),
        "in_steps_s": round(times["steps_s"], 3),
        "step_share": times["steps_s"] / times["clock_s"],
        "step_share_of_budget": times["steps_s"] / budget_s,
        "step_share_of_child_wall": times["steps_s"] / child_s,
        "after_loop_s": round(times["clock_s"] - times["loop_s"], 3),
        "overshoot_s": round(times["clock_s"] - budget_s, 3),
        "overshoot_harness_view_s": round(step.result["train_s"] - budget_s, 3),
        "setup_s": round(run_start - child_started_wall, 3),
        "child_wall_s": round(child_s, 3),
        "harness_wall_s": round(harness_s, 3),
        "harness_overhead_s": round(harness_s - child_s, 3),
        "overhead_before_start_s": round(life.started - began, 3),
        "overhead_after_exit_s": round(ended - life.exited, 3),
        "ledger_wall_s": round((row.finished_at or 0) - row.started_at, 3),
        "supervisor_wall_s": step.result["wall_s"],
        "events": len(events),
    }


def _events(ledger: Ledger, key: str) -> list[dict[str, Any]]:
    import json

    rows = ledger.conn.execute(
        "SELECT body FROM events WHERE step_key = ? ORDER BY attempt, seq", (key,)
    )
    return [json.loads(r["body"]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 20 s budget")
    parser.add_argument("--budget", type=float, help="budget in seconds (default 120, quick 20)")
    args = parser.parse_args()
    budget = args.budget or (20.0 if args.quick else 120.0)
    load = os.getloadavg()
    m = run(budget)
    m["load_before"] = [round(x, 2) for x in load]
    m["load_after"] = [round(x, 2) for x in os.getloadavg()]
    cpu = machine().get("cpu", "?")
    print(f"P2 budget use: {MODEL}, local runner, CPU ({cpu}), budget {budget:g} s")
    print(f"  load average before/after: {m['load_before']} / {m['load_after']}")
    print(
        f"  {m['steps']} steps; run_start → run_stop {m['budget_clock_s']:.3f} s, in steps"
        f" {m['in_steps_s']:.3f} s: share {m['step_share']:.4%} (of the budget:"
        f" {m['step_share_of_budget']:.4%}); after the loop {m['after_loop_s']:.3f} s"
    )
    print(
        f"  overshoot {m['overshoot_s']:+.3f} s by the events, {m['overshoot_harness_view_s']:+.3f}"
        f" s by the supervisor (run_start seen → exit); grace {m['grace_s']:g} s"
    )
    print(
        f"  setup (process start → run_start, off the budget clock) {m['setup_s']:.3f} s;"
        f" child wall {m['child_wall_s']:.3f} s, of which in steps"
        f" {m['step_share_of_child_wall']:.2%}"
    )
    print(
        f"  harness wall {m['harness_wall_s']:.3f} s − child wall = overhead"
        f" {m['harness_overhead_s']:.3f} s (before its start {m['overhead_before_start_s']:.3f} s,"
        f" after its exit {m['overhead_after_exit_s']:.3f} s); ratio harness/child"
        f" {m['harness_wall_s'] / m['child_wall_s']:.4f}"
    )
    targets = {
        "share of the budget clock in training steps ≥ 99 %": m["step_share"] >= 0.99,
        f"overshoot of the budget ≤ the grace period ({m['grace_s']:g} s)": max(
            m["overshoot_s"], m["overshoot_harness_view_s"]
        )
        <= m["grace_s"],
        "harness overhead per job beyond the child's own wall time ≤ 1 s": m["harness_overhead_s"]
        <= 1.0,
    }
    report_targets(targets)
    # A quick run keeps its own file, so it never replaces the full run's result.
    path = write_result("p2_budget_quick" if args.quick else "p2_budget", m, targets)
    print(f"  wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
