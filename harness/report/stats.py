"""Means and bootstrap confidence intervals over per-image scores.

Every cell of every score table is the mean of one model's per-image scores with a 95 %
percentile-bootstrap interval over images (Efron & Tibshirani 1993, ch. 13): resample the images
with replacement `RESAMPLES` times, take each resample's mean, and report the 2.5th and 97.5th
percentiles of those means. The generator is seeded with the run's seed for every cell, and the
values are ordered by (test set, image name), so a report is reproducible and a test can
recompute it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

RESAMPLES = 1000
LEVEL = 0.95
STAT_COLUMNS = ["n", "mean", "ci_low", "ci_high"]


def bootstrap_ci(
    values: np.ndarray, seed: int, resamples: int = RESAMPLES, level: float = LEVEL
) -> tuple[float, float]:
    """Compute the percentile-bootstrap interval of the mean of `values` (NaNs dropped); NaN if
    empty."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    # One (resamples × n) index draw: vectorised, and cheap at n ≤ a few thousand images.
    means = finite[rng.integers(0, finite.size, size=(resamples, finite.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def summarise(rows: pd.DataFrame, keys: list[str], seed: int) -> pd.DataFrame:
    """Summarise each `keys` group of per-image rows in one row: n (non-missing), mean, ci_low,
    ci_high.

    `rows` needs `test_set`, `image` and `value` columns; a group whose values are all missing
    gets n = 0 and NaN statistics, never a number.
    """
    out = []
    for group, cell in rows.groupby(keys, sort=False, dropna=False):
        ordered = cell.sort_values(["test_set", "image"], kind="stable")
        values = ordered["value"].to_numpy(dtype=np.float64)
        finite = values[~np.isnan(values)]
        low, high = bootstrap_ci(finite, seed)
        mean = float(finite.mean()) if finite.size else math.nan
        named = dict(zip(keys, group if isinstance(group, tuple) else (group,), strict=True))
        out.append({**named, "n": int(finite.size), "mean": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(out, columns=[*keys, *STAT_COLUMNS])
