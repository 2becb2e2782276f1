"""Plots: each metric against mask area, and training losses against step.

Figures are built with matplotlib's object API on an Agg canvas and never registered with
pyplot, so nothing stays open after a PNG is saved and no display is needed. One function per
figure; each takes a table's DataFrame (the data) and a path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.report.registry import label_with_unit, metric_info
from harness.report.score_tables import ALL_TEST_SETS, BINS

DPI = 100


def _figure(panels: int, width: float, height: float, bottom: float) -> Figure:
    # Fixed margins: matplotlib's constrained/tight layout doubles the drawing time, and these
    # figures have the same few labels every time.
    figure = Figure(figsize=(width * max(panels, 1), height), dpi=DPI)
    left = 0.8 / (width * max(panels, 1))
    figure.subplots_adjust(left=left, right=0.98, bottom=bottom, top=0.9, wspace=0.35)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> None:
    # No metadata: the same data gives the same bytes.
    figure.savefig(path, format="png", metadata={"Software": None})
    figure.clear()


def area_plot(bins: pd.DataFrame, metric: str, path: Path) -> bool:
    """Plot `metric` (pooled over each source's test sets) against hole area: one panel per
    training source, one line per model with its 95 % interval; False if nothing to plot."""
    rows = bins[(bins["metric"] == metric) & (bins["test_set"] == ALL_TEST_SETS) & (bins["n"] > 0)]
    if rows.empty:
        return False
    sources = list(dict.fromkeys(bins["source"]))
    models = list(dict.fromkeys(rows["model"]))
    figure = _figure(len(sources), 4.4, 3.4, 0.27)
    axes = figure.subplots(1, len(sources), squeeze=False)[0]
    info = metric_info(metric)
    x = np.arange(len(BINS))
    for ax, source in zip(axes, sources, strict=True):
        for index, model in enumerate(models):
            line = rows[(rows["source"] == source) & (rows["model"] == model)]
            if line.empty:
                continue
            # Dodge the models sideways a little so their interval bars do not overlap.
            dodge = (index - (len(models) - 1) / 2) * 0.08
            where = [BINS.index(b) + dodge for b in line["bin"]]
            mean = line["mean"].to_numpy()
            err = np.vstack([mean - line["ci_low"].to_numpy(), line["ci_high"].to_numpy() - mean])
            ax.errorbar(
                where, mean, yerr=err, marker="o", capsize=3, label=model, color=f"C{index}"
            )
        ax.set_title(f"trained on {source}")
        ax.set_xticks(x, BINS, rotation=30, fontsize=8)
        ax.set_xlabel("hole area (fraction of the image)")
        arrow = {True: " (higher is better)", False: " (lower is better)", None: ""}
        ax.set_ylabel(label_with_unit(info) + arrow[info.higher_is_better])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _save(figure, path)
    return True


def curves_plot(curves: pd.DataFrame, source: str, path: Path) -> bool:
    """Plot training losses against step for one source into `path`; False if no model logged a
    loss."""
    figure = curves_figure(curves, source)
    if figure is None:
        return False
    _save(figure, path)
    return True


def curves_figure(curves: pd.DataFrame, source: str) -> Figure | None:
    """Draw training losses against step for one source: one panel per model, one line per loss
    and training seed (log scale when every value is positive); None if no model logged a
    loss."""
    rows = curves[curves["source"] == source]
    if rows.empty:
        return None
    models = list(dict.fromkeys(rows["model"]))
    figure = _figure(len(models), 3.8, 3.0, 0.17)
    axes = figure.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models, strict=True):
        mine = rows[rows["model"] == model]
        seeds = list(dict.fromkeys(mine["seed"])) if "seed" in mine else [None]
        for loss in dict.fromkeys(mine["loss"]):
            for seed in seeds:
                line = mine[mine["loss"] == loss]
                if seed is not None:
                    line = line[line["seed"] == seed]
                label = loss if len(seeds) == 1 else f"{loss}, seed {seed}"
                line = line.sort_values("step")
                ax.plot(line["step"], line["value"], label=label, linewidth=1.2)
        if (mine["value"] > 0).all():
            ax.set_yscale("log")
        failed = (mine["status"] == "failed").any()
        ax.set_title(f"{model} on {source}" + (" (failed)" if failed else ""))
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    # Unlike the area plots, loss ticks can be as wide as "−600000" or "0.000125", which pushed
    # the "loss" label off the fixed left margin: fit the margins to the drawn labels here.
    figure.tight_layout(pad=0.4)
    return figure


def time_plot(points: pd.DataFrame, source: str, metrics: list[str], path: Path) -> bool:
    """Plot each metric against training seconds for the models trained on `source`: one row of
    panels per metric, one column per test set, one line per model through its snapshots and
    final checkpoint (square marker); bars: the seeds' lowest to highest mean where there are
    several. False if there is nothing to plot."""
    rows = points[(points["source"] == source) & points["metric"].isin(metrics)]
    rows = rows[rows["training_s"].notna()]
    if rows.empty:
        return False
    metrics = [m for m in metrics if (rows["metric"] == m).any()]
    test_sets = list(dict.fromkeys(rows["test_set"]))
    models = list(dict.fromkeys(rows["model"]))
    width = 3.6 * len(test_sets)
    figure = Figure(figsize=(width, 2.8 * len(metrics) + 0.4), dpi=DPI)
    FigureCanvasAgg(figure)
    grid = figure.subplots(len(metrics), len(test_sets), squeeze=False)
    arrow = {True: " ↑", False: " ↓", None: ""}
    for r, metric in enumerate(metrics):
        info = metric_info(metric)
        for c, test_set in enumerate(test_sets):
            ax = grid[r][c]
            for index, model in enumerate(models):
                line = rows[
                    (rows["metric"] == metric)
                    & (rows["test_set"] == test_set)
                    & (rows["model"] == model)
                ].sort_values("training_s")
                if line.empty:
                    continue
                color = f"C{index}"
                ax.plot(line["training_s"], line["mean"], marker="o", color=color, label=model)
                final = line[line["checkpoint"] == "final"]
                ax.plot(final["training_s"], final["mean"], "s", color=color, markersize=8)
                spread = line[line["seeds"] > 1]
                if not spread.empty:
                    ax.vlines(
                        spread["training_s"], spread["seed_min"], spread["seed_max"], color=color
                    )
            ax.set_title(f"{test_set}", fontsize=9)
            ax.set_xlabel("training seconds", fontsize=8)
            ax.set_ylabel(label_with_unit(info) + arrow[info.higher_is_better], fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    figure.suptitle(f"Score against training time, trained on {source}", fontsize=10)
    figure.tight_layout(pad=0.4)
    _save(figure, path)
    return True
