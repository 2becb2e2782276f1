"""Progress reporting that domain code can call without knowing about terminals.

Domain functions take a `Reporter`; the CLI passes a rich one on a TTY and a silent one under
`--quiet`, `CI=true` or when stderr is not a terminal (stdout stays for results).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from rich.console import Console

T = TypeVar("T")


class Reporter(Protocol):
    def track(self, items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
        """Yield `items`, showing progress towards `total`."""
        ...

    def note(self, message: str) -> None:
        """Say one line of status on stderr."""
        ...


class SilentReporter:
    """Shows nothing; notes still reach stderr unless `quiet`."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def track(self, items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
        yield from items

    def note(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr)


class RichReporter:
    """A rich progress bar on stderr for each tracked loop."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self._bars: _SharedBars | None = None
        self._bars_lock = threading.Lock()

    def bars(self) -> _SharedBars:
        """The one live display of this reporter: rich allows one at a time, and jobs running
        side by side (several slots) each get a line in it."""
        with self._bars_lock:
            if self._bars is None or self._bars.console is not self.console:
                self._bars = _SharedBars(self.console)
            return self._bars

    def track(self, items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
        from rich.progress import track

        yield from track(
            items, total=total, description=description, console=self.console, transient=True
        )

    def note(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False)


def make_reporter(quiet: bool = False) -> Reporter:
    """Pick the reporter the user would expect for this terminal and environment."""
    interactive = sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")
    if quiet or not interactive:
        return SilentReporter(quiet=quiet)
    return RichReporter()


class JobDisplay(Protocol):
    """Live view of one running job, fed with its contract events."""

    def __enter__(self) -> JobDisplay: ...

    def __exit__(self, *exc: object) -> None: ...

    def update(self, event: dict[str, Any]) -> None: ...


class _NoDisplay:
    def __enter__(self) -> _NoDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, event: dict[str, Any]) -> None:
        return None


class _SharedBars:
    """One rich Progress holding a line per job in flight; live while any job is."""

    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=True,
        )
        self._lock = threading.Lock()
        self._open = 0

    def add(self, label: str, budget_s: float) -> Any:
        with self._lock:
            if self._open == 0:
                self.progress.start()
            self._open += 1
            return self.progress.add_task(label, total=budget_s, status="setting up")

    def remove(self, task: Any) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0:
                self.progress.stop()  # before removing: the last frame still shows the job
            self.progress.remove_task(task)


class _RichJobDisplay:
    """A bar over the budget: time left, step, losses and images/s."""

    def __init__(self, bars: _SharedBars, label: str, budget_s: float) -> None:
        self.bars = bars
        self.progress = bars.progress
        self.label = label
        self.budget_s = budget_s
        self.task: Any = None
        self.start_time: float | None = None
        self.first: tuple[float, int] | None = None

    def __enter__(self) -> _RichJobDisplay:
        self.task = self.bars.add(self.label, self.budget_s)
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.remove(self.task)

    def update(self, event: dict[str, Any]) -> None:
        now = float(event.get("time", 0.0))
        if event["event"] == "run_start":
            self.start_time = now
            self.progress.update(self.task, status="started")
        elif event["event"] == "progress" and self.start_time is not None:
            step, seen = int(event["step"]), int(event["images_seen"])
            if self.first is None:
                self.first = (now, seen)
            rate = (seen - self.first[1]) / max(now - self.first[0], 1e-9)
            losses = " ".join(f"{k}={v:.4g}" for k, v in (event.get("losses") or {}).items())
            total = event.get("total")
            if total:
                self.progress.update(
                    self.task,
                    total=float(total),
                    completed=float(step),
                    status=f"{step}/{total} images",
                )
            else:
                self.progress.update(
                    self.task,
                    completed=min(now - self.start_time, self.budget_s),
                    status=f"step {step} {losses} {rate:.1f} img/s",
                )


def job_display(reporter: Reporter, label: str, budget_s: float) -> JobDisplay:
    """A live bar for a rich reporter, nothing otherwise."""
    if isinstance(reporter, RichReporter):
        return _RichJobDisplay(reporter.bars(), label, budget_s)
    return _NoDisplay()
