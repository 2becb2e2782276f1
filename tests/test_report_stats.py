"""The report's statistics: paired Wilcoxon tests, Holm's correction, intervals and the bold rule,
checked against scipy, statsmodels (a dev dependency), hand counts and plain-loop recomputations,
never through the report's own code path. Runs with several seeds: test_report_seeds.py."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap, wilcoxon
from statref import hand_holm, reference_two_way
from statsmodels.stats.multitest import multipletests

from harness.report import render
from harness.report.comparisons import holm, paired_p
from harness.report.rundata import RunData
from harness.report.score_tables import main_table
from harness.report.stats import bootstrap_ci, two_way_bootstrap_ci

HIGHER = {"psnr": True, "lpips": False}
MAIN = render.Layout(("test_set", "metric"), show_n=True)


# --- the paired test and Holm ----------------------------------------------------------------


def test_all_positive_differences_are_significant_by_the_exact_count() -> None:
    reference = np.linspace(20.0, 30.0, 10)
    better = reference + np.arange(1, 11) * 0.01  # ten positive, distinct differences
    # Exact null: each of the 2^10 sign patterns equally likely; W- = 0 only for all-positive,
    # so the two-sided p-value is 2 / 2^10.
    assert paired_p(better, reference) == pytest.approx(2 / 2**10, abs=1e-15)
    assert paired_p(better, reference) == wilcoxon(better - reference).pvalue
    assert paired_p(reference, better) == pytest.approx(2 / 2**10, abs=1e-15)


def test_symmetric_differences_are_not_significant() -> None:
    reference = np.full(8, 25.0)
    noisy = reference + np.array([1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0])
    # W+ = W- = 18 is the centre of the null distribution: p = 1.
    assert paired_p(noisy, reference) == 1.0
    assert wilcoxon(noisy - reference).pvalue == 1.0


@pytest.mark.parametrize("size", [12, 40, 120])  # exact below 50 pairs, normal approximation above
def test_paired_p_is_scipys_wilcoxon_on_the_differences(size: int) -> None:
    rng = np.random.default_rng(size)
    a = rng.normal(25.0, 2.0, size)
    b = a + rng.normal(0.3, 1.0, size)
    b[:3] = a[:3]  # zero differences: dropped (zero_method="wilcox")
    expected = wilcoxon(b - a, zero_method="wilcox").pvalue
    assert paired_p(b, a) == pytest.approx(expected, rel=1e-12)


def test_paired_p_without_evidence() -> None:
    assert paired_p(np.ones(5), np.ones(5)) == 1.0  # every difference zero: no evidence
    assert math.isnan(paired_p(np.array([]), np.array([])))
    assert math.isnan(paired_p(np.array([np.nan]), np.array([1.0])))


def test_holm_matches_a_hand_computation() -> None:
    # m = 4: sorted 0.005, 0.01, 0.03, 0.04 → 4·0.005, 3·0.01, 2·0.03, max(0.06, 1·0.04).
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    expected = [0.03, 0.06, 0.06, math.nan, 0.02]
    np.testing.assert_allclose(holm(p), expected, rtol=1e-12, equal_nan=True)
    finite = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(holm(np.array(finite)), hand_holm(finite), rtol=1e-12)
    assert holm(np.array([0.6, 0.9])).tolist() == [1.0, 1.0]  # capped at 1
    assert holm(np.array([])).size == 0


def test_holm_matches_statsmodels() -> None:
    p = np.random.default_rng(3).uniform(0.0, 0.1, 25)
    _, expected, _, _ = multipletests(p, alpha=0.05, method="holm")
    np.testing.assert_allclose(holm(p), expected, rtol=1e-12)


# --- intervals -------------------------------------------------------------------------------


def test_bootstrap_ci_agrees_with_scipys_percentile_bootstrap() -> None:
    data = np.random.default_rng(5).normal(26.0, 2.0, 200)
    ours = bootstrap_ci(data, seed=0)
    theirs = bootstrap(
        (data,), np.mean, n_resamples=20000, method="percentile", rng=np.random.default_rng(1)
    ).confidence_interval
    # Two Monte Carlo estimates of the same percentiles (width ≈ 0.55): a few hundredths apart.
    assert ours == pytest.approx((theirs.low, theirs.high), abs=0.03)


def test_two_way_bootstrap_matches_a_plain_loop_and_reduces_to_one_seed() -> None:
    rng = np.random.default_rng(11)
    matrix = rng.normal(26.0, 2.0, (3, 15)) + np.array([[0.0], [1.5], [-1.0]])
    matrix[1, 4] = np.nan  # seed 1 did not score image 4
    assert two_way_bootstrap_ci(matrix, 7) == pytest.approx(reference_two_way(matrix, 7))
    assert two_way_bootstrap_ci(matrix[:1], 7) == bootstrap_ci(matrix[0], 7)
    # Seeds far apart widen the interval beyond the one-seed one: the seed spread is in it.
    apart = matrix[:2] + np.array([[0.0], [10.0]])
    low, high = two_way_bootstrap_ci(apart, 7)
    one_low, one_high = bootstrap_ci(apart[0], 7)
    assert high - low > 3 * (one_high - one_low)


# --- the bold rule ---------------------------------------------------------------------------


def tie_run(tmp_path: Path) -> RunData:
    """Three models on 20 images: a and b tie (b = a ± 0.1, symmetric), c is worse on each."""
    base = np.linspace(20.0, 30.0, 20)
    lpips = np.linspace(0.1, 0.3, 20)
    wiggle = np.where(np.arange(20) % 2 == 0, 0.1, -0.1)
    scores = {
        "a": {"psnr": base, "lpips": lpips},
        "b": {"psnr": base + wiggle, "lpips": lpips - wiggle / 10},
        "c": {"psnr": base - 1.0 - np.arange(20) * 0.01, "lpips": lpips + 0.05},
    }
    rows = [
        {
            "source": "s",
            "model": model,
            "test_set": "t",
            "image": f"{i:06d}.png",
            "variant": "composite",
            "hole_fraction": 0.25,
            "bin": "(0.2,0.3]",
            "metric": metric,
            "value": float(values[i]),
            "seed": 0,
            "snapshot_s": math.nan,
        }
        for model, metrics in scores.items()
        for metric, values in metrics.items()
        for i in range(20)
    ]
    info = {"seed": 0, "models": ["a", "b", "c"]}
    return RunData(tmp_path, info, [], pd.DataFrame(rows), {})


def test_bold_marks_the_best_and_the_tie_and_the_marker_the_clearly_worse(tmp_path: Path) -> None:
    run = tie_run(tmp_path)
    table = main_table(run, "s")
    by = {(r["metric"], r["model"]): r for r in table.to_dict("records")}
    rows = run.scores
    p_values = []
    for metric in ("psnr", "lpips"):
        assert by[(metric, "a")]["compared_to"] == "a"  # a's mean is the best (b ties on psnr)
        for model in ("b", "c"):
            mine = rows[(rows.metric == metric) & (rows.model == model)]["value"].to_numpy()
            best = rows[(rows.metric == metric) & (rows.model == "a")]["value"].to_numpy()
            p_values.append(wilcoxon(mine - best).pvalue)
            assert by[(metric, model)]["p_value"] == pytest.approx(p_values[-1], rel=1e-12)
    adjusted = hand_holm(p_values)
    got = [by[(m, x)]["p_holm"] for m in ("psnr", "lpips") for x in ("b", "c")]
    assert got == pytest.approx(adjusted, rel=1e-12)
    assert adjusted[0] > 0.5 and adjusted[1] < 1e-4  # the tie is a tie, c is clearly worse

    markdown = render.scores_markdown(table, MAIN, HIGHER, "caption")
    for line in markdown.splitlines()[4:]:
        a, b, c = (cell.strip() for cell in line.split("|")[3:6])
        assert a.startswith("**") and b.startswith("**"), line
        assert re.match(r"\d+\.\d+† \[", c), line
    html = render.scores_html(table, MAIN, HIGHER, "caption")
    assert html.count("<strong>") == 4 and html.count("†") == 2
    assert 'data-p-holm="' in html and 'data-compared-to="a"' in html
    assert 'title="n = 20 images; against a: Holm p = 7.6e-06"' in html
    latex = render.scores_latex(table, MAIN, HIGHER, "caption", "tab:t")
    assert latex.count(r"\textbf{") == 4 and latex.count(r"$^\dagger$") == 2


def test_a_row_without_a_known_direction_is_neither_tested_nor_bolded(tmp_path: Path) -> None:
    run = tie_run(tmp_path)
    run.scores = run.scores.assign(metric=run.scores["metric"].replace("psnr", "mystery"))
    table = main_table(run, "s")
    mystery = table[table["metric"] == "mystery"]
    assert mystery["p_value"].isna().all() and mystery["compared_to"].isna().all()
    markdown = render.scores_markdown(mystery, MAIN, HIGHER, "caption")
    assert "**" not in markdown and "†" not in markdown
