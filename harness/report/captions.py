"""The captions' words on statistics: how a score table's cells were computed and what bold and
the marker mean (the rules docs/running.md "How to read the tables" explains at length)."""

from __future__ import annotations

import pandas as pd

from harness.report.comparisons import ALPHA
from harness.report.registry import (
    FLOORED,
    PSNR_CAP_DB,
    PSNR_MSE_FLOOR,
    SET_LEVEL_NOTE,
    SET_METRICS,
    metric_info,
)
from harness.report.render import WORSE_MARK
from harness.report.rundata import RunData
from harness.report.stats import LEVEL, RESAMPLES


def several_seeds(table: pd.DataFrame) -> bool:
    return bool((table["seeds"].fillna(0) > 1).any()) if "seeds" in table else False


def ci_words(run: RunData, table: pd.DataFrame) -> str:
    if not several_seeds(table):
        return (
            f"brackets: {LEVEL:.0%} percentile-bootstrap interval of the mean over images "
            f"({RESAMPLES} resamples, seed {run.seed})"
        )
    return (
        "a cell with k training seeds (k seeds a–b) reads the mean over seeds of each seed's "
        "mean over images, and a–b is the lowest and highest per-seed mean (min–max over "
        f"training seeds, not an sd; per-seed means in the CSV); brackets: {LEVEL:.0%} "
        "percentile-bootstrap interval resampling the images, and the seeds too where there "
        f"are several ({RESAMPLES} resamples, seed {run.seed})"
    )


def rule_words(table: pd.DataFrame) -> str:
    """State the bold rule and the test behind it, with the table's number of comparisons."""
    tests = int(table["p_value"].notna().sum()) if "p_value" in table else 0
    if not tests:
        return "bold: best of the row (↑ higher is better, ↓ lower is better)"
    averaged = ", each image's score averaged over its seeds first" if several_seeds(table) else ""
    return (
        "bold: the best mean of the row (↑ higher is better, ↓ lower is better) and every model "
        f"not significantly different from it; {WORSE_MARK}: significantly different from the "
        "row's best (two-sided Wilcoxon signed-rank test on the per-image differences over the "
        f"images both scored{averaged}; p-values Holm-corrected over the table's {tests} "
        f"comparisons; α = {ALPHA:g}; p-values in the CSV)"
    )


def identical_note(table: pd.DataFrame) -> str:
    """State the rule for images identical to their ground truth, where a PSNR metric is shown."""
    shown = [metric_info(m).label for m in FLOORED if m in set(table["metric"])]
    if not shown:
        return ""
    return (
        f" {' and '.join(shown)} floor the MSE at {PSNR_MSE_FLOOR:g}, so an image whose "
        f"prediction equals its ground truth scores {PSNR_CAP_DB:.2f} dB instead of infinity; "
        "such images stay in the mean and the interval at that value, and a cell with any "
        "counts them (k identical): a mean they pull up is not a better inpainting."
    )


def set_level_note(table: pd.DataFrame) -> str:
    """Say that a set-level row (FID) is one value over the whole test set, without an interval."""
    shown = [m for m in SET_METRICS if m in set(table["metric"])]
    if not shown:
        return ""
    names = ", ".join(SET_METRICS[m].label for m in shown)
    return (
        f" {names}: one value over all of the test set's images ({SET_LEVEL_NOTE}; untested: "
        "bold marks the best value only)."
    )
