"""The live display: a rich bar over the budget, fed with contract events."""

from __future__ import annotations

import io

from rich.console import Console

from harness.progress import RichReporter, SilentReporter, _NoDisplay, job_display


def rich_reporter() -> tuple[RichReporter, io.StringIO]:
    reporter = RichReporter()
    buffer = io.StringIO()
    reporter.console = Console(file=buffer, force_terminal=True, width=120)
    return reporter, buffer


def test_training_display_shows_step_losses_and_throughput() -> None:
    reporter, buffer = rich_reporter()
    with job_display(reporter, "train gatedconv on scenes", budget_s=60.0) as display:
        display.update({"event": "run_start", "time": 100.0})
        display.update(
            {
                "event": "progress",
                "time": 110.0,
                "step": 10,
                "images_seen": 80,
                "losses": {"total": 0.5},
            }
        )
        display.update(
            {
                "event": "progress",
                "time": 120.0,
                "step": 20,
                "images_seen": 160,
                "losses": {"total": 0.25},
            }
        )
        display.progress.refresh()
        task = display.progress.tasks[0]
        assert task.completed == 20.0  # seconds of the 60 s budget used since run_start
        assert task.fields["status"] == "step 20 total=0.25 8.0 img/s"
    assert "train gatedconv on scenes" in buffer.getvalue()


def test_predict_display_counts_images() -> None:
    reporter, _ = rich_reporter()
    with job_display(reporter, "predict", budget_s=300.0) as display:
        display.update({"event": "run_start", "time": 0.0})
        display.update(
            {
                "event": "progress",
                "time": 1.0,
                "step": 4,
                "images_seen": 4,
                "losses": {},
                "total": 12,
            }
        )
        task = display.progress.tasks[0]
        assert (task.completed, task.total, task.fields["status"]) == (4.0, 12.0, "4/12 images")


def test_quiet_and_ci_get_no_display() -> None:
    assert isinstance(job_display(SilentReporter(), "x", 1.0), _NoDisplay)
