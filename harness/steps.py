"""What a run's steps share: their results, the run's summary, the steps that one job runs
together, and the run context that the step modules (describing, predicting, scoring) work
through. The pipeline implements `RunContext`; the step modules import only this module, so no
harness module imports the pipeline back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from harness.config import Profile
from harness.data.layout import DataLayout
from harness.ledger import Ledger
from harness.progress import Reporter
from harness.runners.base import Launch, Limits, Outcome, Process, Runner


@dataclass(frozen=True)
class StepResult:
    kind: str
    label: str
    key: str
    status: str  # done | failed | cached | skipped
    reason: str
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSummary:
    run_dir: Path
    profile: str
    runner: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == "failed"]


@dataclass(frozen=True)
class JointStep:
    """A ledger step not done yet whose work one job does together with others of its kind
    (a test set's predictions, a model's scores): each keeps its own step, begun before the job
    and finished with its own share of the job's result. Subclasses set `kind`."""

    kind: ClassVar[str]
    label: str
    key: str
    parts: dict[str, Any]  # what `key` is the content key of

    def begin(self, ledger: Ledger) -> int:
        """Mark the step running; its attempt number."""
        return ledger.begin(self.key, self.kind, self.label, self.parts)

    def finish(
        self, pipeline: RunContext, ledger: Ledger, summary: RunSummary, result: dict[str, Any]
    ) -> StepResult:
        """Record `result` (failed where it says so) in the ledger and the run's summary."""
        status: Literal["done", "failed"] = "failed" if result.get("failed") else "done"
        ledger.finish(self.key, status, result=result, reason=result.get("reason"))
        step = StepResult(self.kind, self.label, self.key, status, result.get("reason", ""), result)
        summary.steps.append(step)
        if status == "failed":
            pipeline.reporter.note(f"  failed: {self.label}: {step.reason}")
        return step


class RunContext(Protocol):
    """The run as a step sees it: where things go, what runs them, and the three operations
    every step is made of (a ledger step, a supervised job, the job's limits)."""

    profile: Profile
    run_dir: Path
    runner: Runner
    reporter: Reporter
    layout: DataLayout
    device: str
    gpu: int | None
    weights_dir: Path | None
    run_id: str  # names the run's containers and Slurm jobs

    def step(
        self,
        ledger: Ledger,
        summary: RunSummary,
        kind: str,
        label: str,
        key_parts: dict[str, Any],
        body: Callable[[str, int], dict[str, Any]],
    ) -> StepResult: ...

    def launch(
        self,
        ledger: Ledger,
        key: str,
        attempt: int,
        launch: Launch,
        label: str,
        started: Callable[[Process], None] | None = None,
    ) -> Outcome: ...

    def limits(self, budget_s: float, cap_setting: str = "") -> Limits: ...

    def provenance(self, folder: Path) -> dict[str, str]: ...
