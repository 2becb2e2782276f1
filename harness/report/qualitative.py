"""The report's qualitative section: seeded sample grids per test set and each model's worst
cases."""

from __future__ import annotations

import pandas as pd

from harness.progress import Reporter
from harness.report.grids import Pictures, choose_samples, sample_grid, worst_grid
from harness.report.rundata import RunData
from harness.report.score_tables import worst_table
from harness.report.writer import TableWriter, slug

WORST_COUNT = 3


def qualitative_section(run: RunData, out: TableWriter, reporter: Reporter) -> None:
    out.doc.heading(2, "Qualitative results", "qualitative")
    composite = run.scores[run.scores["variant"] == "composite"]
    candidates = {
        t: sorted(set(composite[composite["test_set"] == t]["image"])) for t in run.test_sets
    }
    candidates = {t: names for t, names in candidates.items() if names}
    if not candidates:
        out.doc.paragraph("No scored predictions to show.", note=True)
        return
    samples = choose_samples(run.run_dir, candidates, run.seed)
    pictures = Pictures(run.run_dir, run.data_root)
    if run.data_root is None:
        reporter.note("the run's data root is not here: grids show raw predictions, no truth")
        out.doc.paragraph(
            f"The data root {run.info.get('data_root')!r} is not on this machine: ground truth "
            "is missing and predictions are shown raw.",
            note=True,
        )
    pairs = composite[["source", "model"]].drop_duplicates()
    columns = [
        (s, m)
        for s in run.sources
        for m in run.models
        if ((pairs.source == s) & (pairs.model == m)).any()
    ]
    for test_set, names in samples.items():
        rows = composite[composite["test_set"] == test_set]
        fractions = dict(zip(rows["image"], rows["hole_fraction"], strict=True))
        image = sample_grid(pictures, test_set, names, columns, fractions)
        caption = (
            f"{test_set}: samples drawn with seed {run.seed} (stored in report_samples.json); "
            "predictions composited onto the ground truth"
        )
        out.figure(f"grid_{slug(test_set)}", caption, image)
    worst = worst_table(run, WORST_COUNT)
    out.doc.heading(3, "Worst cases per model")
    out.plain(
        "worst_cases",
        worst,
        "Each model's worst composite predictions, " + _worst_note(worst),
        {"value": "{:.3f}".format, "hole_fraction": "{:.0%}".format},
        # The seed column only where the run trained a model more than once.
        shown=worst.drop(columns=["note"] if worst["seed"].nunique() > 1 else ["note", "seed"]),
    )
    for (source, model), picks in worst.groupby(["source", "model"], sort=False):
        note = str(picks["note"].iloc[0])
        image = worst_grid(pictures, str(source), str(model), picks.to_dict("records"))
        caption = f"{model} trained on {source}: {WORST_COUNT} worst cases ({note})"
        out.figure(f"worst_{slug(str(source))}_{slug(str(model))}", caption, image)


def _worst_note(worst: pd.DataFrame) -> str:
    """Say once how the worst cases are ranked: one note for all, or one per model that differs
    (the CSV keeps the note on every row)."""
    notes = worst.drop_duplicates(["source", "model"])
    common = notes["note"].mode()
    if common.empty:
        return "none."
    usual = str(common.iloc[0])
    others = notes[notes["note"] != usual]
    if others.empty:
        return f"{usual}."
    exceptions = "; ".join(
        f"{r['model']} trained on {r['source']}: {r['note']}" for r in others.to_dict("records")
    )
    return f"{usual}, except {exceptions}."
