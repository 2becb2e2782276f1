"""The run's report as the last step of the run, where the runner builds it elsewhere: under
`--executor slurm` a Slurm job (harness/executors/node_report.py) writes RUN_DIR/report/ on a
node, reading the ledger read-only, while this harness records the job in the ledger, waits
for it, and on a rerun adopts it like any other job. On one host the run command builds the
report itself after the run (harness/commands/run.py), as before.

The step's key is the set of steps the report shows and how each ended, so a rerun that
changed nothing reuses the report and one that finished more steps writes it again.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from typing import Any

from harness import __version__
from harness.errors import HarnessError
from harness.ledger import Ledger
from harness.runners.base import Process
from harness.steps import RunContext, RunSummary, StepResult

log = logging.getLogger(__name__)
KIND = "report"  # the report leaves its own step out (harness/report/rundata.py)


def report_parts(summary: RunSummary) -> dict[str, Any]:
    ended = sorted(
        f"{s.kind} {s.key or s.label} {'done' if s.status == 'cached' else s.status}"
        for s in summary.steps
        if s.kind != KIND
    )
    return {"harness": __version__, "steps": ended}


class ReportChain:
    """The report job, submitted as soon as the run's last score job has started, with
    `--dependency=afterok` on it: on a busy cluster it waits in the queue while that job runs
    instead of after it. Score rows reach the ledger only after their job ends (this harness
    writes them), so the report job, once started, also waits for `release_report` below."""

    def __init__(self, pipeline: RunContext) -> None:
        self.run_id = pipeline.run_id
        self.runner = pipeline.runner
        self.job: Any = None

    def started(self, process: Process) -> None:
        """A score job started: chain the report on it (instead of on the one before)."""
        start = getattr(self.runner, "start_report", None)
        job_id = getattr(process, "job_id", None)
        if start is None or job_id is None:
            return
        self.drop()
        try:
            self.job = start(self.run_id, (str(job_id),))
        except HarnessError as error:  # sbatch refused: submitted when ready instead
            log.warning("the report job could not be chained on job %s: %s", job_id, error)

    def take(self) -> Any:
        job, self.job = self.job, None
        return job

    def drop(self) -> None:
        """Cancel the chained job (the run stopped, or its report was already written)."""
        job = self.take()
        if job is not None:
            with contextlib.suppress(HarnessError):
                job.send_signal(signal.SIGKILL)
            job.cleanup()


def report_step(
    pipeline: RunContext, ledger: Ledger, summary: RunSummary, chain: ReportChain | None = None
) -> StepResult | None:
    """Have the runner's report job (the one `chain` submitted, else a new one) write
    RUN_DIR/report/; None where the runner has no report job (the run command builds it)."""
    runner: Any = pipeline.runner  # a SlurmRunner where it has start_report
    start = getattr(runner, "start_report", None)
    if start is None:
        return None
    run_dir = pipeline.run_dir

    def follow(job: Any, key: str, attempt: int) -> tuple[int | None, dict[str, Any]]:
        try:
            ledger.add_external_job(key, attempt, job.job_id, job.adopted)
            how = "adopted" if job.adopted else "submitted"
            pipeline.reporter.note(f"  report: Slurm job {job.job_id} ({how})")
            runner.release_report(job)  # every score row is in the ledger now
            code = job.wait(None)
            return code, job.exit_info()
        except BaseException:
            with contextlib.suppress(HarnessError):  # Ctrl-C: the report job goes with the run
                job.send_signal(signal.SIGKILL)
            raise
        finally:
            job.cleanup()

    def body(key: str, attempt: int) -> dict[str, Any]:
        chained = chain.take() if chain is not None else None
        job = chained or start(pipeline.run_id, ())
        code, info = follow(job, key, attempt)
        if chained is not None and not info:
            # Gone without a word: its score job did not complete (the node could not start
            # it, or it was cancelled: Slurm then drops the chained job, --kill-on-invalid-dep),
            # yet the report must show that failure.
            job = start(pipeline.run_id, ())
            code, info = follow(job, key, attempt)
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
