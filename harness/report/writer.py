"""Writes each report table in every format (CSV, LaTeX, Markdown, HTML) and each figure into
the report folder, adding it to the document as it goes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from PIL import Image

from harness.report import render
from harness.report.page import Document
from harness.report.render import Layout


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def _label(name: str) -> str:
    """Make a LaTeX label with hyphens for underscores, so every `_` in a .tex file is escaped
    text."""
    return "tab:" + name.replace("_", "-")


class TableWriter:
    """Writes one table in every format into the report folder and adds it to the document."""

    def __init__(self, folder: Path, doc: Document, directions: Mapping[str, bool]) -> None:
        self.folder, self.doc, self.directions = folder, doc, directions
        (folder / "tables").mkdir()
        (folder / "figures").mkdir()

    def scores(
        self, name: str, data: pd.DataFrame, shown: pd.DataFrame, layout: Layout, caption: str
    ) -> str:
        render.write_csv(data, self.folder / "tables" / f"{name}.csv")
        tex = render.scores_latex(shown, layout, self.directions, caption, _label(name))
        (self.folder / "tables" / f"{name}.tex").write_text(tex)
        markdown = render.scores_markdown(shown, layout, self.directions, caption)
        self.doc.table(markdown, render.scores_html(shown, layout, self.directions, caption))
        return markdown

    def csv(self, name: str, data: pd.DataFrame) -> None:
        """Write a table that is only a CSV (per-seed numbers)."""
        render.write_csv(data, self.folder / "tables" / f"{name}.csv")

    def plain(
        self,
        name: str,
        data: pd.DataFrame,
        caption: str,
        formats: Mapping[str, render.Formatter] | None = None,
        shown: pd.DataFrame | None = None,
    ) -> None:
        """Write `data` to the CSV and `shown` (default: `data`) everywhere else."""
        render.write_csv(data, self.folder / "tables" / f"{name}.csv")
        shown = data if shown is None else shown
        tex = render.plain_latex(shown, caption, _label(name), formats)
        (self.folder / "tables" / f"{name}.tex").write_text(tex)
        self.doc.table(
            render.plain_markdown(shown, caption, formats),
            render.plain_html(shown, caption, formats),
        )

    def figure(self, name: str, caption: str, image: Image.Image | None = None) -> None:
        path = self.folder / "figures" / f"{name}.png"
        if image is not None:
            image.save(path, format="PNG", optimize=True)
        self.doc.figure(f"figures/{name}.png", path.read_bytes(), caption)
