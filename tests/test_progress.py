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


def test_jobs_side_by_side_each_get_a_line_of_one_live_display() -> None:
    reporter, buffer = rich_reporter()
    first = job_display(reporter, "[cpu slot 0] train m0 on scenes", budget_s=60.0)
    second = job_display(reporter, "[cpu slot 1] train m1 on scenes", budget_s=60.0)
    # rich allows one live display at a time: a second Progress started here would raise.
    with first as one, second as two:
        assert one.progress is two.progress
        one.update({"event": "run_start", "time": 0.0})
        two.update({"event": "run_start", "time": 0.0})
        one.progress.refresh()
        lines = buffer.getvalue()
        assert "train m0 on scenes" in lines and "train m1 on scenes" in lines
        assert [t.description for t in one.progress.tasks] == [
            "[cpu slot 0] train m0 on scenes",
            "[cpu slot 1] train m1 on scenes",
        ]
    assert one.progress.tasks == [] and not one.progress.live.is_started
    with job_display(reporter, "predict m0", budget_s=1.0) as again:  # the display restarts
        assert again.progress.live.is_started
