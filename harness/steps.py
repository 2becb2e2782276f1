"""What a run's steps share: their results, the run's summary, and the run context that the
step modules (describing, scoring) work through. The pipeline implements `RunContext`; the step
modules import only this module, so no harness module imports the pipeline back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
