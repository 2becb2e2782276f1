"""The report step's job handling without a cluster: a chained report job that Slurm dropped
(its score job did not complete) is submitted again with nothing to wait for, and a report job
that fails fails the step with its reason."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.report_step import ReportChain, report_step
from harness.steps import RunSummary, StepResult


class FakeJob:
    def __init__(self, job_id: str, exit_info: dict[str, Any]) -> None:
        self.job_id, self.name, self.adopted = job_id, f"job{job_id}", False
        self.info = exit_info

    def wait(self, timeout: float | None) -> int:
        return int(self.info.get("exit_code", -9))

    def exit_info(self) -> dict[str, Any]:
        return dict(self.info)

    def send_signal(self, signum: int) -> None:
        raise AssertionError("nothing to cancel here")

    def cleanup(self) -> None:
        pass


class FakeRunner:
    name = "local"

    def __init__(self, jobs: list[FakeJob]) -> None:
        self.jobs = jobs
        self.submitted: list[tuple[str, ...]] = []
        self.released: list[str] = []

    def start_report(self, run_id: str, after: tuple[str, ...] = ()) -> FakeJob:
        self.submitted.append(after)
        return self.jobs[len(self.submitted) - 1]

    def release_report(self, job: FakeJob) -> None:
        self.released.append(job.job_id)


class FakeLedger:
    def __init__(self) -> None:
        self.jobs: list[tuple[str, int, str, bool]] = []

    def add_external_job(self, key: str, attempt: int, job_id: str, adopted: bool) -> None:
        self.jobs.append((key, attempt, job_id, adopted))


def pipeline(tmp_path: Path, runner: FakeRunner) -> Any:
    def step(ledger: Any, summary: RunSummary, kind: str, label: str, parts: Any, body: Any):
        try:
            result = body("k" * 64, 1)
        except Exception as error:
            return StepResult(kind, label, "k" * 64, "failed", str(error))
        return StepResult(kind, label, "k" * 64, "done", "", result)

    quiet = SimpleNamespace(note=lambda message: None)
    return SimpleNamespace(
        run_id="run1", runner=runner, run_dir=tmp_path, reporter=quiet, step=step
    )


DONE = {"exit_code": 0, "path": "/r/report", "main_markdown": "| table |"}


def test_a_chained_report_job_slurm_dropped_is_submitted_again_unchained(tmp_path: Path) -> None:
    runner = FakeRunner([FakeJob("50", {}), FakeJob("51", DONE)])
    run = pipeline(tmp_path, runner)
    chain = ReportChain(run)
    chain.started(SimpleNamespace(job_id="49"))  # the last score job
    ledger = FakeLedger()
    step = report_step(run, ledger, RunSummary(tmp_path, "tiny", "local"), chain)  # type: ignore[arg-type]
    assert step is not None and step.status == "done"
    assert step.result == {"path": "/r/report", "main_markdown": "| table |"}
    assert runner.submitted == [("49",), ()]
    assert runner.released == ["50", "51"]
    assert [job_id for _, _, job_id, _ in ledger.jobs] == ["50", "51"]


def test_a_report_job_that_fails_fails_the_step_with_its_reason(tmp_path: Path) -> None:
    error = {"exit_code": 1, "error": "/r/ledger.sqlite: no ledger"}
    runner = FakeRunner([FakeJob("60", error)])
    step = report_step(
        pipeline(tmp_path, runner),
        FakeLedger(),
        RunSummary(tmp_path, "tiny", "local"),  # type: ignore[arg-type]
    )
    assert step is not None and step.status == "failed"
    assert step.reason.startswith("report job 60: /r/ledger.sqlite: no ledger")
    assert f"`inpaint-bench report {tmp_path}` builds it here" in step.reason
    assert runner.submitted == [()]  # not chained: no second try
