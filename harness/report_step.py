"""The run's report as the last step of the run, where the runner builds it elsewhere: under
`--executor slurm` a Slurm job (harness/executors/node_report.py) writes RUN_DIR/report/ on a
node, reading the ledger read-only, while this harness records the job in the ledger, waits
for it, and on a rerun adopts it like any other job. On one host the run command builds the
report itself after the run (harness/commands/run.py), as before.

The step's key is the set of steps the report shows and how each ended, so a rerun that
changed nothing reuses the report and one that finished more steps writes it again.
"""

from __future__ import annotations

import signal
from typing import Any

from harness import __version__
from harness.errors import HarnessError
from harness.ledger import Ledger
from harness.steps import RunContext, RunSummary, StepResult

KIND = "report"  # the report leaves its own step out (harness/report/rundata.py)


def report_parts(summary: RunSummary) -> dict[str, Any]:
    ended = sorted(
        f"{s.kind} {s.key or s.label} {'done' if s.status == 'cached' else s.status}"
        for s in summary.steps
        if s.kind != KIND
    )
    return {"harness": __version__, "steps": ended}


def report_step(
    pipeline: RunContext, ledger: Ledger, summary: RunSummary, after: tuple[str, ...] = ()
) -> StepResult | None:
    """Have the runner's report job write RUN_DIR/report/, to start once the jobs `after`
    have completed; None where the runner has no report job (the run command builds it)."""
    start = getattr(pipeline.runner, "start_report", None)
    if start is None:
        return None
    run_dir = pipeline.run_dir

    def body(key: str, attempt: int) -> dict[str, Any]:
        job = start(pipeline.run_id, key, after)
        try:
            ledger.add_external_job(key, attempt, job.job_id, job.adopted)
            how = "adopted" if job.adopted else "submitted"
            pipeline.reporter.note(f"  report: Slurm job {job.job_id} ({how})")
            code = job.wait(None)
            info = job.exit_info()
        except BaseException:
            job.send_signal(signal.SIGKILL)  # Ctrl-C: the report job goes with the run
            raise
        finally:
            job.cleanup()
        if code != 0:
            why = info.get("error") or "it ended without writing the report (cancelled?)"
            raise HarnessError(
                f"report job {job.job_id}: {why}",
                f"see {run_dir / 'slurm' / 'done'}/*.out.{job.job_id}; "
                f"`inpaint-bench report {run_dir}` builds it here",
            )
        return {"path": info["path"], "main_markdown": info["main_markdown"]}

    step = pipeline.step(ledger, summary, KIND, "report", report_parts(summary), body)
    if step.status == "cached" and not (run_dir / "report" / "report.md").is_file():
        # Recorded, then the folder went: write it again (the same steps, the same report).
        body(step.key, 0)
    return step
