"""The FID row of the main table: a set-level value from each score step's sidecar, no interval.

Uses its own copy of the report fixture (tests/reportfixture.py) whose score results are given a
`fid` entry afterwards, as images/metrics/score.py writes it.
"""

from __future__ import annotations

from pathlib import Path

from reportfixture import PREDICT_FAILED, SOURCES, TEST_SETS, WEIGHTS_MISSING, build_run
from test_report import markdown_tables

from harness.ledger import Ledger
from harness.report import build_report, render
from harness.report.build import MAIN
from harness.report.rundata import load_run
from harness.report.score_tables import main_table

FID = {"alpha": 40.0, "beta": 25.5, "gamma": 31.25}


def _with_fid(root: Path, computed: bool) -> Path:
    """Build the fixture run and add a sidecar `fid` entry to every score step."""
    fixture = build_run(root)
    with Ledger.in_run_dir(fixture.run_dir) as ledger:
        for step in ledger.steps("score"):
            result = dict(step.result or {})
            meta = dict(result.get("metadata") or {})
            model = str(step.spec["model"])
            value = FID[model] if computed else None
            meta["fid"] = {
                "composite": value,
                "raw": None if value is None else value + 1,
                "status": "computed" if computed else WEIGHTS_MISSING,
                "images": 9,
            }
            meta.setdefault("higher_is_better", {})["fid"] = False
            ledger.finish(step.key, "done", {**result, "metadata": meta})
    return fixture.run_dir


def _fid_rows(rows: list[list[str]]) -> dict[str, list[str]]:
    out, current = {}, ""
    for row in rows:
        current = row[0] or current
        if row[1].startswith("FID"):
            out[current] = row
    return out


def test_no_fid_row_when_the_run_did_not_ask(tmp_path: Path) -> None:
    fixture = build_run(tmp_path)
    table = main_table(load_run(fixture.run_dir, fixture.images_root), "place2")
    assert "fid" not in set(table["metric"])


def test_fid_row_says_weights_missing(tmp_path: Path) -> None:
    run_dir = _with_fid(tmp_path, computed=False)
    run = load_run(run_dir, tmp_path / "images")
    for source in SOURCES:
        table = main_table(run, source)
        fid = table[table["metric"] == "fid"]
        assert list(fid["test_set"].unique()) == list(TEST_SETS)
        text = render.scores_markdown(table, MAIN, {"fid": False}, "t")
        header = text.splitlines()[2]
        assert "alpha" in header
        for record in fid.to_dict("records"):
            assert record["n"] == 0
            if (source, record["model"], record["test_set"]) == PREDICT_FAILED:
                assert record["missing"] == "failed"  # no score step: why the cell is empty
            else:
                assert record["missing"] == WEIGHTS_MISSING
        html = render.scores_html(table, MAIN, {"fid": False}, "t")
        assert f'<td class="na">{WEIGHTS_MISSING}</td>' in html
        assert "FID ↓" in text and f"| {WEIGHTS_MISSING} |" in text


def test_fid_row_shows_the_values_and_bolds_the_lowest(tmp_path: Path) -> None:
    run_dir = _with_fid(tmp_path, computed=True)
    result = build_report(run_dir, images_root=tmp_path / "images")
    header, rows = main_markdown_table_text(result.main_markdown, "place2")
    fid = _fid_rows(rows)
    assert list(fid) == list(TEST_SETS)
    for row in fid.values():
        cells = dict(zip(header[2:], row[2:], strict=True))
        # No interval; n is the test set's image count.
        assert cells == {
            "alpha": "40.00 (n = 9)",
            "beta": "**25.50** (n = 9)",
            "gamma": "31.25 (n = 9)",
        }
    assert "no CI: a set-level metric" in result.main_markdown
    tex = (result.path / "tables" / "main_place2.tex").read_text()
    assert r"\textbf{25.50}" in tex and r"40.00 {\scriptsize (n = 9)} &" in tex
    html = (result.path / "report.html").read_text()
    assert 'data-mean="25.5" data-n="9"' in html
    # The raw variant is not part of the main table: its values (composite + 1) do not appear.
    assert "41.00" not in "\n".join("|".join(r) for r in fid.values())


def main_markdown_table_text(text: str, source: str) -> tuple[list[str], list[list[str]]]:
    for caption, header, rows in markdown_tables(text):
        if f"models trained on {source}." in caption:
            return header, rows
    raise AssertionError(f"no main table for {source}")
