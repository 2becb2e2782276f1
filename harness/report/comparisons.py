"""Paired comparisons: is each model of a table row worse than the row's best on the same images?

Per row (a test set and metric, or a hole-area bin) with at least two models and a known
direction, the reference is the model with the best mean. Every other model is compared with it
on the images both scored (same test set and image name) by a two-sided Wilcoxon signed-rank test
(scipy.stats.wilcoxon, its defaults: exact null distribution for small samples, zero differences
dropped) on the per-image differences. With several training seeds, each image's score is first
averaged over the model's seeds: the test then pairs images, the unit both models share, and
seeds are not counted as extra images (which would shrink p-values by treating one training run
twice); seeds of two models are unrelated runs, so there is nothing to pair them on. How much a
model moves with its seed is the table's min–max, not part of this test.

The p-values of one table (its family) are Holm-corrected (Holm 1979: step-down Bonferroni, which
controls the family-wise error rate without assuming independence). scipy has no Holm and
statsmodels would be a large runtime dependency for six lines, so `holm` is written here and the
tests check it against a hand computation and statsmodels' multipletests (a test dependency).

Images identical to their ground truth (PSNR at its 148.13 dB cap) enter at that value: the test
uses ranks, so the cap counts as a large difference but not an arbitrarily large one, and an image
both models reproduce exactly is a zero difference, which the test drops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

ALPHA = 0.05
COMPARISON_COLUMNS = ["compared_to", "p_value", "p_holm"]


def paired_p(values: np.ndarray, reference: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the paired differences values − reference;
    1.0 when every difference is zero (no evidence either way), NaN when there is no pair."""
    differences = np.asarray(values, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    differences = differences[~np.isnan(differences)]
    if differences.size == 0:
        return math.nan
    if not differences.any():  # scipy would divide by a zero variance and warn
        return 1.0
    return float(wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjust p-values (NaN entries stay NaN and do not count as comparisons): the k-th
    smallest of m becomes max over j ≤ k of min(1, (m − j + 1)·p_(j))."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = order.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def compare(
    cells: pd.DataFrame,
    rows: pd.DataFrame,
    keys: list[str],
    family: list[str],
    higher_is_better: Mapping[str, bool],
) -> pd.DataFrame:
    """Add COMPARISON_COLUMNS to a tidy score table (one row per `keys` + model cell): the row's
    reference model, each other model's p-value against it, and the Holm-adjusted p-value within
    each `family` group of rows (the whole table when `family` is empty).

    `rows` are the per-image rows the cells summarise (`keys`, model, image, value, and seed where
    there are several).
    """
    cells = cells.assign(compared_to=None, p_value=np.nan, p_holm=np.nan)
    if cells.empty or rows.empty:
        return cells
    # Each image's score averaged over the model's seeds (NaN scores skipped), one Series per
    # cell, split once: a lookup per cell in the whole index costs seconds on a large run.
    per_image = rows.groupby([*keys, "model", "image"])["value"].mean()
    by_cell = {
        tuple(key): series.droplevel(list(range(len(keys) + 1)))
        for key, series in per_image.groupby(level=list(range(len(keys) + 1)), sort=False)
    }
    compared_to = cells["compared_to"].to_list()
    p_values = cells["p_value"].to_numpy(dtype=np.float64, copy=True)
    position = {index: i for i, index in enumerate(cells.index)}
    for group, cell in cells.groupby(keys, sort=False):
        metric = str(dict(zip(keys, group, strict=True))["metric"])
        scored = cell[cell["n"] > 0]
        if len(scored) < 2 or metric not in higher_is_better:
            continue
        means = scored["mean"].to_numpy(dtype=np.float64)
        best = scored.index[int(np.argmax(means) if higher_is_better[metric] else np.argmin(means))]
        best_model = cells.at[best, "model"]
        reference = by_cell[(*group, best_model)]
        for index in scored.index:
            compared_to[position[index]] = best_model
            if index != best:
                mine = by_cell[(*group, cells.at[index, "model"])]
                both = pd.concat([mine, reference], axis=1, join="inner").dropna()
                p_values[position[index]] = paired_p(both.iloc[:, 0], both.iloc[:, 1])
    cells["compared_to"], cells["p_value"] = compared_to, p_values
    families = [g.index for _, g in cells.groupby(family, sort=False)] if family else [cells.index]
    for members in families:
        cells.loc[members, "p_holm"] = holm(cells.loc[members, "p_value"].to_numpy())
    return cells
