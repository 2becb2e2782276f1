"""Renderers: lay a table's DataFrame out as Markdown, HTML or LaTeX (booktabs), or write CSV.

Score tables (score_tables.py) are tidy: one row per cell. A `Layout` names the key columns that
make a row and the one whose values become columns. Bold marks the best mean of each row (using
the `higher_is_better` map) and, where the table carries paired tests (comparisons.py), every
model whose Holm-adjusted p-value against the best is at least ALPHA; a model below it gets the
marker † instead. A cell reads `mean [ci_low, ci_high]` (the 95 % bootstrap interval), then in
parentheses its image count where the layout asks for it, its seeds' min–max where it has more
than one seed, and how many of its images are identical to the ground truth (PSNR at its cap)
where any are; or its `missing` text (e.g. `n/a (weights missing)`) when it has no value, never a
number.
Plain tables (run_tables.py) are rendered as they are, with optional per-column formatters.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.report.comparisons import ALPHA
from harness.report.registry import NOT_AVAILABLE, label_with_unit, metric_info

Formatter = Callable[[Any], str]
WORSE_MARK = "†"  # significantly different from the row's best (Holm-adjusted p < ALPHA)
HEADERS = {"test_set": "test set", "metric": "metric", "bin": "hole area", "model": "model"}
# Plain-table headers that need more than "_" → " ": units, and FLOPs vs MACs spelled out.
PLAIN_HEADERS = {
    "params_generator": "params (generator)",
    "params_discriminator": "params (discriminator)",
    "gflops": "GFLOPs",
    "gmacs": "GMACs",
    "latency_ms_median": "median latency (ms)",
    "peak_memory_mib": "peak memory (MiB)",
    "budget_s": "budget (s)",
    "setup_s": "setup (s)",
    "train_s": "train (s)",
    "wall_s": "wall (s)",
    "ci_low": "CI low",
    "ci_high": "CI high",
}


def plain_header(column: str) -> str:
    return PLAIN_HEADERS.get(column, column.replace("_", " "))


@dataclass(frozen=True)
class Layout:
    """Which key columns of a tidy score table make a row, and which one spreads into columns."""

    rows: tuple[str, ...] = ("test_set", "metric")
    column: str = "model"
    show_n: bool = False  # each cell names its image count: "(n = 64)"


@dataclass(frozen=True)
class Cell:
    mean: str  # the formatted mean, or the missing text
    ci: str  # "[low, high]", or "" when missing
    best: bool
    record: dict[str, Any]
    count: str = ""  # "(n = 64; 2 seeds 26.10–26.40; 7 identical)", "(n = 64)" or ""
    worse: bool = False  # significantly different from the best: shown with WORSE_MARK

    @property
    def shown(self) -> str:
        """The mean with its marker, without bold."""
        return self.mean + (WORSE_MARK if self.worse else "")

    @property
    def missing(self) -> bool:
        """True when the cell shows its `missing` text instead of a number."""
        return not self.record["n"]


def _is_missing(value: Any) -> bool:
    """Tell a missing value: None, NaN or pandas' NA (nullable integer columns)."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def score_grid(
    table: pd.DataFrame, layout: Layout, higher_is_better: Mapping[str, bool]
) -> tuple[list[str], list[tuple[tuple[Any, ...], list[Cell | None]]]]:
    """Lay out the columns and rows of formatted cells; `best` marks the best mean of each row (ties
    all marked) where at least two cells of the row have a value, and every cell whose Holm
    p-value against it is at least ALPHA; `worse` marks those below ALPHA."""
    columns = list(dict.fromkeys(table[layout.column]))
    rows: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for record in table.to_dict("records"):
        key = tuple(record[k] for k in layout.rows)
        rows.setdefault(key, {})[record[layout.column]] = record
    out = []
    for key, cells in rows.items():
        metric = str(dict(zip(layout.rows, key, strict=True)).get("metric", ""))
        decimals = metric_info(metric).decimals
        means = {c: r["mean"] for c, r in cells.items() if r["n"] > 0}
        best = None
        # A best needs a rival: a row with one value (one model, or the rest n/a) stays plain.
        if len(means) >= 2 and metric in higher_is_better:
            pick = max if higher_is_better[metric] else min
            best = pick(means.values())
        line: list[Cell | None] = []
        for column in columns:
            record = cells.get(column)
            if record is None:
                line.append(None)
            elif record["n"] == 0:
                line.append(Cell(str(record.get("missing") or NOT_AVAILABLE), "", False, record))
            else:
                ci = f"[{record['ci_low']:.{decimals}f}, {record['ci_high']:.{decimals}f}]"
                if _is_missing(record.get("ci_low")):
                    ci = ""  # a set-level metric (FID): one value, no interval
                p_holm: Any = record.get("p_holm")
                tested = best is not None and not _is_missing(p_holm)
                is_best = best is not None and record["mean"] == best
                worse = tested and not is_best and float(p_holm) < ALPHA
                is_best = is_best or (tested and not worse)
                count = _count_text(record, layout.show_n, decimals)
                mean = f"{record['mean']:.{decimals}f}"
                line.append(Cell(mean, ci, is_best, record, count, worse))
        out.append((key, line))
    return columns, out


def _count_text(record: Mapping[str, Any], show_n: bool, decimals: int) -> str:
    """Say how many images a cell averages, its seeds' min–max where it has several, and how
    many of its images score the PSNR cap."""
    parts = [f"n = {record['n']}"] if show_n else []
    seeds: Any = record.get("seeds")
    if not _is_missing(seeds) and int(seeds) > 1:
        low, high = record["seed_min"], record["seed_max"]
        parts.append(f"{int(seeds)} seeds {low:.{decimals}f}–{high:.{decimals}f}")
    identical = record.get("identical", 0)
    if not _is_missing(identical) and int(identical) > 0:
        parts.append(f"{int(identical)} identical")
    return f"({'; '.join(parts)})" if parts else ""


def _row_labels(
    layout: Layout, key: tuple[Any, ...], previous: tuple[Any, ...] | None
) -> list[str]:
    """Turn row keys into text; a key equal to the row above's is left blank, like a grouped
    table."""
    labels = []
    same_so_far = previous is not None
    for i, (name, value) in enumerate(zip(layout.rows, key, strict=True)):
        same_so_far = same_so_far and previous is not None and previous[i] == value
        last = i == len(layout.rows) - 1
        if same_so_far and not last:
            labels.append("")
        elif name == "metric":
            info = metric_info(str(value))
            arrow = {True: " ↑", False: " ↓", None: ""}[info.higher_is_better]
            labels.append(label_with_unit(info) + arrow)
        else:
            labels.append(str(value))
    return labels


# --- Markdown --------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def scores_markdown(
    table: pd.DataFrame, layout: Layout, higher_is_better: Mapping[str, bool], caption: str
) -> str:
    """Render a GitHub Markdown table; cells `**mean** [low, high]`, bold = best of the row."""
    columns, rows = score_grid(table, layout, higher_is_better)
    head = [HEADERS.get(k, k) for k in layout.rows] + columns
    lines = [
        f"*{caption}*",
        "",
        _md_row(head),
        _md_row(["---"] * len(layout.rows) + ["---:"] * len(columns)),
    ]
    previous = None
    for key, cells in rows:
        texts = []
        for cell in cells:
            if cell is None:
                texts.append("")
            else:
                mean = f"**{cell.mean}**" if cell.best else cell.shown
                texts.append(" ".join(t for t in (mean, cell.ci, cell.count) if t))
        lines.append(_md_row([*_row_labels(layout, key, previous), *texts]))
        previous = key
    return "\n".join(lines) + "\n"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(_md_escape(c) for c in cells) + " |"


def plain_markdown(
    table: pd.DataFrame, caption: str = "", formats: Mapping[str, Formatter] | None = None
) -> str:
    lines = [f"*{caption}*", ""] if caption else []
    lines.append(_md_row([plain_header(c) for c in table.columns]))
    lines.append(_md_row(["---"] * len(table.columns)))
    for record in table.to_dict("records"):
        lines.append(_md_row([format_value(record[c], c, formats) for c in table.columns]))
    return "\n".join(lines) + "\n"


def format_value(value: Any, column: str, formats: Mapping[str, Formatter] | None) -> str:
    """Format a plain table's cell: `—` for a missing value, else the column's formatter or a
    default."""
    if _is_missing(value):
        return "—"
    if formats and column in formats:
        return formats[column](value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


# --- HTML ------------------------------------------------------------------------------------


def scores_html(
    table: pd.DataFrame, layout: Layout, higher_is_better: Mapping[str, bool], caption: str
) -> str:
    """Render an HTML table; each cell carries its unrounded mean and interval as data
    attributes."""
    columns, rows = score_grid(table, layout, higher_is_better)
    esc = html.escape
    head = "".join(f"<th>{esc(HEADERS.get(k, k))}</th>" for k in layout.rows)
    head += "".join(f'<th class="num">{esc(c)}</th>' for c in columns)
    body = []
    previous = None
    for key, cells in rows:
        tds = [f"<th>{esc(label)}</th>" for label in _row_labels(layout, key, previous)]
        for cell in cells:
            if cell is None:
                tds.append("<td></td>")
            elif cell.missing:
                tds.append(f'<td class="na">{esc(cell.mean)}</td>')
            else:
                r = cell.record
                mean = f"<strong>{cell.mean}</strong>" if cell.best else esc(cell.shown)
                ci = f' data-ci-low="{r["ci_low"]!r}" data-ci-high="{r["ci_high"]!r}"'
                span = f' <span class="ci">{esc(cell.ci)}</span>' if cell.ci else ""
                if cell.count:
                    span += f' <span class="n">{esc(cell.count)}</span>'
                same = f' data-identical="{r["identical"]}"' if r.get("identical") else ""
                title = f"n = {r['n']} images"
                if not _is_missing(r.get("p_holm")):
                    same += f' data-p="{r["p_value"]!r}" data-p-holm="{r["p_holm"]!r}"'
                    same += f' data-compared-to="{esc(str(r["compared_to"]))}"'
                    title += f"; against {r['compared_to']}: Holm p = {r['p_holm']:.2g}"
                tds.append(
                    f'<td class="num{" best" if cell.best else ""}" data-mean="{r["mean"]!r}"'
                    f'{ci if cell.ci else ""}{same} data-n="{r["n"]}" title="{esc(title)}">'
                    f"{mean}{span}</td>"
                )
        group = previous is not None and len(layout.rows) > 1 and key[0] != previous[0]
        body.append(("<tr class='group'>" if group else "<tr>") + "".join(tds) + "</tr>")
        previous = key
    return (
        f'<table class="scores"><caption>{esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def plain_html(
    table: pd.DataFrame, caption: str = "", formats: Mapping[str, Formatter] | None = None
) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(plain_header(c))}</th>" for c in table.columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{esc(format_value(r[c], c, formats))}</td>" for c in table.columns)
        + "</tr>"
        for r in table.to_dict("records")
    )
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="plain">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# --- LaTeX (booktabs) ------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "—": "---",
    "±": r"$\pm$",
    WORSE_MARK: r"$^\dagger$",
    "α": r"$\alpha$",
}


def latex_escape(text: str) -> str:
    return re.sub("|".join(map(re.escape, _LATEX_SPECIAL)), lambda m: _LATEX_SPECIAL[m[0]], text)


def scores_latex(
    table: pd.DataFrame,
    layout: Layout,
    higher_is_better: Mapping[str, bool],
    caption: str,
    label: str,
) -> str:
    """Render a booktabs table (needs \\usepackage{booktabs}); a \\midrule separates row groups."""
    columns, rows = score_grid(table, layout, higher_is_better)
    spec = "l" * len(layout.rows) + "r" * len(columns)
    head = [HEADERS.get(k, k).capitalize() for k in layout.rows] + columns
    lines = _latex_open(spec, caption, label, head)
    previous: tuple[Any, ...] | None = None
    for key, cells in rows:
        if previous is not None and len(layout.rows) > 1 and key[0] != previous[0]:
            lines.append(r"\midrule")
        texts = []
        for cell in cells:
            if cell is None:
                texts.append("")
            elif cell.missing:
                texts.append(latex_escape(cell.mean))
            else:
                mean = rf"\textbf{{{cell.mean}}}" if cell.best else latex_escape(cell.shown)
                small = " ".join(t for t in (cell.ci, cell.count) if t)
                texts.append(rf"{mean} {{\scriptsize {small}}}" if small else mean)
        labels = [latex_escape(t) for t in _row_labels(layout, key, previous)]
        lines.append(" & ".join(labels + texts) + r" \\")
        previous = key
    return "\n".join([*lines, *_latex_close()]) + "\n"


def plain_latex(
    table: pd.DataFrame, caption: str, label: str, formats: Mapping[str, Formatter] | None = None
) -> str:
    head = [plain_header(c) for c in table.columns]
    lines = _latex_open("l" * len(table.columns), caption, label, head)
    for record in table.to_dict("records"):
        cells = [latex_escape(format_value(record[c], c, formats)) for c in table.columns]
        lines.append(" & ".join(cells) + r" \\")
    return "\n".join([*lines, *_latex_close()]) + "\n"


def _latex_open(spec: str, caption: str, label: str, head: list[str]) -> list[str]:
    # LaTeX numbers a \caption itself ("Table 1: …"), so a caption written for Markdown and HTML,
    # which starts with its own "Table N:", would read "Table 1: Table 1: …".
    caption = re.sub(r"^Table \d+:\s*", "", caption)
    caption = caption[:1].upper() + caption[1:]
    return [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in head) + r" \\",
        r"\midrule",
    ]


def _latex_close() -> list[str]:
    return [r"\bottomrule", r"\end{tabular}", r"\end{table}"]


# --- CSV -------------------------------------------------------------------------------------


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write the table as it is (tidy, unrounded), so pandas reads back the same numbers."""
    path.write_text(table.to_csv(index=False))
