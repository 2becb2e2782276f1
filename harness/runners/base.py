"""What every runner shares: the launch description, the started process, and its outcome."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

Command = Literal["train", "predict", "describe", "score"]  # score: the metrics image


@dataclass(frozen=True)
class Mounts:
    """Host folders behind the contract's mount points.

    `data` maps a name to a host folder, seen by the model as $INPAINT_DATA/<name>, read-only.
    Only what the job needs is listed: a test set's ground truth never is.
    """

    data: dict[str, Path]
    job: Path
    checkpoints: Path
    outputs: Path


@dataclass(frozen=True)
class Limits:
    """The harness's own clock around a job (the model keeps its own budget too).

    setup_cap_s: longest wait for `run_start` (initialisation is off the budget clock).
    budget_s: training budget from `run_start`; for predict/describe a run-time cap.
    grace_s: after budget + grace, SIGTERM; after another grace, SIGKILL.
    memory_bytes: the job's memory limit (docker: the container's; local: RLIMIT_DATA on CPU
        jobs); None for none.
    cap_setting: the benchmark.yaml setting behind a predict/describe run-time cap, named in
        the reason when the cap kills a job, so the user knows what to raise.
    """

    setup_cap_s: float
    budget_s: float
    grace_s: float
    memory_bytes: int | None = None
    cap_setting: str = ""


@dataclass(frozen=True)
class Launch:
    model: str
    image: str
    command: Command
    mounts: Mounts
    limits: Limits
    log_path: Path
    gpu: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    key: str = ""  # the ledger key of the step: names its container
    run_id: str = ""  # identifies the run folder: labels its containers
    uid_gid: tuple[int, int] | None = None  # docker: run as this user (default: the invoker)


class Process(Protocol):
    """A started job. `stdout_chunks` blocks and ends at EOF."""

    def stdout_chunks(self) -> Iterator[bytes]: ...

    def send_signal(self, signum: int) -> None: ...

    def wait(self, timeout: float | None) -> int | None: ...

    def oom_killed(self) -> bool: ...

    def cleanup(self) -> None: ...


class Runner(Protocol):
    name: str

    def start(self, launch: Launch) -> Process: ...


@dataclass
class Outcome:
    """How a job ended, in terms a user can act on."""

    status: Literal["completed", "stopped", "failed"]
    reason: str
    exit_code: int | None
    setup_s: float
    run_s: float
    wall_s: float
    steps: int = 0
    images_seen: int = 0
    signals_sent: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"
