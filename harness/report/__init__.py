"""`inpaint-bench report`: a run folder → tables, figures and pages for a paper.

Tables are data first (score_tables.py, run_tables.py return unformatted DataFrames computed
from the ledger's per-image rows); render.py lays them out as Markdown, HTML, LaTeX and CSV;
figures.py and grids.py draw; build.py writes RUN_DIR/report/ atomically.
"""

from harness.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
