"""A two-seed run for the report's seed and significance tests, built without running any model.

The report fixture's run (tests/reportfixture.py, untouched for its other users) with its per-image
rows as training seed SEED; a second training seed SECOND_SEED whose scores are the first's moved
by a per-model shift (in units of the metric's spread) and seeded noise; and snapshot rows
(snapshot_s = SNAPSHOT_S, the checkpoint after that many training seconds) for both seeds whose
value SNAPSHOT_VALUE is absurd, so a table that reads a snapshot shows it. The ledger stores one
seed per run until the pipeline trains several, so the rows go into the loaded RunData, which is
what every table reads.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from reportfixture import SEED, SPREAD, FixtureRun, build_run

from harness.report.rundata import RunData, load_run

SECOND_SEED = SEED + 1
SEEDS = (SEED, SECOND_SEED)
# The second seed's shift per model, in units of SPREAD: alpha gains, beta loses, gamma stays.
SHIFT = {"alpha": 0.5, "beta": -0.3, "gamma": 0.05}
NOISE = 0.1  # the second seed's per-image noise, in units of SPREAD
UNSCORED = "000000.png"
SNAPSHOT_S = 30.0
SNAPSHOT_VALUE = -1.0e6


def two_seed_run(root: Path) -> tuple[FixtureRun, RunData, pd.DataFrame]:
    """Build the fixture run under `root` and return it, its RunData with two seeds and snapshot
    rows, and the final-checkpoint rows of both seeds (what the tables must read)."""
    fixture = build_run(root)
    run = load_run(fixture.run_dir, fixture.images_root)
    first = run.scores.assign(seed=SEED, snapshot_s=math.nan)
    rng = np.random.default_rng(SECOND_SEED)
    scale = first["metric"].map(SPREAD).fillna(0.0)  # known_pixel_dev stays as it is
    moved = first["model"].map(SHIFT) + NOISE * rng.normal(size=len(first))
    second = first.assign(seed=SECOND_SEED, value=first["value"] + scale * moved)
    # One image alpha's second run did not score: its cells' mean over seeds (the mean of the two
    # seed means) then differs from the mean over all rows.
    second.loc[(second["model"] == "alpha") & (second["image"] == UNSCORED), "value"] = math.nan
    final = pd.concat([first, second], ignore_index=True)
    snapshots = final.assign(snapshot_s=SNAPSHOT_S, value=SNAPSHOT_VALUE)
    run.scores = pd.concat([snapshots.iloc[::2], final, snapshots.iloc[1::2]], ignore_index=True)
    return fixture, run, final
