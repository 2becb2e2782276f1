"""Reports of runs with several training seeds and snapshots: cells over seeds, their min–max, the
paired test on per-image means over seeds, per-seed CSVs, and what a one-seed report keeps,
recomputed from the fixtures' plain rows (tests/seedfixture.py) with scipy and plain loops."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from reportfixture import SEED, shared_report
from scipy.stats import wilcoxon
from seedfixture import SEEDS, SNAPSHOT_VALUE, two_seed_run
from statref import hand_holm, reference_two_way

from harness.report.build import write_report
from harness.report.rundata import RunData
from harness.report.score_tables import area_bin_table, main_table

HIGHER = {"psnr": True, "lpips": False}


# --- two training seeds ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunData, pd.DataFrame, Path]:
    _, run, final = two_seed_run(tmp_path_factory.mktemp("two-seeds"))
    report = write_report(run).path
    return run, final, report


def cell_matrix(final: pd.DataFrame, **where: Any) -> dict[int, dict[str, float]]:
    """seed → image → value of one composite cell, from the plain rows."""
    out: dict[int, dict[str, float]] = {}
    for r in final.to_dict("records"):
        wanted = r["variant"] == "composite" and all(r[k] == v for k, v in where.items())
        if wanted and not math.isnan(r["value"]):
            out.setdefault(int(r["seed"]), {})[r["image"]] = r["value"]
    return out


def test_cells_over_two_seeds_are_the_mean_of_seed_means_with_their_min_max(
    seeded: tuple[RunData, pd.DataFrame, Path],
) -> None:
    run, final, _ = seeded
    table = main_table(run, "place2")
    checked = moved = 0
    for cell in table[table["n"] > 0].to_dict("records"):
        if cell["metric"] not in HIGHER:
            continue
        where = {k: cell[k] for k in ("test_set", "metric", "model")}
        by_seed = cell_matrix(final, source="place2", **where)
        seed_means = [sum(v.values()) / len(v) for v in by_seed.values()]
        assert sorted(by_seed) == list(SEEDS)
        assert cell["seeds"] == 2 and cell["n"] == len(by_seed[SEEDS[0]])
        assert cell["mean"] == pytest.approx(sum(seed_means) / 2, abs=1e-9)
        pooled = [x for v in by_seed.values() for x in v.values()]
        moved += abs(cell["mean"] - sum(pooled) / len(pooled)) > 1e-6
        assert (cell["seed_min"], cell["seed_max"]) == pytest.approx(
            (min(seed_means), max(seed_means)), abs=1e-9
        )
        images = sorted(by_seed[SEEDS[0]])
        matrix = np.array([[by_seed[s].get(i, math.nan) for i in images] for s in SEEDS])
        low, high = reference_two_way(matrix, SEED)
        assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((low, high), abs=1e-9)
        checked += 1
    assert checked >= 10 and moved > 0  # some cell where a seed missed an image


def test_the_paired_test_averages_each_image_over_its_seeds(
    seeded: tuple[RunData, pd.DataFrame, Path],
) -> None:
    run, final, _ = seeded
    table = main_table(run, "celeba")
    tested = table[table["p_value"].notna()]
    assert len(tested) > 0
    expected = []
    for cell in tested.to_dict("records"):
        where = {"source": "celeba", "test_set": cell["test_set"], "metric": cell["metric"]}
        mine = cell_matrix(final, model=cell["model"], **where)
        best = cell_matrix(final, model=cell["compared_to"], **where)

        def per_image(by_seed: dict[int, dict[str, float]]) -> dict[str, float]:
            names = {i for values in by_seed.values() for i in values}
            return {i: float(np.mean([v[i] for v in by_seed.values() if i in v])) for i in names}

        a, b = per_image(mine), per_image(best)
        both = sorted(set(a) & set(b))
        expected.append(wilcoxon([a[i] - b[i] for i in both]).pvalue)
    assert tested["p_value"].tolist() == pytest.approx(expected, rel=1e-12)
    assert tested["p_holm"].tolist() == pytest.approx(hand_holm(expected), rel=1e-12)


def test_snapshot_rows_never_reach_the_tables(seeded: tuple[RunData, pd.DataFrame, Path]) -> None:
    run, _, report = seeded
    for table in (main_table(run, "place2"), area_bin_table(run, "place2")):
        assert (table["mean"].dropna() > SNAPSHOT_VALUE / 2).all()
    # Snapshots belong in the score-against-training-time points only.
    for path in (report / "tables").glob("*.csv"):
        if path.name != "score_time.csv":
            assert str(int(SNAPSHOT_VALUE)) not in path.read_text(), path
    points = pd.read_csv(report / "tables" / "score_time.csv")
    assert (points.loc[points["checkpoint"] != "final", "mean"] == SNAPSHOT_VALUE).all()
    worst = pd.read_csv(report / "tables" / "worst_cases.csv")
    assert set(worst["seed"]) <= set(SEEDS) and (worst["value"] > SNAPSHOT_VALUE / 2).all()
    gamma = worst[(worst["model"] == "gamma") & (worst["source"] == "place2")]
    lpips = run.scores[
        (run.scores["model"] == "gamma")
        & (run.scores["source"] == "place2")
        & (run.scores["metric"] == "lpips")
        & (run.scores["variant"] == "composite")
        & run.scores["snapshot_s"].isna()
    ]
    top = lpips.sort_values("value", ascending=False).head(3)
    picked = ["test_set", "image", "seed"]
    assert gamma[picked].values.tolist() == top[picked].values.tolist()
    assert gamma["metric"].tolist() == ["lpips"] * 3
    assert "| metric | value | seed |" in (report / "report.md").read_text()


def test_a_two_seed_report_shows_spread_and_the_rule_in_every_format(
    seeded: tuple[RunData, pd.DataFrame, Path],
) -> None:
    _, final, report = seeded
    md = (report / "report.md").read_text()
    assert re.search(r"\(n = 9; 2 seeds \d+\.\d+–\d+\.\d+\)", md)
    assert "min–max over training seeds" in md and "resampling the images, and the seeds too" in md
    assert "each image's score averaged over its seeds first" in md
    html = (report / "report.html").read_text()
    assert "2 seeds " in html and "min–max over training seeds" in html
    tex = (report / "tables" / "main_place2.tex").read_text()
    assert "2 seeds " in tex and "Holm-corrected" in tex and r"$\alpha$ = 0.05" in tex
    assert "α" not in tex and "†" not in tex  # both spelled in LaTeX
    per_seed = pd.read_csv(report / "tables" / "main_place2_seeds.csv")
    assert sorted(per_seed["seed"].unique()) == list(SEEDS)
    for row in per_seed.sample(10, random_state=0).to_dict("records"):
        where = {k: row[k] for k in ("test_set", "metric", "model")}
        values = cell_matrix(final, source="place2", **where).get(row["seed"], {})
        assert row["n"] == len(values)
        if values:
            assert row["mean"] == pytest.approx(sum(values.values()) / len(values), abs=1e-9)
    area = pd.read_csv(report / "tables" / "area_bins_place2_seeds.csv")
    pooled = area[(area["test_set"] == "all test sets") & (area["metric"] == "psnr")]
    expected: dict[tuple[str, int], float] = {}
    for r in final.to_dict("records"):
        wanted = (r["source"], r["variant"], r["metric"]) == ("place2", "composite", "psnr")
        if wanted and not math.isnan(r["value"]):
            key = (r["model"], int(r["seed"]))
            expected[key] = expected.get(key, 0.0) + r["value"]
    summed = pooled.groupby(["model", "seed"])[["n", "mean"]].apply(
        lambda g: (g["n"] * g["mean"]).sum()
    )
    assert summed.to_dict() == pytest.approx(expected, abs=1e-6)  # the bins add up to the set
    assert (report / "tables" / "raw_place2_seeds.csv").is_file()
    summary = pd.read_csv(report / "tables" / "main_place2.csv")
    assert {"seeds", "seed_min", "seed_max", "p_value", "p_holm"} <= set(summary.columns)


def test_a_one_seed_report_has_no_spread_and_no_per_seed_csv(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    built = shared_report(tmp_path_factory)
    assert " seeds " not in built.main_markdown and "min–max" not in built.main_markdown
    assert not list((built.report / "tables").glob("*_seeds.csv"))
    assert "bold: the best mean of the row" in built.main_markdown
    md = (built.report / "report.md").read_text()
    assert "| rank | test set | image | hole fraction | metric | value |\n" in md  # no seed


# --- a sample-sized run with two seeds and snapshots -----------------------------------------

SAMPLE_MODELS = ("classical", "gatedconv", "madf", "aotgan", "tfill")
SAMPLE_SETS = ("scenes_test", "faces_test", "textures_test")
SAMPLE_METRICS = {"psnr": (26.0, 2.0), "ssim": (0.8, 0.05), "lpips": (0.2, 0.05)}


def sample_sized_run(tmp_path: Path) -> RunData:
    """The `sample` profile's shape (five models, three test sets of 12 images, PSNR, SSIM,
    LPIPS), two training seeds and a snapshot each: madf best, classical worse on every image of
    both seeds by more than any noise, the others near madf."""
    rng = np.random.default_rng(12)
    rows = []
    for test_set, (metric, (centre, spread)) in zip(
        np.repeat(SAMPLE_SETS, 3), list(SAMPLE_METRICS.items()) * 3, strict=True
    ):
        truth = rng.normal(centre, spread, 12)
        sign = -1.0 if metric == "lpips" else 1.0
        for model in SAMPLE_MODELS:
            for seed in (0, 1):
                offset = {"madf": 0.3, "classical": -2.0}.get(model, 0.0) * spread * sign
                noise = rng.normal(0.0, 0.1 * spread, 12)
                for snapshot in (math.nan, 15.0):
                    for i in range(12):
                        value = truth[i] + offset + noise[i] + 0.05 * spread * seed
                        rows.append(
                            {
                                "source": "scenes",
                                "model": model,
                                "test_set": str(test_set),
                                "image": f"{i:06d}.png",
                                "variant": "composite",
                                "hole_fraction": 0.05 + 0.05 * i,
                                "bin": ["(0.01,0.1]", "(0.1,0.2]", "(0.2,0.3]"][i % 3],
                                "metric": metric,
                                "value": SNAPSHOT_VALUE if snapshot == 15.0 else float(value),
                                "seed": seed,
                                "snapshot_s": snapshot,
                            }
                        )
    info = {"seed": 0, "models": list(SAMPLE_MODELS)}
    return RunData(tmp_path, info, [], pd.DataFrame(rows), {})


def test_a_sample_sized_two_seed_run_shows_spread_and_markers_in_every_format(
    tmp_path: Path,
) -> None:
    report = write_report(sample_sized_run(tmp_path)).path
    data = pd.read_csv(report / "tables" / "main_scenes.csv")
    assert len(data) == 3 * 3 * 5 and (data["seeds"] == 2).all()
    classical = data[data["model"] == "classical"]
    assert (classical["compared_to"] == "madf").all() and (classical["p_holm"] < 0.05).all()
    assert classical["p_value"].tolist() == pytest.approx([2 / 2**12] * 9)  # lost on all 12
    per_seed = pd.read_csv(report / "tables" / "main_scenes_seeds.csv")
    assert len(per_seed) == 3 * 3 * 5 * 2 and (per_seed["mean"] > SNAPSHOT_VALUE / 2).all()

    md = (report / "report.md").read_text()
    table = md[md.index("| test set |") :].split("\n\n")[0].splitlines()[2:]
    assert len(table) == 9
    for line in table:
        cells = [c.strip() for c in line.split("|")[3:8]]
        assert all("2 seeds" in c for c in cells), line
        assert cells[SAMPLE_MODELS.index("madf")].startswith("**"), line
        assert re.match(r"\d+\.\d+† \[", cells[SAMPLE_MODELS.index("classical")]), line
    html = (report / "report.html").read_text()
    assert html.count("†") >= 9 and "2 seeds" in html
    tex = (report / "tables" / "main_scenes.tex").read_text()
    assert tex.count(r"$^\dagger$") >= 9 and "2 seeds" in tex
