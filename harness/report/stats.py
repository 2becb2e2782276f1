"""Means and bootstrap confidence intervals over per-image scores, over one or several training
seeds.

One seed (the default): every cell is the mean of one model's per-image scores with a 95 %
percentile-bootstrap interval over images (Efron & Tibshirani 1993, ch. 13): resample the images
with replacement `RESAMPLES` times, take each resample's mean, and report the 2.5th and 97.5th
percentiles of those means.

Several seeds: the cell's mean is the mean over seeds of the per-seed means; the spread is the
lowest and highest per-seed mean (min–max: with the 2–5 runs a budget allows, an sd is a poor
estimate and the range is what a reader can check); the interval is a two-way percentile bootstrap
that resamples both sources of variation, as Agarwal et al. 2021 ("Deep RL at the Edge of the
Statistical Precipice", §4) resample runs: each resample draws the images with replacement (one
draw shared by every seed, since the seeds score the same images) and the seeds with
replacement, and takes the mean over the drawn seeds of each drawn seed's mean over the drawn
images. With one seed it is exactly the one-seed bootstrap.

The generator is seeded with the run's seed for every cell, and the values are ordered by (test
set, image) and seed, so a report is reproducible and a test can recompute it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

RESAMPLES = 1000
LEVEL = 0.95
STAT_COLUMNS = ["n", "mean", "ci_low", "ci_high"]
# seeds: the training seeds with a score in the cell; seed_min/seed_max: the lowest and highest
# per-seed mean (both the mean where there is one seed).
SEED_COLUMNS = ["seeds", "seed_min", "seed_max"]


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


def seed_means(matrix: np.ndarray) -> np.ndarray:
    """Mean over images of each seed's row of a (seeds × images) matrix, NaNs skipped; a seed
    without any value is left out."""
    counts = (~np.isnan(matrix)).sum(axis=1)
    sums = np.nansum(matrix, axis=1)
    return sums[counts > 0] / counts[counts > 0]


def two_way_bootstrap_ci(
    matrix: np.ndarray, seed: int, resamples: int = RESAMPLES, level: float = LEVEL
) -> tuple[float, float]:
    """Compute the interval of the mean over seeds of per-seed means of a (seeds × images) matrix
    (NaN = no score) by resampling images and seeds (module docstring); NaN if it holds no value.

    Draw order, so a test can repeat it: one (resamples × images) image-index draw, then one
    (resamples × seeds) seed-index draw, from default_rng(seed).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    present = ~np.isnan(matrix)
    matrix = matrix[present.any(axis=1)][:, present.any(axis=0)]
    if matrix.shape[0] <= 1:
        return bootstrap_ci(matrix.ravel(), seed, resamples, level)
    seeds, images = matrix.shape
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, images, size=(resamples, images))
    chosen = rng.integers(0, seeds, size=(resamples, seeds))
    present = ~np.isnan(matrix)
    filled = np.where(present, matrix, 0.0)
    # weights[r, j]: how often resample r drew image j; a matrix product then gives every seed's
    # sum and count over each resample at BLAS speed, without a seeds × resamples × images copy.
    flat = (np.arange(resamples)[:, None] * images + picks).ravel()
    weights = np.bincount(flat, minlength=resamples * images).reshape(resamples, images)
    weights = weights.astype(np.float64)
    drawn = np.arange(resamples)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        # per_seed[r, s]: seed s's mean over resample r's images (NaN where it scored none).
        per_seed = (weights @ filled.T) / (weights @ present.T.astype(np.float64))
        # A resample whose drawn seeds scored none of its drawn images has no mean: left out.
        taken = per_seed[drawn, chosen]
        means = np.nansum(taken, axis=1) / (~np.isnan(taken)).sum(axis=1)
    means = means[~np.isnan(means)]
    if means.size == 0:
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def seed_matrix(cell: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
    """Pivot one cell's per-image rows into a (seeds × images) matrix, seeds ascending and images
    in (test set, image) order; a row without a `seed` column counts as seed 0. An image a seed
    did not score is NaN, never a zero; rows repeated for one seed and image are averaged."""
    seeds = cell["seed"].to_numpy() if "seed" in cell else np.zeros(len(cell), dtype=int)
    seed_list, seed_codes = np.unique(seeds, return_inverse=True)
    # NUL sorts before every other character, so the joined key orders like (test set, image).
    keys = cell["test_set"].astype(str) + "\0" + cell["image"].astype(str)
    image_codes, _ = pd.factorize(keys, sort=True)
    values = cell["value"].to_numpy(dtype=np.float64)
    shape = (len(seed_list), int(image_codes.max()) + 1 if len(cell) else 0)
    sums, counts = np.zeros(shape), np.zeros(shape)
    scored = ~np.isnan(values)
    np.add.at(sums, (seed_codes[scored], image_codes[scored]), values[scored])
    np.add.at(counts, (seed_codes[scored], image_codes[scored]), 1)
    with np.errstate(invalid="ignore"):
        return sums / counts, [int(s) for s in seed_list]


def cell_statistics(cell: pd.DataFrame, seed: int) -> dict[str, float | int]:
    """Summarise one cell's per-image rows: n (images with a score), mean, interval, seeds and the
    per-seed min and max (module docstring)."""
    seeds = cell["seed"].dropna().unique() if "seed" in cell else np.array([0])
    if len(seeds) <= 1:
        ordered = cell.sort_values(["test_set", "image"], kind="stable")
        values = ordered["value"].to_numpy(dtype=np.float64)
        finite = values[~np.isnan(values)]
        low, high = bootstrap_ci(finite, seed)
        mean = float(finite.mean()) if finite.size else math.nan
        count = int(finite.size)
        return {"n": count, "mean": mean, "ci_low": low, "ci_high": high}
    matrix, _ = seed_matrix(cell)
    per_seed = seed_means(matrix)
    low, high = two_way_bootstrap_ci(matrix, seed)
    return {
        "n": int((~np.isnan(matrix)).any(axis=0).sum()),
        "mean": float(per_seed.mean()) if per_seed.size else math.nan,
        "ci_low": low,
        "ci_high": high,
        "seeds": int(per_seed.size),
        "seed_min": float(per_seed.min()) if per_seed.size else math.nan,
        "seed_max": float(per_seed.max()) if per_seed.size else math.nan,
    }


def summarise(rows: pd.DataFrame, keys: list[str], seed: int) -> pd.DataFrame:
    """Summarise each `keys` group of per-image rows in one row: STAT_COLUMNS, then SEED_COLUMNS.

    `rows` needs `test_set`, `image` and `value` columns, and `seed` where they come from several
    training runs; a group whose values are all missing gets n = 0 and NaN statistics, never a
    number.
    """
    out = []
    for group, cell in rows.groupby(keys, sort=False, dropna=False):
        stats = cell_statistics(cell, seed)
        if "seeds" not in stats:  # one seed: its mean is the only per-seed mean
            stats |= {"seeds": int(stats["n"] > 0), "seed_min": stats["mean"]}
            stats["seed_max"] = stats["mean"]
        named = dict(zip(keys, group if isinstance(group, tuple) else (group,), strict=True))
        out.append({**named, **stats})
    return pd.DataFrame(out, columns=[*keys, *STAT_COLUMNS, *SEED_COLUMNS])


def per_seed(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Tabulate each `keys` group's mean per training seed: keys, seed, n, mean (the CSV's
    per-seed numbers)."""
    if "seed" not in rows:
        rows = rows.assign(seed=0)
    grouped = rows.groupby([*keys, "seed"], sort=False, dropna=False)["value"]
    out = grouped.agg(n="count", mean="mean").reset_index()
    return out[[*keys, "seed", "n", "mean"]]
