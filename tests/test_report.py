"""`inpaint-bench report`: every number is recomputed here from the fixture's per-image rows with
plain Python and numpy, never through the report's own code path."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from reportfixture import (
    ALPHA_IMAGE,
    DESCRIBE_FAILURE,
    FAILED,
    IDENTICAL_CELL,
    IDENTICAL_COUNT,
    METRICS_IMAGE,
    MODELS,
    PREDICT_FAILED,
    PREDICT_FAILURE,
    PSNR_CAP,
    SEED,
    SIZE,
    SKIPPED,
    SOURCES,
    TEST_SETS,
    TRAIN_FAILURE,
    BuiltReport,
    shared_report,
)
from statref import hand_holm

from harness.report import grids, registry, render
from harness.report.grids import choose_samples
from harness.report.rundata import load_run
from harness.report.score_tables import main_table
from harness.report.stats import bootstrap_ci

REPO = Path(__file__).resolve().parents[1]
MAIN_METRICS = ("psnr", "ssim", "lpips", "l1_hole", "psnr_hole")
HIGHER = {"psnr": True, "ssim": True, "lpips": False, "l1_hole": False, "psnr_hole": True}
LABELS = {
    "PSNR (dB) ↑": "psnr",
    "SSIM ↑": "ssim",
    "LPIPS ↓": "lpips",
    "Hole L1 (uint8 levels, 0–255) ↓": "l1_hole",
    "Hole PSNR (dB) ↑": "psnr_hole",
}
BINS = ["(0.01,0.1]", "(0.1,0.2]", "(0.2,0.3]", "(0.3,0.4]", "(0.4,0.5]", "(0.5,0.6]"]
ATOL = 1e-9  # CSV text → float: 17 significant digits round-trip, so only last-bit noise


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltReport:
    return shared_report(tmp_path_factory)


# --- independent references ------------------------------------------------------------------


def values(rows: list[dict[str, Any]], variant: str = "composite", **where: Any) -> list[float]:
    """Per-image values of one cell, ordered by (test set, image), missing ones dropped."""
    picked = [
        r for r in rows if r["variant"] == variant and all(r[k] == v for k, v in where.items())
    ]
    picked.sort(key=lambda r: (r["test_set"], r["image"]))
    return [r["value"] for r in picked if r["value"] is not None]


def reference_bootstrap(data: list[float], seed: int) -> tuple[float, float]:
    """Percentile bootstrap with the report's documented draw: one (1000 × n) index matrix
    from default_rng(seed); each resample's mean summed by hand."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(data), size=(1000, len(data)))
    means = [sum(data[j] for j in row) / len(data) for row in draws.tolist()]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def markdown_tables(text: str) -> Iterator[tuple[str, list[str], list[list[str]]]]:
    """(caption, header, rows) of each Markdown table in `text`."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and (i == 0 or not lines[i - 1].startswith("|")):
            caption = lines[i - 2] if i >= 2 else ""
            block = []
            for row in lines[i:]:
                if not row.startswith("|"):
                    break
                block.append([c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]])
            yield caption, block[0], block[2:]


def main_markdown_table(built: BuiltReport, source: str) -> tuple[list[str], list[list[str]]]:
    for caption, header, rows in markdown_tables(built.main_markdown):
        if f"models trained on {source}." in caption:
            return header, rows
    raise AssertionError(f"no main table for {source}")


def cell_text(built: BuiltReport, source: str, test_set: str, metric: str, model: str) -> str:
    header, rows = main_markdown_table(built, source)
    current = ""
    for row in rows:
        current = row[0] or current
        if current == test_set and LABELS[row[1]] == metric:
            return row[header.index(model)]
    raise AssertionError(f"no row {test_set}/{metric}")


# --- main tables -----------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_main_table_numbers_match_an_independent_recomputation(
    built: BuiltReport, source: str
) -> None:
    table = pd.read_csv(built.report / "tables" / f"main_{source}.csv")
    rows = built.fixture.rows
    assert set(table["model"]) == set(MODELS)  # failed and skipped models have no cells
    assert len(table) == len(TEST_SETS) * len(MAIN_METRICS) * len(MODELS)
    for cell in table.to_dict("records"):
        data = values(
            rows,
            source=source,
            test_set=cell["test_set"],
            metric=cell["metric"],
            model=cell["model"],
        )
        assert cell["n"] == len(data)
        if not data:
            assert math.isnan(cell["mean"]) and math.isnan(cell["ci_low"])
            continue
        assert cell["mean"] == pytest.approx(sum(data) / len(data), abs=ATOL)
        low, high = reference_bootstrap(data, SEED)
        assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((low, high), abs=ATOL)
        assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"]


def paired_values(rows: list[dict[str, Any]], model: str, best: str, **where: Any) -> np.ndarray:
    """The per-image differences model − best over the images both scored."""
    mine = {r["image"]: r["value"] for r in rows if r["model"] == model and _at(r, where)}
    theirs = {r["image"]: r["value"] for r in rows if r["model"] == best and _at(r, where)}
    both = sorted(i for i in mine if mine[i] is not None and theirs.get(i) is not None)
    return np.array([mine[i] - theirs[i] for i in both])


def _at(row: dict[str, Any], where: dict[str, Any]) -> bool:
    return row["variant"] == "composite" and all(row[k] == v for k, v in where.items())


@pytest.mark.parametrize("source", SOURCES)
def test_bold_marks_the_best_and_every_model_not_significantly_different(
    built: BuiltReport, source: str
) -> None:
    from scipy.stats import wilcoxon

    header, rows = main_markdown_table(built, source)
    checked_lower = 0
    current = ""
    tests: list[tuple[int, str, float]] = []  # (row index, model, p-value)
    bests: dict[int, str] = {}
    for index, row in enumerate(rows):
        current = row[0] or current
        metric = LABELS[row[1]]
        where = {"source": source, "test_set": current, "metric": metric}
        means = {
            m: sum(v) / len(v)
            for m in MODELS
            if (v := values(built.fixture.rows, model=m, **where))
        }
        if len(means) < 2:  # nothing to beat: no bold
            assert not any(c.startswith("**") for c in row[2:]), row
            continue
        best = (max if HIGHER[metric] else min)(means, key=means.__getitem__)
        bests[index] = best
        for model in means.keys() - {best}:
            differences = paired_values(built.fixture.rows, model, best, **where)
            tests.append((index, model, float(wilcoxon(differences).pvalue)))
        if not HIGHER[metric] and best != max(means, key=means.__getitem__):
            checked_lower += 1
    assert checked_lower > 0, "no row where lower-is-better changes the winner"
    adjusted = hand_holm([p for _, _, p in tests])
    for (index, model, _), p_holm in zip(tests, adjusted, strict=True):
        text = rows[index][header.index(model)]
        assert text.startswith("**") == (p_holm >= 0.05), (rows[index], model, p_holm)
        assert ("†" in text.split(" ")[0]) == (p_holm < 0.05), (rows[index], model)
    for index, best in bests.items():
        assert rows[index][header.index(best)].startswith("**"), rows[index]
    data = pd.read_csv(built.report / "tables" / f"main_{source}.csv")
    tested = data[data["p_value"].notna()]
    assert len(tested) == len(tests)
    by_cell = {(r["test_set"], r["metric"], r["model"]): r for r in tested.to_dict("records")}
    labels = [rows[i][0] for i in range(len(rows))]
    for (index, model, p), p_holm in zip(tests, adjusted, strict=True):
        test_set = next(t for t in reversed(labels[: index + 1]) if t)
        cell = by_cell[(test_set, LABELS[rows[index][1]], model)]
        assert cell["p_value"] == pytest.approx(p, abs=1e-12)
        assert cell["p_holm"] == pytest.approx(p_holm, abs=1e-12)
        assert cell["compared_to"] == bests[index]
    assert f"Holm-corrected over the table's {len(tests)} comparisons" in built.main_markdown


def test_markdown_cells_show_the_mean_its_interval_and_n(built: BuiltReport) -> None:
    data = values(
        built.fixture.rows, source="celeba", test_set="places_test", metric="psnr", model="alpha"
    )
    low, high = reference_bootstrap(data, SEED)
    text = cell_text(built, "celeba", "places_test", "psnr", "alpha")
    mean = f"{sum(data) / len(data):.2f}"
    shown = f"[{low:.2f}, {high:.2f}] (n = {len(data)})"
    assert text in (f"**{mean}** {shown}", f"{mean} {shown}")
    assert "percentile-bootstrap interval" in built.main_markdown
    assert "n: the images with a score" in built.main_markdown


def _hand_count_identical(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], int]:
    """Count, per composite cell, the images whose PSNR-type score is the fixture's cap."""
    counts: dict[tuple[str, ...], int] = {}
    for r in rows:
        if r["variant"] == "composite" and r["metric"] in ("psnr", "psnr_hole"):
            key = (r["source"], r["test_set"], r["metric"], r["model"])
            counts[key] = counts.get(key, 0) + (r["value"] == PSNR_CAP)
    return counts


@pytest.mark.parametrize("source", SOURCES)
def test_identical_images_are_counted_per_cell_kept_in_the_mean_and_explained(
    built: BuiltReport, source: str
) -> None:
    counts = _hand_count_identical(built.fixture.rows)
    table = pd.read_csv(built.report / "tables" / f"main_{source}.csv")
    for cell in table.to_dict("records"):
        key = (source, cell["test_set"], cell["metric"], cell["model"])
        assert cell["identical"] == counts.get(key, 0), key
        text = cell_text(built, source, cell["test_set"], cell["metric"], cell["model"])
        if not cell["n"]:
            assert "(" not in text.replace("(weights missing)", ""), (key, text)
        elif cell["identical"]:
            assert text.endswith(f"(n = {cell['n']}; {cell['identical']} identical)"), text
        else:
            assert text.endswith(f"(n = {cell['n']})"), (key, text)
    src, model, test_set = IDENTICAL_CELL
    flagged = table[table["identical"] > 0]
    if source != src:
        assert flagged.empty
        return
    assert sorted(flagged["metric"]) == ["psnr", "psnr_hole"]
    assert set(flagged["identical"]) == {IDENTICAL_COUNT}
    # The rule the notes state: the capped images stay in the mean at the cap.
    data = values(built.fixture.rows, source=src, test_set=test_set, metric="psnr", model=model)
    assert data.count(PSNR_CAP) == IDENTICAL_COUNT
    psnr = flagged[flagged["metric"] == "psnr"].iloc[0]
    assert psnr["n"] == len(data) and psnr["mean"] == pytest.approx(sum(data) / len(data))
    for caption, _header, _rows in markdown_tables(built.main_markdown):
        if f"models trained on {source}." in caption:
            assert "scores 148.13 dB instead of infinity" in caption
            assert "stay in the mean and the interval at that value" in caption
    html = (built.report / "report.html").read_text()
    assert f'data-identical="{IDENTICAL_COUNT}"' in html
    tex = (built.report / "tables" / f"main_{source}.tex").read_text()
    assert f"; {IDENTICAL_COUNT} identical)" in tex


def test_the_psnr_cap_marks_exact_matches_only() -> None:
    """The report's cap agrees with the metrics image, and scikit-image's PSNR (no floor) says
    why the cap is safe: identical images are +inf there, and the smallest real difference of a
    512² image is far below the cap."""
    skimage_metrics = pytest.importorskip("skimage.metrics")
    metrics = _load_metrics_module()
    gt = np.random.default_rng(0).integers(0, 256, size=(1, 512, 512, 3), dtype=np.uint8)
    off_by_one = gt.copy()
    off_by_one[0, 0, 0, 0] ^= 1
    assert math.isclose(registry.PSNR_CAP_DB, metrics.PSNR_CAP_DB, abs_tol=1e-12)
    capped = float(metrics.psnr(gt, gt)[0])
    assert registry.is_identical("psnr", capped) and registry.is_identical("psnr_hole", capped)
    assert not registry.is_identical("ssim", capped)
    with np.errstate(divide="ignore"):
        assert skimage_metrics.peak_signal_noise_ratio(gt[0], gt[0], data_range=255) == np.inf
    nearest = skimage_metrics.peak_signal_noise_ratio(gt[0], off_by_one[0], data_range=255)
    assert float(metrics.psnr(off_by_one, gt)[0]) == pytest.approx(nearest)
    assert nearest < registry.PSNR_CAP_DB - 40 and not registry.is_identical("psnr", nearest)
    assert not registry.is_identical("psnr", math.nan)


def test_lpips_weights_missing_says_once_how_to_get_them(built: BuiltReport) -> None:
    report = (built.report / "report.md").read_text()
    # Only place2's main table has an LPIPS cell without weights (celeba's is a silent NULL).
    assert report.count("BAKE_WEIGHTS=1") == 1 == built.main_markdown.count("BAKE_WEIGHTS=1")
    place2 = report.index("### Trained on place2")
    assert place2 < report.index("BAKE_WEIGHTS=1") < report.index("### Trained on celeba")
    assert "docs/docker.md" in report


def test_latex_captions_leave_the_numbering_to_latex(built: BuiltReport) -> None:
    assert "*Table 1: models trained on place2." in built.main_markdown
    for path in (built.report / "tables").glob("*.tex"):
        captions = re.findall(r"\\caption\{(.*)\}", path.read_text())
        assert len(captions) == 1, path
        assert not captions[0].startswith("Table"), path
    main = (built.report / "tables" / "main_place2.tex").read_text()
    assert r"\caption{Models trained on place2." in main


def test_missing_values_render_as_na_never_as_a_number(built: BuiltReport) -> None:
    weights = cell_text(built, "place2", "celeba_test", "lpips", "beta")
    assert weights == "n/a (weights missing)"
    assert cell_text(built, "celeba", "places_test", "lpips", "gamma") == "n/a"
    table = pd.read_csv(built.report / "tables" / "main_place2.csv")
    cell = table[
        (table.model == "beta") & (table.test_set == "celeba_test") & (table.metric == "lpips")
    ].iloc[0]
    assert cell["n"] == 0 and math.isnan(cell["mean"]) and cell["missing"] == weights
    source, model, test_set = PREDICT_FAILED  # no scores at all: the cell says why
    assert cell_text(built, source, test_set, "psnr", model) == "failed"
    html = (built.report / "report.html").read_text()
    assert '<td class="na">n/a (weights missing)</td>' in html
    assert "n/a (weights missing)" in (built.report / "tables" / "main_place2.tex").read_text()


def test_csv_round_trips_to_the_table_data(built: BuiltReport) -> None:
    run = load_run(built.fixture.run_dir, built.fixture.images_root)
    for source in SOURCES:
        # pandas reads "n/a" as NaN by default; only an empty cell is a missing number here.
        path = built.report / "tables" / f"main_{source}.csv"
        read = pd.read_csv(path, keep_default_na=False, na_values=[""])
        data = main_table(run, source)
        assert list(read.columns) == list(data.columns)
        pd.testing.assert_frame_equal(
            read.fillna({"missing": "", "compared_to": ""}),
            data.fillna({"missing": "", "compared_to": ""}),
            check_dtype=False,
            atol=ATOL,
            rtol=0,
        )


def test_a_row_with_one_value_is_not_bolded() -> None:
    cells = pd.DataFrame(
        [
            {
                "test_set": "t",
                "metric": "psnr",
                "model": m,
                "n": n,
                "mean": v,
                "ci_low": v,
                "ci_high": v,
                "missing": None if n else "failed",
            }
            for m, n, v in (("a", 3, 20.0), ("b", 0, math.nan))
        ]
    )
    _, rows = render.score_grid(cells, render.Layout(), {"psnr": True})
    assert [c.best for c in rows[0][1] if c is not None] == [False, False]
    both = cells.assign(n=3, mean=[20.0, 21.0])
    _, rows = render.score_grid(both, render.Layout(), {"psnr": True})
    assert [c.best for c in rows[0][1] if c is not None] == [False, True]


def test_a_test_set_without_any_scores_still_gets_its_rows(built: BuiltReport) -> None:
    run = load_run(built.fixture.run_dir, built.fixture.images_root)
    run.scores = run.scores[run.scores["test_set"] != "places_test"]
    table = main_table(run, "celeba")
    empty = table[table["test_set"] == "places_test"]
    assert len(empty) == len(MAIN_METRICS) * len(MODELS) and (empty["n"] == 0).all()
    beta = empty[empty["model"] == "beta"]
    assert set(beta["missing"]) == {"failed"}  # its predict step failed
    assert set(empty[empty["model"] == "alpha"]["missing"]) == {"n/a"}


# --- raw, known pixels, area bins ------------------------------------------------------------


def test_raw_table_and_known_pixel_deviation(built: BuiltReport) -> None:
    rows = built.fixture.rows
    raw = pd.read_csv(built.report / "tables" / "raw_place2.csv")
    for model in MODELS:
        cell = raw[
            (raw.model == model)
            & (raw.metric == "known_pixel_dev")
            & (raw.test_set == "celeba_test")
        ].iloc[0]
        data = values(
            rows,
            "raw",
            source="place2",
            test_set="celeba_test",
            metric="known_pixel_dev",
            model=model,
        )
        assert cell["mean"] == pytest.approx(sum(data) / len(data), abs=ATOL)
    known = pd.read_csv(built.report / "tables" / "known_pixels.csv")
    gamma = known[(known.model == "gamma") & (known.source == "celeba")].iloc[0]
    data = values(rows, "raw", source="celeba", metric="known_pixel_dev", model="gamma")
    assert gamma["mean"] == pytest.approx(sum(data) / len(data), abs=ATOL) and gamma["mean"] > 10
    assert gamma["n"] == len(data) and not gamma["composites"]
    assert gamma["known_pixel_max_abs"] == 120
    alpha = known[(known.model == "alpha") & (known.source == "celeba")].iloc[0]
    assert alpha["mean"] == 0 and alpha["composites"]
    assert "damages the unmasked region" in (built.report / "report.md").read_text()


def test_area_bin_table_matches_a_recomputation(built: BuiltReport) -> None:
    table = pd.read_csv(built.report / "tables" / "area_bins_place2.csv")
    rows = [r for r in built.fixture.rows if r["source"] == "place2"]
    assert list(dict.fromkeys(table["bin"])) == BINS
    assert set(table["test_set"]) == {"all test sets", *TEST_SETS}
    for cell in table.to_dict("records"):
        where = {"metric": cell["metric"], "model": cell["model"], "bin": cell["bin"]}
        if cell["test_set"] != "all test sets":
            where["test_set"] = cell["test_set"]
        data = values(rows, **where)
        assert cell["n"] == len(data), cell
        if data:
            assert cell["mean"] == pytest.approx(sum(data) / len(data), abs=ATOL)
            low, high = reference_bootstrap(data, SEED)
            assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((low, high), abs=ATOL)
    md = (built.report / "report.md").read_text()
    assert "| metric | hole area | alpha | beta | gamma |" in md
    for metric in ("psnr", "psnr_hole", "lpips"):
        assert (built.report / "figures" / f"area_{metric}.png").is_file()


# --- run tables ------------------------------------------------------------------------------


def test_failed_and_skipped_jobs_are_shown_not_dropped(built: BuiltReport) -> None:
    jobs = pd.read_csv(built.report / "tables" / "jobs.csv").fillna("")
    failed = jobs[(jobs.kind == "train") & (jobs.model == FAILED)]
    assert sorted(failed["source"]) == sorted(SOURCES)
    assert set(failed["status"]) == {"failed"} and set(failed["reason"]) == {TRAIN_FAILURE}
    describe = jobs[(jobs.kind == "describe") & (jobs.model == FAILED)].iloc[0]
    assert describe["reason"] == DESCRIBE_FAILURE
    not_run = jobs[(jobs.kind == "predict, score") & (jobs.model == FAILED)]
    assert set(not_run["status"]) == {"not run"} and len(not_run) == len(SOURCES)
    source, model, test_set = PREDICT_FAILED
    predict = jobs[(jobs.kind == "predict") & (jobs.model == model)].iloc[0]
    assert (predict["source"], predict["test_set"]) == (source, test_set)
    assert (predict["status"], predict["reason"]) == ("failed", PREDICT_FAILURE)
    skipped = jobs[jobs.model == SKIPPED].iloc[0]
    assert skipped["status"] == "skipped" and "no step in the ledger" in skipped["reason"]
    note = f"Not shown: {FAILED} (training failed: {TRAIN_FAILURE}); {SKIPPED} (skipped)."
    assert note in built.main_markdown
    training = pd.read_csv(built.report / "tables" / "training.csv")
    broken = training[training.model == FAILED]
    assert set(broken["status"]) == {"failed"} and set(broken["stop_reason"]) == {TRAIN_FAILURE}
    models = pd.read_csv(built.report / "tables" / "models.csv").set_index("model")
    assert models.loc[SKIPPED, "status"] == "skipped"
    assert models.loc[FAILED, "status"].startswith("failed")


def test_training_table_curves_and_run_metadata(built: BuiltReport) -> None:
    training = pd.read_csv(built.report / "tables" / "training.csv")
    alpha = training[(training.model == "alpha") & (training.source == "place2")].iloc[0]
    assert (alpha["status"], alpha["stop_reason"], alpha["steps"]) == ("done", "budget", 60)
    assert alpha["folder_hash"].startswith("sha256:")  # read from an older ledger's image_digest
    curves = pd.read_csv(built.report / "tables" / "curves.csv")
    l1 = curves[(curves.model == "alpha") & (curves.source == "place2") & (curves.loss == "l1")]
    assert list(l1["step"]) == [0, 10, 20, 30, 40, 50, 60]  # both attempts of a resumed job
    assert l1["value"].tolist() == pytest.approx([1 / (s + 1) for s in l1["step"]])
    assert {"adv", "l1"} == set(curves[curves.model == "alpha"]["loss"])
    for source in SOURCES:
        assert (built.report / "figures" / f"curves_{source}.png").is_file()
    run = pd.read_csv(built.report / "tables" / "run.csv").set_index("field")["value"]
    assert run["seed"] == str(SEED) and run["device"] == "cuda" and run["profile"] == "fixture"
    models = pd.read_csv(built.report / "tables" / "models.csv").set_index("model")
    assert models.loc["alpha", "upstream_commit"] == "a" * 40
    assert models.loc["alpha", "status"] == "ok"
    assert models.loc["beta", "status"] == "failed (1 of 10 steps)"  # one predict step
    assert pd.isna(models.loc["beta", "upstream_url"])  # its manifest says upstream: null


def test_models_table_names_what_ran_metrics_image_included(built: BuiltReport) -> None:
    models = pd.read_csv(built.report / "tables" / "models.csv").set_index("model")
    alpha, scorer = models.loc["alpha"], models.loc["metrics (scorer)"]
    # the step results' folder hash (written by the fixture's ledger) wins over run.json's
    assert (
        alpha["folder_hash"].startswith("sha256:") and alpha["folder_hash"] != "sha256:" + "f" * 64
    )
    for key in ("docker_image", "base_image", "base_image_id"):
        assert alpha[key] == ALPHA_IMAGE[key], key
        assert scorer[key] == METRICS_IMAGE[key], key
    assert pd.isna(models.loc["beta", "docker_image"])  # a local run records no image ID
    md = (built.report / "report.md").read_text()
    assert "| metrics (scorer) | ok | 333333333333 | inpaint-bench/base:cuda | 222222222222 |" in md


# --- LaTeX -----------------------------------------------------------------------------------


def test_latex_tables_are_booktabs_with_escaped_text(built: BuiltReport) -> None:
    files = sorted((built.report / "tables").glob("*.tex"))
    assert {f.stem for f in files} >= {f"main_{s}" for s in SOURCES} | {"complexity", "jobs"}
    for path in files:
        text = path.read_text()
        order = [text.index(r"\toprule"), text.index(r"\midrule"), text.rindex(r"\bottomrule")]
        assert order == sorted(order), path
        assert text.count(r"\begin{tabular}") == 1 == text.count(r"\end{tabular}"), path
        assert re.search(r"(?<!\\)_", text) is None, f"{path}: unescaped underscore"
        assert re.search(r"(?<!\\)[%&#](?![^{]*\})", text.replace(" & ", " ")) is None, path
        body = text[text.index(r"\toprule") : text.index(r"\bottomrule")]
        widths = {line.count(" & ") for line in body.splitlines() if line.endswith(r"\\")}
        assert len(widths) == 1, f"{path}: rows of different widths {widths}"
    main = (built.report / "tables" / "main_place2.tex").read_text()
    assert r"celeba\_test" in main and r"\textbf{" in main and r"$\downarrow$" in main


# --- qualitative figures ---------------------------------------------------------------------


def test_samples_are_stored_in_the_run_and_sized_as_grids(built: BuiltReport) -> None:
    stored = json.loads((built.fixture.run_dir / "report_samples.json").read_text())
    assert stored["seed"] == SEED and set(stored["test_sets"]) == set(TEST_SETS)
    for test_set, names in stored["test_sets"].items():
        assert len(names) == grids.SAMPLE_COUNT and names == sorted(set(names))
        grid = Image.open(built.report / "figures" / f"grid_{test_set}.png")
        side = grids.MIN_TILE  # the fixture's 20 px images are enlarged to the minimum tile
        columns = 1 + len(SOURCES) * len(MODELS) + 1  # input | models by source | truth
        assert side > SIZE
        assert grid.size == (
            grids.LEFT + columns * (side + grids.GAP),
            3 * grids.LINE + grids.GAP + len(names) * (side + grids.GAP),
        )


def test_choose_samples_reuses_what_the_run_stored(tmp_path: Path) -> None:
    names = {"a": [f"{i:06d}.png" for i in range(20)], "b": ["x.png", "y.png"]}
    first = choose_samples(tmp_path, names, seed=3, count=4)
    assert len(first["a"]) == 4 and first["b"] == ["x.png", "y.png"]
    assert choose_samples(tmp_path, names, seed=99, count=4) == first  # stored wins over seed
    doc = json.loads((tmp_path / grids.SAMPLES_FILE).read_text())
    doc["test_sets"]["a"] = ["000007.png"]
    (tmp_path / grids.SAMPLES_FILE).write_text(json.dumps(doc))
    assert choose_samples(tmp_path, names, seed=3)["a"] == ["000007.png"]  # hand-edited: kept
    gone = {"a": names["a"][8:], "b": names["b"]}
    assert choose_samples(tmp_path, gone, seed=3)["a"] != ["000007.png"]  # vanished: redrawn


def test_worst_cases_rank_by_lpips_or_say_why_not(built: BuiltReport) -> None:
    worst = pd.read_csv(built.report / "tables" / "worst_cases.csv")
    alpha = worst[(worst.model == "alpha") & (worst.source == "celeba")]
    scored = [
        (r["value"], r["test_set"], r["image"])
        for r in built.fixture.rows
        if r["variant"] == "composite"
        and r["metric"] == "lpips"
        and r["model"] == "alpha"
        and r["source"] == "celeba"
    ]
    expected = sorted(scored, key=lambda t: (-t[0], t[1], t[2]))[:3]
    assert list(zip(alpha["test_set"], alpha["image"], strict=True)) == [e[1:] for e in expected]
    assert set(alpha["metric"]) == {"lpips"}
    beta = worst[(worst.model == "beta") & (worst.source == "place2")]
    assert set(beta["metric"]) == {"psnr"}
    assert beta["note"].iloc[0].startswith("ranked by PSNR, lowest first: LPIPS n/a (weights")
    assert (built.report / "figures" / "worst_place2_beta.png").is_file()
    caption, header, rows = next(
        t for t in markdown_tables((built.report / "report.md").read_text()) if "worst" in t[0]
    )
    assert "note" not in header and len(rows) == len(worst)  # the note is said once, above
    assert caption.count("ranked by LPIPS, highest first") == 1
    assert "beta trained on place2: ranked by PSNR, lowest first: LPIPS n/a (weights" in caption
    assert "alpha trained on" not in caption  # the usual rule is not repeated per model


# --- the run is only read; the registry agrees with the metrics image ------------------------


def test_the_ledger_is_only_read_and_the_folder_swapped_in_whole(built: BuiltReport) -> None:
    ledger = built.fixture.run_dir / "ledger.sqlite"
    assert hashlib.sha256(ledger.read_bytes()).hexdigest() == built.ledger_sha256_before
    leftovers = [p.name for p in built.fixture.run_dir.iterdir() if p.name.startswith(".report")]
    assert leftovers == []
    assert {p.name for p in built.report.iterdir()} == {
        "report.md",
        "report.html",
        "tables",
        "figures",
    }


def test_no_pyplot_figure_is_left_open(built: BuiltReport) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    assert plt.get_fignums() == []


def test_bootstrap_edge_cases() -> None:
    assert bootstrap_ci(np.array([2.0, 2.0, 2.0]), seed=0) == (2.0, 2.0)
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([np.nan]), seed=0))
    low, high = bootstrap_ci(np.array([1.0, np.nan, 3.0]), seed=0)  # NaN dropped, n = 2
    assert 1.0 <= low <= high <= 3.0


def _load_metrics_module() -> Any:
    path = REPO / "images" / "metrics" / "metrics.py"
    spec = importlib.util.spec_from_file_location("_metrics_image_for_report_test", path)
    if spec is None or spec.loader is None:
        pytest.skip(f"{path}: cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class body runs.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # e.g. scipy missing: the registry cannot be compared here
        pytest.skip(f"importing {path} failed: {type(error).__name__}: {error}")
    finally:
        sys.modules.pop(spec.name, None)
    return module


def test_report_registry_agrees_with_the_metrics_image() -> None:
    metrics = _load_metrics_module().METRICS
    assert set(registry.REGISTRY) == set(metrics)
    for name, info in registry.REGISTRY.items():
        assert info.higher_is_better == metrics[name].higher_is_better, name
        assert info.unit == metrics[name].unit, name


def test_training_curve_axis_labels_are_not_clipped() -> None:
    """Wide linear loss ticks (a WGAN loss near −600000, another near 0.0001) once pushed the
    "loss" label off the figure's left edge."""
    pytest.importorskip("matplotlib")
    from harness.report.figures import curves_figure

    steps = range(1, 50)
    curves = pd.DataFrame(
        [
            {"source": "s", "model": m, "loss": loss, "step": step, "value": v, "status": "done"}
            for m in ("one", "two")
            for loss, scale in (("g", -12345.678), ("d", 0.000123))
            for step in steps
            for v in (scale * step,)
        ]
    )
    for models in (["one"], ["one", "two"]):
        figure = curves_figure(curves[curves["model"].isin(models)], "s")
        assert figure is not None
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
        width, height = figure.canvas.get_width_height()
        for ax in figure.axes:
            for label in (ax.yaxis.label, ax.xaxis.label, ax.title):
                box = label.get_window_extent(renderer)
                assert box.x0 >= 0 and box.y0 >= 0, (models, label.get_text(), box)
                assert box.x1 <= width and box.y1 <= height, (models, label.get_text(), box)


def test_area_bins_count_identical_images_too(built: BuiltReport) -> None:
    table = pd.read_csv(built.report / "tables" / "area_bins_place2.csv")
    expected: dict[tuple[str, str, str], int] = {}
    for r in built.fixture.rows:
        if r["variant"] == "composite" and r["source"] == "place2" and r["value"] == PSNR_CAP:
            key = (r["metric"], r["bin"], r["model"])
            expected[key] = expected.get(key, 0) + 1
    pooled = table[table["test_set"] == "all test sets"]
    found = {
        (c["metric"], c["bin"], c["model"]): c["identical"]
        for c in pooled.to_dict("records")
        if c["identical"]
    }
    assert found == expected and sum(found.values()) == 2 * IDENTICAL_COUNT
    md = (built.report / "report.md").read_text()
    caption = next(t[0] for t in markdown_tables(md) if "per hole-area bin" in t[0])
    assert "scores 148.13 dB instead of infinity" in caption
