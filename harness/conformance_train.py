"""The training checks of `inpaint-bench validate`: a short train that stops on its own and
checkpoints, then one stopped by SIGTERM that must resume from its checkpoint."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.conformance import Conformance


def check_train(suite: Conformance) -> Path | None:
    """Add the train checks to `suite`'s report; return the checkpoint folder if they pass."""
    checkpoints = suite.work / "ck-train"
    outcome = suite.launch(
        "train",
        "train",
        suite.train_doc(3, 60.0, False),
        suite.train_data,
        checkpoints,
        suite.work / "out-train",
    )
    events_ok = not outcome.violations and outcome.ok
    detail = outcome.reason if not outcome.ok else "; ".join(outcome.violations[:3])
    suite.report.add(
        "train emits valid events and stops", events_ok, detail or f"{outcome.steps} step(s)"
    )
    if not events_ok:
        return None
    trains = suite.manifest.get("trains", True)  # type: ignore[union-attr]
    saved = [e for e in outcome.events if e["event"] == "checkpoint"]
    has_file = bool(saved) and (checkpoints / saved[-1]["path"]).exists()
    if not suite.report.add(
        "train writes a checkpoint",
        has_file,
        "no checkpoint event with a file" if not has_file else "",
    ):
        return None
    if trains and outcome.steps == 0:
        suite.report.add("train makes optimiser steps", False, "0 steps, manifest says trains")
    return checkpoints


def check_sigterm_and_resume(suite: Conformance) -> None:
    """Stop a long train at its first progress event, then resume it for two more steps."""
    if not suite.manifest.get("trains", True):  # type: ignore[union-attr]
        suite.report.skip("stops on SIGTERM within grace", "the model does not train")
        return
    checkpoints = suite.work / "ck-sigterm"
    sent: list[float] = []

    def on_event(process: Any, event: dict[str, Any]) -> None:
        if event["event"] == "progress" and not sent:
            sent.append(time.monotonic())
            process.send_signal(signal.SIGTERM)

    outcome = suite.launch(
        "sigterm",
        "train",
        suite.train_doc(None, 600.0, False),
        suite.train_data,
        checkpoints,
        suite.work / "out-sigterm",
        on_event=on_event,
    )
    stop = next((e for e in outcome.events if e["event"] == "run_stop"), None)
    ok = bool(sent) and outcome.ok and stop is not None and stop["reason"] == "sigterm"
    suite.report.add(
        "stops on SIGTERM within grace, checkpointed",
        ok,
        "" if ok else (outcome.reason if sent else "no progress event to wait on"),
    )
    if not ok:
        return
    steps = outcome.steps
    outcome = suite.launch(
        "resume",
        "train",
        suite.train_doc(steps + 2, 60.0, True),
        suite.train_data,
        checkpoints,
        suite.work / "out-resume",
    )
    start = next((e for e in outcome.events if e["event"] == "run_start"), {})
    resumed = outcome.ok and int(start.get("resumed_from_step", 0)) == steps
    suite.report.add(
        "resumes from its checkpoint",
        resumed,
        f"resumed_from_step {start.get('resumed_from_step')}, expected {steps}",
    )
