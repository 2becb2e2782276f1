"""Score tables as data: each function returns a tidy, unformatted DataFrame with one row per
table cell (keys, then n, mean, ci_low, ci_high; seeds, seed_min, seed_max — the training seeds
and the lowest and highest per-seed mean, stats.py; `identical` — how many of the n images score
the PSNR cap because the prediction equals the ground truth; they stay in the mean and interval
at that value — `missing`, the text a renderer shows instead of a number; and compared_to,
p_value, p_holm — the paired test against the row's best, comparisons.py). Renderers (render.py)
lay the cells out; nothing here formats a number.

Main, raw and area-bin tables read the final checkpoint's rows (snapshot_s NaN) of every seed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from harness.data.layout import AREA_BINS, bin_label
from harness.report.comparisons import COMPARISON_COLUMNS, compare
from harness.report.registry import (
    NOT_AVAILABLE,
    RAW_ONLY,
    SET_METRICS,
    WEIGHTS_MISSING,
    direction_map,
    is_identical,
    metric_order,
)
from harness.report.rundata import RunData, Where
from harness.report.stats import SEED_COLUMNS, STAT_COLUMNS, per_seed, summarise

ALL_TEST_SETS = "all test sets"
FAILED = "failed"
BINS = [bin_label(low, high) for low, high in AREA_BINS]


def main_table(run: RunData, source: str, variant: str = "composite") -> pd.DataFrame:
    """Build the seed report's Table 1/2 for one training source: rows test set × metric, one cell
    per model (columns: module docstring); every model of a row is compared with the row's best,
    Holm-corrected over the whole table."""
    rows = _rows(run, source, variant)
    metrics = [m for m in metric_order(list(rows["metric"].unique())) if m not in RAW_ONLY]
    table = _cells(run, source, variant, rows, metrics, ["test_set", "metric"])
    return _with_set_metrics(run, source, variant, table)


def asked_set_metrics(run: RunData) -> list[str]:
    """List the set-level metrics (FID) that any score sidecar of the run carries."""
    metas = [(s.result or {}).get("metadata") or {} for s in run.of_kind("score")]
    return [m for m in SET_METRICS if any(isinstance(meta, dict) and m in meta for meta in metas)]


def _with_set_metrics(run: RunData, source: str, variant: str, table: pd.DataFrame) -> pd.DataFrame:
    """Add one row per test set for each set-level metric the run asked for, right after that
    test set's per-image rows: the sidecar's value (n = its image count, no interval) or why it is
    missing."""
    asked = asked_set_metrics(run)
    if not asked or table.empty:
        return table
    models = list(dict.fromkeys(table["model"]))
    parts = []
    for test_set, block in table.groupby("test_set", sort=False):
        parts.append(block)
        extra = []
        for metric, model in itertools.product(asked, models):
            meta = run.score_metadata(Where(model, source, str(test_set)))
            found = meta.get(metric)
            entry: dict[str, Any] = found if isinstance(found, dict) else {}
            value = entry.get(variant)
            cell: dict[str, Any] = {"source": source, "variant": variant, "test_set": test_set}
            cell |= {"metric": metric, "model": model, "ci_low": np.nan, "ci_high": np.nan}
            cell["identical"] = 0
            if isinstance(value, int | float) and math.isfinite(value):
                cell |= {"n": int(entry.get("images") or 1), "mean": float(value), "missing": None}
            else:
                cell |= {"n": 0, "mean": np.nan}
                key = {"model": model, "test_set": test_set, "metric": metric}
                if entry:  # the sidecar says why (a status other than "computed")
                    why = entry.get("status") if entry.get("status") != "computed" else None
                else:  # no sidecar entry: failed, or not scored
                    why = _missing(run, source, key, False)
                cell["missing"] = str(why or NOT_AVAILABLE)
            extra.append(cell)
        parts.append(pd.DataFrame(extra, columns=table.columns))
    out = pd.concat(parts, ignore_index=True)
    out["n"] = out["n"].astype(int)
    return out


def raw_table(run: RunData, source: str) -> pd.DataFrame:
    """Build `main_table` for the `raw` variant (the files as the models wrote them), with the
    known-pixel deviation as one more metric."""
    rows = _rows(run, source, "raw")
    metrics = metric_order(list(rows["metric"].unique()))
    return _cells(run, source, "raw", rows, metrics, ["test_set", "metric"])


def area_bin_table(run: RunData, source: str, variant: str = "composite") -> pd.DataFrame:
    """Score each mask-area bin: rows test set × metric × bin, where test_set ALL_TEST_SETS
    pools every test image of the source (the plots use those rows)."""
    rows, metrics = _area_rows(run, source, variant)
    keys = ["test_set", "metric", "bin"]
    # One family per test set (the pooled one is the table shown; the others are in the CSV).
    return _cells(run, source, variant, rows, metrics, keys, family=["test_set"])


def _area_rows(run: RunData, source: str, variant: str) -> tuple[pd.DataFrame, list[str]]:
    """Return the per-image rows of the area-bin table, pooled ones first, and its metrics."""
    rows = _rows(run, source, variant)
    rows = rows[rows["bin"].isin(BINS)]
    # Pooled rows keep their test set in the image key, so the bootstrap's (test set, image)
    # order is the same as for the per-test-set rows.
    pooled = rows.assign(image=rows["test_set"] + "/" + rows["image"], test_set=ALL_TEST_SETS)
    metrics = [m for m in metric_order(list(rows["metric"].unique())) if m not in RAW_ONLY]
    return pd.concat([pooled, rows], ignore_index=True), metrics


def seed_table(
    run: RunData, source: str, variant: str = "composite", area: bool = False
) -> pd.DataFrame:
    """Tabulate a score table's cells per training seed: source, variant, its keys (test_set,
    metric, and bin for the `area` table), model, seed, n, mean (the per-seed numbers behind
    the mean over seeds and its min–max)."""
    if area:
        rows, metrics = _area_rows(run, source, variant)
        keys = ["test_set", "metric", "bin"]
    else:
        rows = _rows(run, source, variant)
        keys = ["test_set", "metric"]
        named = metric_order(list(rows["metric"].unique()))
        metrics = [m for m in named if variant == "raw" or m not in RAW_ONLY]
    table = per_seed(rows[rows["metric"].isin(metrics)], [*keys, "model"])
    table.insert(0, "variant", variant)
    table.insert(0, "source", source)
    return table


def known_pixel_table(run: RunData) -> pd.DataFrame:
    """Tabulate per model and source the mean |raw − gt| over known pixels (all test images, with
    its CI), the largest known-pixel change the harness measured, and whether every prediction kept
    the known pixels (the check that caught AOT-GAN's mask-polarity bug in the seed report)."""
    scores = final_rows(run)
    rows = scores[(scores["variant"] == "raw") & (scores["metric"] == "known_pixel_dev")]
    stats = summarise(rows, ["source", "model"], run.seed)
    out = []
    for source, model in itertools.product(run.sources, run.models):
        predicts = [
            s
            for s in run.of_kind("predict")
            if run.where(s).source == source and run.where(s).model == model and s.result
        ]
        found = stats[(stats["source"] == source) & (stats["model"] == model)]
        if not predicts and found.empty:
            continue
        stat = found.iloc[0].to_dict() if not found.empty else dict.fromkeys(STAT_COLUMNS)
        max_abs = [int(s.result.get("known_pixel_max_abs", 0)) for s in predicts if s.result]
        out.append(
            {
                "source": source,
                "model": model,
                **{k: stat[k] for k in STAT_COLUMNS},
                "known_pixel_max_abs": max(max_abs) if max_abs else None,
                "composites": all(bool(s.result.get("composites")) for s in predicts if s.result)
                if predicts
                else None,
            }
        )
    columns = ["source", "model", *STAT_COLUMNS, "known_pixel_max_abs", "composites"]
    table = pd.DataFrame(out, columns=columns)
    table["n"] = table["n"].fillna(0).astype(int)
    table["known_pixel_max_abs"] = table["known_pixel_max_abs"].astype("Int64")
    return table


def final_rows(run: RunData) -> pd.DataFrame:
    """Keep the per-image rows of final checkpoints (snapshot_s NaN), every seed."""
    scores = run.scores
    return scores[scores["snapshot_s"].isna()] if "snapshot_s" in scores else scores


def _rows(run: RunData, source: str, variant: str) -> pd.DataFrame:
    scores = final_rows(run)
    return scores[(scores["source"] == source) & (scores["variant"] == variant)]


def _cells(
    run: RunData,
    source: str,
    variant: str,
    rows: pd.DataFrame,
    metrics: list[str],
    keys: list[str],
    family: list[str] | None = None,
) -> pd.DataFrame:
    """Summarise `rows` by keys + model over the full grid, so an absent cell is a row too, and
    compare each row's models with its best (Holm families: `family` groups, else the table)."""
    rows = rows[rows["metric"].isin(metrics)]
    models = [m for m in run.models if m in set(rows["model"])]
    levels: dict[str, list[str]] = {
        "test_set": _ordered(run.test_sets, rows["test_set"]),
        "metric": metrics,
        "bin": BINS,
    }
    grid = pd.DataFrame(
        list(itertools.product(*(levels[k] for k in keys), models)), columns=[*keys, "model"]
    )
    stats = summarise(rows, [*keys, "model"], run.seed) if len(rows) else None
    table = grid if stats is None else grid.merge(stats, on=[*keys, "model"], how="left")
    for column in [*STAT_COLUMNS, *SEED_COLUMNS]:
        if column not in table:
            table[column] = np.nan
    table["n"] = table["n"].fillna(0).astype(int)
    table = _with_identical(rows, table, [*keys, "model"])
    present = set(map(tuple, rows[[*keys, "model"]].drop_duplicates().to_numpy().tolist()))
    table["missing"] = [
        None
        if cell["n"] > 0
        else _missing(run, source, cell, tuple(cell[k] for k in [*keys, "model"]) in present)
        for cell in table.to_dict("records")
    ]
    table["seeds"] = table["seeds"].fillna(0).astype(int)
    directions = direction_map(metrics, run.sidecar_directions())
    table = compare(table, rows, keys, family or [], directions)
    table.insert(0, "variant", variant)
    table.insert(0, "source", source)
    stats = [*STAT_COLUMNS, *SEED_COLUMNS, "identical", "missing", *COMPARISON_COLUMNS]
    return table[["source", "variant", *keys, "model", *stats]]


def _with_identical(rows: pd.DataFrame, table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Add `identical`: per cell, the images whose score is the PSNR cap (0 for other metrics)."""
    scores = rows["value"].astype(float)
    flags = [is_identical(str(m), v) for m, v in zip(rows["metric"], scores, strict=True)]
    counts = rows[keys].assign(identical=np.asarray(flags, dtype=int))
    counts = counts.groupby(keys, sort=False, dropna=False, as_index=False)["identical"].sum()
    table = table.merge(counts, on=keys, how="left") if len(counts) else table
    if "identical" not in table:
        table["identical"] = 0
    table["identical"] = table["identical"].fillna(0).astype(int)
    return table


def _ordered(order: list[str], present: pd.Series) -> list[str]:
    """List every test set of the run, in run order, so one whose scores all failed still gets a row
    (saying so); the pooled pseudo test set first."""
    seen = set(present)
    head = [ALL_TEST_SETS] if ALL_TEST_SETS in seen else []
    return head + order + sorted(seen - set(order) - {ALL_TEST_SETS})


def _missing(run: RunData, source: str, cell: Mapping[str, object], has_rows: bool) -> str:
    """Say what a cell without a single value shows: why the metric is missing, never a number."""
    model, test_set, metric = str(cell["model"]), str(cell["test_set"]), str(cell["metric"])
    test_sets = run.test_sets if test_set == ALL_TEST_SETS else [test_set]
    wheres = [Where(model, source, t) for t in test_sets]
    if not has_rows:
        for kind in ("predict", "score"):
            steps = [run.step_for(kind, w) for w in wheres]
            if any(s is not None and s.status == "failed" for s in steps):
                return FAILED
        return NOT_AVAILABLE
    weights = [run.score_metadata(w).get("lpips_weights", {}).get(metric) for w in wheres]
    return WEIGHTS_MISSING if WEIGHTS_MISSING in weights else NOT_AVAILABLE


def worst_table(run: RunData, k: int = 3) -> pd.DataFrame:
    """Pick each model's k worst composite predictions per source, by LPIPS (highest first); by PSNR
    (lowest first) where LPIPS is missing for any of its images, with `note` saying so. With
    several training seeds each (image, seed) is a candidate, and `seed` says which run it is."""
    scores = final_rows(run)
    scores = scores[scores["variant"] == "composite"]
    if "seed" not in scores:
        scores = scores.assign(seed=run.seed)
    out = []
    for source, model in itertools.product(run.sources, run.models):
        mine = scores[(scores["source"] == source) & (scores["model"] == model)]
        if mine.empty:
            continue
        lpips = mine[mine["metric"] == "lpips"]
        if len(lpips) and lpips["value"].notna().all():
            ranked = lpips.sort_values(
                ["value", "test_set", "image", "seed"], ascending=[False, True, True, True]
            )
            metric, note = "lpips", "ranked by LPIPS, highest first"
        else:
            cell = {"model": model, "test_set": ALL_TEST_SETS, "metric": "lpips"}
            why = _missing(run, source, cell, len(lpips) > 0) if len(lpips) else "not scored"
            images = len(mine[["test_set", "image"]].drop_duplicates())
            gaps = int(lpips["value"].isna().sum()) if len(lpips) else images
            note = f"ranked by PSNR, lowest first: LPIPS {why} for {gaps} image(s)"
            psnr = mine[(mine["metric"] == "psnr") & mine["value"].notna()]
            ranked, metric = psnr.sort_values(["value", "test_set", "image", "seed"]), "psnr"
        for rank, row in enumerate(ranked.head(k).to_dict("records"), start=1):
            out.append(
                {
                    "source": source,
                    "model": model,
                    "rank": rank,
                    "test_set": row["test_set"],
                    "image": row["image"],
                    "hole_fraction": row["hole_fraction"],
                    "metric": metric,
                    "value": row["value"],
                    "seed": row["seed"],
                    "note": note,
                }
            )
    columns = ["source", "model", "rank", "test_set", "image", "hole_fraction", "metric"]
    return pd.DataFrame(out, columns=[*columns, "value", "seed", "note"])
