"""The conformance checks of the snapshot capability (contracts/README.md, "Snapshots"), run by
`inpaint-bench validate` only on an image whose manifest claims `"snapshots": true`.

A short budgeted train asks for two snapshots early in the budget; each one the training got to
must be announced by a checkpoint event whose file exists inside snapshots/<seconds>/, and a
predict told `snapshot_s` must give a valid PNG per input from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.checkpoints import final_trained_s, kept_snapshots, seconds_text
from harness.predictions import check_predictions

if TYPE_CHECKING:
    from harness.conformance import Conformance

BUDGET_S = 4.0
ASKED_S = (0.5, 1.0)
KEEPS = "train keeps the snapshots it is asked for"
PREDICTS = "predict reads the snapshot it is told"


def check_snapshots(suite: Conformance, data: dict[str, Path]) -> None:
    """Add the snapshot checks to `suite`'s report (skipped without the manifest's claim)."""
    assert suite.manifest is not None
    if not suite.manifest.get("snapshots", False):
        for name in (KEEPS, PREDICTS):
            suite.report.skip(name, "the manifest does not claim snapshots")
        return
    checkpoints = suite.work / "ck-snapshots"
    doc = {**suite.train_doc(None, BUDGET_S, False), "snapshot_at_s": list(ASKED_S)}
    outcome = suite.launch(
        "snapshots", "train", doc, suite.train_data, checkpoints, suite.work / "out-snapshots"
    )
    problems = snapshot_problems(outcome.events, checkpoints) if outcome.ok else [outcome.reason]
    if not suite.report.add(KEEPS, not problems, "; ".join(problems[:3])):
        return
    first = ASKED_S[0]
    out = suite.work / "predict-snapshot"
    predict = suite.job(
        "predict", data={"inputs": "inputs", "masks": "masks"}, output_dir=".", snapshot_s=first
    )
    outcome = suite.launch(
        "predict-snapshot",
        "predict",
        predict,
        {"inputs": suite.inputs, "masks": data["masks_test"]},
        checkpoints,
        out,
    )
    if not outcome.ok:
        suite.report.add(PREDICTS, False, outcome.reason)
        return
    check = check_predictions(out, suite.inputs, data["masks_test"], suite.size)
    suite.report.add(PREDICTS, check.ok, "; ".join(check.problems[:3]))


def snapshot_problems(events: list[dict[str, Any]], checkpoints: Path) -> list[str]:
    """What a train stream asked for ASKED_S breaks of the snapshot rules: every asked time the
    training reached kept once, its event at or after that time, its file inside its folder."""
    reached = final_trained_s(events, BUDGET_S)
    kept = kept_snapshots(events)
    problems = []
    for seconds in ASKED_S:
        if seconds > reached:
            continue  # the run stopped before it (a step longer than the budget left)
        snapshot = kept.get(seconds)
        folder = f"snapshots/{seconds_text(seconds)}/"
        if snapshot is None:
            problems.append(f"no checkpoint event with snapshot_s {seconds:g}")
            continue
        path = str(snapshot.get("path") or "")
        if not path.startswith(folder) or not (checkpoints / path).is_file():
            problems.append(f"snapshot {seconds:g}: {path!r} is not a file inside {folder}")
        trained = snapshot.get("trained_s")
        if isinstance(trained, int | float) and trained < seconds:
            problems.append(f"snapshot {seconds:g} written at trained_s {trained:g}, too early")
    return problems
