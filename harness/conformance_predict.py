"""The prediction checks of `inpaint-bench validate`: outputs, known pixels, filled holes,
repeatability and, under docker, the sandbox."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.data.pngs import read_mask, read_rgb
from harness.predictions import check_predictions
from harness.runners.base import Outcome

if TYPE_CHECKING:
    from harness.conformance import Conformance


def check_predict(suite: Conformance, checkpoints: Path, data: dict[str, Path]) -> None:
    """Add the prediction checks to `suite`'s report, from the checkpoints of its train."""
    outcome, out = _predict_once(suite, "predict", checkpoints, data)
    if not suite.report.add("predict runs", outcome.ok, outcome.reason):
        return
    check = check_predictions(out, suite.inputs, data["masks_test"], suite.size)
    if not suite.report.add(
        "one valid PNG per input, same name and size", check.ok, "; ".join(check.problems[:3])
    ):
        return
    claims = suite.manifest.get("composites", True)  # type: ignore[union-attr]
    moved = check.known_pixel_max_abs
    if moved == 0:
        suite.report.add("known pixels equal the input exactly", True)
    elif claims:
        suite.report.add(
            "known pixels equal the input exactly",
            False,
            f"known pixels moved by up to {moved} although the manifest says composites: true",
        )
    else:
        suite.report.add(
            "known pixels equal the input exactly",
            False,
            f"moved by up to {moved}; the harness composites before scoring",
            flag=True,
        )
    filled = hole_change(out, suite.inputs, data["masks_test"])
    suite.report.add(
        "fills the holes (mask polarity: 255 = hole)",
        filled > 0,
        f"mean |output - masked input| over holes = {filled:.2f}",
    )
    again, out2 = _predict_once(suite, "predict-again", checkpoints, data)
    same = again.ok and all(
        (read_rgb(a) == read_rgb(out2 / a.name)).all() for a in sorted(out.glob("*.png"))
    )
    stochastic = suite.manifest.get("stochastic", False)  # type: ignore[union-attr]
    suite.report.add(
        "two predicts give identical outputs",
        same or stochastic,
        "manifest declares the model stochastic" if stochastic and not same else "",
    )
    _check_sandbox(suite, checkpoints, data)


def _check_sandbox(suite: Conformance, checkpoints: Path, data: dict[str, Path]) -> None:
    name = "works with no network, a read-only root and an arbitrary uid"
    if suite.runner.name != "docker":
        suite.report.skip(name, "only the docker runner enforces the sandbox")
        return
    outcome, out = _predict_once(suite, "predict-uid", checkpoints, data, uid_gid=(4242, 4242))
    check = check_predictions(out, suite.inputs, data["masks_test"], suite.size)
    detail = outcome.reason if not outcome.ok else "; ".join(check.problems[:2])
    suite.report.add(name, outcome.ok and check.ok, detail)


def _predict_once(
    suite: Conformance,
    name: str,
    checkpoints: Path,
    data: dict[str, Path],
    uid_gid: tuple[int, int] | None = None,
) -> tuple[Outcome, Path]:
    out = suite.work / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    out.chmod(out.stat().st_mode | stat.S_IWOTH | stat.S_IXOTH)
    doc = suite.job("predict", data={"inputs": "inputs", "masks": "masks"}, output_dir=".")
    outcome = suite.launch(
        name,
        "predict",
        doc,
        {"inputs": suite.inputs, "masks": data["masks_test"]},
        checkpoints,
        out,
        uid_gid=uid_gid,
    )
    return outcome, out


def hole_change(outputs: Path, inputs: Path, masks: Path) -> float:
    """Mean |output − masked input| over hole pixels: 0 means the holes were left as given."""
    total, count = 0.0, 0
    for path in sorted(inputs.glob("*.png")):
        hole = read_mask(masks / path.name)
        diff = np.abs(read_rgb(outputs / path.name).astype(float) - read_rgb(path).astype(float))
        total += float(diff[hole].sum())
        count += int(hole.sum()) * 3
    return total / max(count, 1)
