"""Build RUN_DIR/report/ from a run: Markdown, a self-contained HTML page, CSV and LaTeX.

    report/report.md      every table and figure (figures linked)
    report/report.html    the same, pictures embedded: one file to share
    report/tables/*.csv   each table tidy and unrounded (one row per cell, with its CI and its
                          paired test); <table>_seeds.csv: the per-seed means of the main,
                          raw and area-bin tables, where a model was trained with several seeds
    report/tables/*.tex   each table as a booktabs table
    report/figures/*.png  area plots, training curves, sample grids, worst cases

The folder is written under a temporary name and renamed into place, so a reader never sees a
half-written report; the ledger is only ever read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.data.atomic import atomic_dir
from harness.errors import storage_error
from harness.progress import Reporter, SilentReporter
from harness.report import render
from harness.report.captions import (
    ci_words,
    identical_note,
    rule_words,
    set_level_note,
    several_seeds,
)
from harness.report.complexity import (
    REFERENCE_SIZE,
    complexity_table,
    counting_view,
    runtime_view,
    size_view,
)
from harness.report.figures import area_plot, curves_plot, time_plot
from harness.report.page import Document
from harness.report.qualitative import qualitative_section
from harness.report.registry import (
    WEIGHTS_MISSING,
    direction_map,
    label_with_unit,
    metric_info,
    metric_order,
)
from harness.report.render import Layout
from harness.report.run_tables import (
    curves_table,
    jobs_table,
    models_table,
    run_table,
    training_table,
)
from harness.report.rundata import RunData, load_run
from harness.report.score_tables import (
    ALL_TEST_SETS,
    area_bin_table,
    asked_set_metrics,
    known_pixel_table,
    main_table,
    raw_table,
    seed_table,
)
from harness.report.stats import LEVEL
from harness.report.time_scores import time_points
from harness.report.writer import TableWriter, slug
from harness.scoring import ALWAYS

REPORT_DIR = "report"
MAIN = Layout(("test_set", "metric"), show_n=True)
BINNED = Layout(("metric", "bin"))
KNOWN_PIXEL_NOTE = (
    "Known-pixel deviation: mean |raw − ground truth| over the pixels outside the hole "
    "(uint8 units). A model that keeps the known pixels scores 0; a large value means it "
    "damages the unmasked region (how AOT-GAN's mask-polarity bug showed in the seed report), "
    "which the composite scores above hide."
)


@dataclass(frozen=True)
class ReportResult:
    path: Path  # RUN_DIR/report
    main_markdown: str  # the main tables, as printed by `inpaint-bench report`


LPIPS_WEIGHTS_NOTE = (
    "LPIPS n/a (weights missing): the metrics image had no AlexNet weights. Build it on a host "
    "that can download them, with BAKE_WEIGHTS=1 (see docs/docker.md), or give the local runner "
    "a folder that holds them (--weights-dir or TORCH_HOME), then rerun the same command: only "
    "the scoring is redone."
)


def _not_shown(run: RunData, source: str, shown: set[str]) -> str:
    """Name the run's models without scores for `source`, with why; "" if none."""
    missing = []
    for model in run.models:
        if model in shown:
            continue
        train = next(
            (
                s
                for s in run.of_kind("train")
                if run.where(s).model == model and run.where(s).source == source
            ),
            None,
        )
        if train is None:
            why = (
                "skipped"
                if not any(run.where(s).model == model for s in run.steps)
                else "not trained"
            )
        elif train.status == "failed":
            why = f"training failed: {train.reason}"
        else:
            why = "no scores"
        missing.append(f"{model} ({why})")
    return f" Not shown: {'; '.join(missing)}." if missing else ""


def build_report(
    run_dir: Path, reporter: Reporter | None = None, images_root: Path | None = None
) -> ReportResult:
    """Write RUN_DIR/report/ (replacing any earlier one) and return its path and main tables.

    `images_root` is where images/<model>/manifest.json are looked up for upstream commits
    (default: this checkout's images/). Raises DataError when RUN_DIR has no ledger.
    """
    return write_report(load_run(run_dir, images_root), reporter)


def write_report(run: RunData, reporter: Reporter | None = None) -> ReportResult:
    """Write the report of an already loaded run (what `build_report` does after reading it)."""
    reporter = reporter or SilentReporter(quiet=True)
    metrics = metric_order(list(run.scores["metric"].unique()))
    directions = direction_map([*metrics, *asked_set_metrics(run)], run.sidecar_directions())
    doc = Document(f"inpaint-bench report: {run.run_dir.name}")
    target = run.run_dir / REPORT_DIR
    try:
        with atomic_dir(target, overwrite=True) as tmp:
            out = TableWriter(tmp, doc, directions)
            warning = _plumbing_warning(run, doc)
            doc.heading(2, "Run", "run")
            out.plain("run", run_table(run), "The run: versions, profile, runner, device, data.")
            main = _main_section(run, out)
            _raw_section(run, out)
            _area_section(run, out, metrics)
            _time_section(run, out, metrics)
            qualitative_section(run, out, reporter)
            _complexity_section(run, out)
            _training_section(run, out)
            (tmp / "report.md").write_text(doc.render_markdown())
            (tmp / "report.html").write_text(doc.render_html())
    except OSError as error:
        failure = storage_error(error, f"{target}: writing the report")
        if failure is None:
            raise
        raise failure from None
    return ReportResult(target, f"{warning}\n\n{main}" if warning else main)


def _plumbing_warning(run: RunData, doc: Document) -> str:
    """Say first, where any job used random loss-network weights, that its numbers mean nothing;
    return the warning ("" if none) so the terminal shows it too."""
    flagged = sorted(
        {
            run.where(step).model
            for step in run.steps
            if any("RANDOM weights" in w for w in run.warnings.get(step.key, []))
        }
    )
    if not flagged:
        return ""
    text = (
        f"**Warning: {', '.join(flagged)} trained with seeded random loss-network weights "
        "(INPAINT_RANDOM_LOSS_WEIGHTS=1).** This run tests plumbing only; its numbers for "
        "these models are not results."
    )
    doc.paragraph(text)
    return text


def _main_section(run: RunData, out: TableWriter) -> str:
    out.doc.heading(2, "Main results", "main")
    if run.scores.empty:
        out.doc.paragraph("No scores in the ledger: run `inpaint-bench run` with scoring.", True)
        return ""
    parts: list[str] = []
    for source in run.sources:
        table = main_table(run, source)
        if table.empty:
            continue
        number = len(parts) + 1
        caption = (
            f"Table {number}: models trained on {source}. Cell: mean over the test set's "
            f"images of the per-image score on the composite (the prediction inside the hole, "
            f"the ground truth outside); {ci_words(run, table)}; n: the images with a score; "
            f"{rule_words(table)}."
            + identical_note(table)
            + _not_shown(run, source, set(table["model"]))
            + set_level_note(table)
        )
        out.doc.heading(3, f"Trained on {source}")
        markdown = out.scores(f"main_{slug(source)}", table, table, MAIN, caption)
        if several_seeds(table):
            out.csv(f"main_{slug(source)}_seeds", seed_table(run, source))
        if (table["missing"] == WEIGHTS_MISSING).any():
            out.doc.paragraph(LPIPS_WEIGHTS_NOTE, note=True)
            markdown += f"\n{LPIPS_WEIGHTS_NOTE}\n"
        parts.append(markdown)
    return "\n".join(parts)


def _raw_section(run: RunData, out: TableWriter) -> None:
    out.doc.heading(2, "Raw predictions and known pixels", "raw")
    for source in run.sources:
        table = raw_table(run, source)
        if table.empty:
            continue
        caption = (
            f"Models trained on {source}, scored on the raw files as written (no compositing). "
            f"Cell: mean over images; {ci_words(run, table)}; n: the images with a score; "
            f"{rule_words(table)}." + identical_note(table)
        )
        out.doc.heading(3, f"Raw, trained on {source}")
        out.scores(f"raw_{slug(source)}", table, table, MAIN, caption)
        if several_seeds(table):
            out.csv(f"raw_{slug(source)}_seeds", seed_table(run, source, "raw"))
    known = known_pixel_table(run)
    if not known.empty:
        out.doc.heading(3, "Known-pixel deviation per model")
        out.doc.paragraph(KNOWN_PIXEL_NOTE, note=True)
        formats = {"mean": "{:.3f}".format, "ci_low": "{:.3f}".format, "ci_high": "{:.3f}".format}
        caption = (
            "Per model and source, over every test image: mean known-pixel deviation with its "
            "interval; known pixel max abs: the largest change of any known pixel the harness "
            "measured at predict time; composites: whether every prediction kept them exactly."
        )
        out.plain("known_pixels", known, caption, formats)


def _area_section(run: RunData, out: TableWriter, metrics: list[str]) -> None:
    out.doc.heading(2, "Scores by hole area", "area")
    tables = [area_bin_table(run, source) for source in run.sources]
    tables = [t for t in tables if not t.empty]
    for table in tables:
        source = str(table["source"].iloc[0])
        pooled = table[table["test_set"] == ALL_TEST_SETS]
        caption = (
            f"Models trained on {source}, composite scores per hole-area bin (fraction of the "
            f"image that is hole, open below, closed above), pooled over the source's test "
            f"sets (per-test-set rows in tables/area_bins_{slug(source)}.csv); "
            f"{ci_words(run, pooled)}; {rule_words(pooled)}." + identical_note(pooled)
        )
        out.doc.heading(3, f"By hole area, trained on {source}")
        out.scores(f"area_bins_{slug(source)}", table, pooled, BINNED, caption)
        if several_seeds(table):
            out.csv(f"area_bins_{slug(source)}_seeds", seed_table(run, source, area=True))
    if not tables:
        return
    bins = pd.concat(tables, ignore_index=True)
    for metric in metrics:
        path = out.folder / "figures" / f"area_{slug(metric)}.png"
        if area_plot(bins, metric, path):
            label = label_with_unit(metric_info(metric))
            caption = f"{label} against hole area (pooled test sets; bars: {LEVEL:.0%} intervals)"
            out.figure(f"area_{slug(metric)}", caption)


def _time_section(run: RunData, out: TableWriter, metrics: list[str]) -> None:
    """Score against training time: one figure per training source, the points in
    tables/score_time.csv (harness/report/time_scores.py)."""
    out.doc.heading(2, "Score against training time", "training-time")
    points = time_points(run)
    if points.empty:
        out.doc.paragraph(
            "No snapshots in this run: a profile's `snapshots:` asks for them, from images whose "
            "manifest claims `snapshots` (docs/running.md)."
        )
        return
    render.write_csv(points, out.folder / "tables" / "score_time.csv")
    shown = [m for m in metrics if m not in ALWAYS] or metrics
    for source in run.sources:
        name = f"time_{slug(source)}"
        if time_plot(points, source, shown, out.folder / "figures" / f"{name}.png"):
            out.figure(
                name,
                f"Models trained on {source}: mean composite score per test set against training "
                "seconds, at each snapshot and the final checkpoint (square); with several "
                "seeds, the mean over seeds and a bar from the lowest to the highest seed's mean. "
                "Every metric's points: tables/score_time.csv.",
            )


# The complexity table has 17 columns and a row per model and size: too wide for the HTML page
# and a LaTeX column, so it is shown as three with one column per size (the CSV keeps them all in
# one); "model" repeats in each to join them by eye.
def _complexity_section(run: RunData, out: TableWriter) -> None:
    out.doc.heading(2, "Model complexity", "complexity")
    table = complexity_table(run)
    run_size = run.info.get("image_size")
    measured = (
        f"at the run's image size ({run_size} px) and at {REFERENCE_SIZE} px, the reference "
        "that compares across runs"
        if run_size
        else "at the size(s) each model's describe step measured"
    )
    runtime = ["model", "image_size", "size_role", "device", "latency_ms_median", "latency_runs"]
    runtime += ["peak_memory_mib", "memory_missing", "reason"]
    counting = ["model", "image_size", "counter", "latency_runs", "flops_missing", "uncounted_ops"]
    out.plain(
        "complexity",
        table,
        f"Size, from each model's describe step, {measured}: parameter counts; GFLOPs of one "
        "generator forward of one image (GMACs, 1 MAC = 2 FLOPs, are half, in "
        "tables/complexity.csv, which holds every column of the three tables); a lower bound "
        "where the counter listed ops it cannot count (see the third table), and n/a where it "
        "counted none; — = not measured.",
        shown=size_view(table, run_size),
    )
    out.plain(
        "complexity_runtime",
        table[runtime],
        f"Speed and memory, from the same step, {measured}: median latency of one image over "
        "the timed runs (after two warm-ups) on the device named; peak CUDA memory allocated "
        "during the timed runs (torch.cuda.max_memory_allocated, reset after the warm-ups: "
        "weights, input and activations); on the CPU there is no such counter, n/a (CPU); why "
        "a describe step did not finish; — = not measured.",
        shown=runtime_view(table, run_size),
    )
    out.plain(
        "complexity_counting",
        table[counting],
        "How the FLOPs were counted: the counter, the timed runs behind each latency and the "
        "ops the counter has no formula for (at any size measured).",
        shown=counting_view(table),
    )


def _training_section(run: RunData, out: TableWriter) -> None:
    out.doc.heading(2, "Training", "training")

    def hex12(value: object) -> str:
        return str(value).removeprefix("sha256:")[:12]

    short = {k: hex12 for k in ("docker_image", "base_image_id", "folder_hash")}
    out.plain(
        "training",
        training_table(run),
        "Every training job, failed ones included: status, stop reason, budget and time "
        "(seconds), optimiser steps, images seen, the Docker image ID that ran and the hash of "
        "its image folder (first 12 hex; full in the CSV).",
        short,
    )
    curves = curves_table(run)
    render.write_csv(curves, out.folder / "tables" / "curves.csv")
    for source in run.sources:
        name = f"curves_{slug(source)}"
        if curves_plot(curves, source, out.folder / "figures" / f"{name}.png"):
            out.figure(name, f"Training losses of the models trained on {source}")
    out.doc.heading(3, "Models and upstreams")
    out.plain(
        "models",
        models_table(run),
        "Each model's outcome, what ran (Docker image ID, the base image it was built FROM and "
        "its ID; the image folder's hash, which the local runner also records) and its upstream "
        "code; the metrics image last.",
        short,
    )
    out.doc.heading(3, "Failed and skipped jobs")
    jobs = jobs_table(run)
    if jobs.empty:
        out.doc.paragraph("None: every job finished.")
    else:
        out.plain("jobs", jobs, "Jobs that did not finish, with why.")
