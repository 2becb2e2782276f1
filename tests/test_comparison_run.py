"""Issue 14's end state on a real run: two reference models (gatedconv trains and keeps snapshots;
classical does not train) run with two training seeds and a snapshot through the local runner,
then the report. Its numbers are recomputed from the ledger with plain SQL, numpy, scipy and
statsmodels, never through the report's code."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from runs import reference, tiny_run_profile
from scipy.stats import wilcoxon
from statsmodels.stats.multitest import multipletests

from harness.pipeline import Pipeline
from harness.progress import SilentReporter
from harness.report.build import build_report
from harness.runners.local import LocalRunner

SEEDS = (0, 1)
SNAPSHOT_S = 1.0
SOURCE, TEST_SET = "scenes", "faces_test"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("comparison")
    models = [reference("gatedconv", budget_s=3.0), reference("classical", budget_s=1.0)]
    profile = dataclasses.replace(
        tiny_run_profile(root, models), seeds=SEEDS, snapshots_s=(SNAPSHOT_S,)
    )
    reporter = SilentReporter(quiet=True)
    summary = Pipeline(profile, root / "run", LocalRunner(reporter=reporter), reporter).run()
    assert not summary.failed, [(s.label, s.reason) for s in summary.failed]
    return build_report(root / "run").path


def ledger_rows(report: Path, metric: str) -> pd.DataFrame:
    with sqlite3.connect(report.parent / "ledger.sqlite") as conn:
        return pd.read_sql_query(
            "SELECT s.model, s.seed, s.snapshot_s, s.image, s.value FROM scores s"
            " JOIN steps t ON t.key = s.step_key WHERE t.status = 'done'"
            " AND s.metric = ? AND s.variant = 'composite'",
            conn,
            params=(metric,),
        )


@pytest.mark.slow
def test_per_seed_means_and_spread_come_from_the_ledger(report: Path) -> None:
    rows = ledger_rows(report, "psnr")
    final = rows[rows["snapshot_s"].isna()]
    assert set(final["seed"]) == set(SEEDS)
    per_seed = final.groupby(["model", "seed"])["value"].mean()
    csv = pd.read_csv(report / "tables" / f"main_{SOURCE}_seeds.csv")
    csv = csv[(csv["metric"] == "psnr") & (csv["test_set"] == TEST_SET)]
    assert len(csv) == 2 * len(SEEDS)
    for row in csv.itertuples():
        assert row.mean == pytest.approx(per_seed[(row.model, row.seed)], abs=1e-9)
    main = pd.read_csv(report / "tables" / f"main_{SOURCE}.csv")
    main = main[(main["metric"] == "psnr") & (main["test_set"] == TEST_SET)]
    for row in main.itertuples():
        seeds = per_seed[row.model]
        assert row.seeds == len(SEEDS)
        assert row.mean == pytest.approx(seeds.mean(), abs=1e-9)
        assert (row.seed_min, row.seed_max) == pytest.approx((seeds.min(), seeds.max()))
    markdown = (report / "report.md").read_text()
    assert f"{len(SEEDS)} seeds" in markdown and "min–max over training seeds" in markdown


@pytest.mark.slow
def test_paired_p_values_equal_scipy_and_statsmodels_on_the_ledger(report: Path) -> None:
    main = pd.read_csv(report / "tables" / f"main_{SOURCE}.csv")
    tested = main[main["p_value"].notna()]
    assert len(tested) > 0
    for row in tested.itertuples():
        rows = ledger_rows(report, row.metric)
        final = rows[rows["snapshot_s"].isna()]
        by_image = final.groupby(["model", "image"])["value"].mean()  # over seeds first
        ours, best = by_image[row.model], by_image[row.compared_to]
        images = sorted(set(ours.index) & set(best.index))
        differences = ours[images].to_numpy() - best[images].to_numpy()
        if np.all(differences == 0):
            assert row.p_value == 1.0
        else:
            assert row.p_value == pytest.approx(wilcoxon(differences).pvalue, rel=1e-12)
    # Holm over the table's comparisons (one family per training source)
    _, expected, _, _ = multipletests(tested["p_value"].to_numpy(), method="holm")
    assert tested["p_holm"].to_numpy() == pytest.approx(expected, rel=1e-12)
    assert "Holm-corrected" in (report / "tables" / f"main_{SOURCE}.tex").read_text()


@pytest.mark.slow
def test_snapshots_are_scored_and_plotted_against_training_time(report: Path) -> None:
    rows = ledger_rows(report, "psnr")
    snap = rows[rows["snapshot_s"] == SNAPSHOT_S]
    assert set(snap["model"]) == {"gatedconv"}  # classical claims no snapshots
    assert set(snap["seed"]) == set(SEEDS)
    points = pd.read_csv(report / "tables" / "score_time.csv")
    point = points[
        (points["model"] == "gatedconv")
        & (points["metric"] == "psnr")
        & (points["checkpoint"] != "final")
    ]
    assert point["training_s"].tolist() == [SNAPSHOT_S]
    seed_means = snap.groupby("seed")["value"].mean()
    assert point["mean"].item() == pytest.approx(seed_means.mean(), abs=1e-9)
    assert (report / "figures" / f"time_{SOURCE}.png").stat().st_size > 0
    assert f"figures/time_{SOURCE}.png" in (report / "report.md").read_text()
    assert "Score against training time" in (report / "report.html").read_text()


@pytest.mark.slow
def test_complexity_is_measured_at_the_run_size_and_the_reference(report: Path) -> None:
    table = pd.read_csv(report / "tables" / "complexity.csv")
    gated = table[table["model"] == "gatedconv"].set_index("image_size")
    assert gated["size_role"].to_dict() == {32: "run", 256: "reference"}
    # a fully convolutional net: FLOPs grow with the pixel count
    assert gated.loc[256, "gflops"] / gated.loc[32, "gflops"] == pytest.approx(64, rel=0.05)
    assert gated["peak_memory_mib"].isna().all()  # no CPU value is called peak memory
    classical = table[table["model"] == "classical"]
    assert classical["gflops"].isna().all()
    assert "n/a (uncounted: cv2.inpaint)" in (report / "report.md").read_text()
