"""Score against training time: the points of the report's "Score against training time"
figures (one per training source) and of tables/score_time.csv.

A point is one model's mean composite score on one test set from one checkpoint: a snapshot,
at the training seconds it was asked for, or the final checkpoint, at the seconds the training
reports for it (its last checkpoint event's `trained_s`, else the job's training time). With
several seeds the point is the mean over seeds of each seed's mean over the test images (each
seed has the same images), with the seeds' lowest and highest means beside it.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.report.rundata import RunData

TIME_COLUMNS = [
    "source",
    "model",
    "test_set",
    "metric",
    "checkpoint",
    "training_s",
    "mean",
    "seed_min",
    "seed_max",
    "seeds",
    "n",
]


def final_training_s(run: RunData) -> dict[tuple[str, str, int], float]:
    """(model, source, seed) → the training seconds of the final checkpoint, from the train
    steps that finished (a failed training has no checkpoint to score)."""
    found: dict[tuple[str, str, int], float] = {}
    for step in run.of_kind("train"):
        result = step.result or {}
        if step.status != "done":
            continue
        job = step.spec.get("job") or {}
        seed = int(job.get("seed", run.seed))
        seconds = next(
            (
                float(result[k])
                for k in ("trained_s", "train_s", "budget_s")
                if isinstance(result.get(k), int | float)
            ),
            math.nan,
        )
        where = run.where(step)
        found[(where.model, where.source, seed)] = seconds
    return found


def time_points(run: RunData) -> pd.DataFrame:
    """One row per source × model × test set × metric × checkpoint (TIME_COLUMNS); `checkpoint`
    is "final" or the snapshot's seconds as text; empty when the run kept no snapshots."""
    scores = run.scores[(run.scores["variant"] == "composite") & run.scores["value"].notna()]
    if scores.empty or not scores["snapshot_s"].notna().any():
        return pd.DataFrame(columns=TIME_COLUMNS)
    finals = final_training_s(run)
    scores = scores.assign(
        training_s=[
            snapshot if not math.isnan(snapshot) else finals.get((m, s, seed), math.nan)
            for snapshot, m, s, seed in zip(
                scores["snapshot_s"], scores["model"], scores["source"], scores["seed"], strict=True
            )
        ],
        checkpoint=scores["snapshot_s"].map(lambda v: "final" if math.isnan(v) else f"{v:g}"),
    )
    cell = ["source", "model", "test_set", "metric", "checkpoint"]
    per_seed = (
        scores.groupby([*cell, "seed"], sort=False, dropna=False)
        .agg(value=("value", "mean"), training_s=("training_s", "mean"), n=("value", "size"))
        .reset_index()
    )
    points = (
        per_seed.groupby(cell, sort=False, dropna=False)
        .agg(
            training_s=("training_s", "mean"),
            mean=("value", "mean"),
            seed_min=("value", "min"),
            seed_max=("value", "max"),
            seeds=("seed", "nunique"),
            n=("n", "sum"),
        )
        .reset_index()
    )
    return points[TIME_COLUMNS].sort_values([*cell[:4], "training_s"], ignore_index=True)
