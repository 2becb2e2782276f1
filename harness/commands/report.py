"""`inpaint-bench report`: turn a run folder into tables, plots and pages for a paper."""

from __future__ import annotations

from pathlib import Path

import click

from harness.options import quiet_option
from harness.progress import make_reporter


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@quiet_option
def report(run_dir: Path, quiet: bool) -> None:
    """Write RUN_DIR/report/ from a run's ledger and print its path and the main tables.

    The folder holds report.md, a self-contained report.html (images embedded), and every
    table as CSV and LaTeX (booktabs) with plots and image grids; it is replaced atomically.
    Cells are means over images (and over training seeds, with their min–max, where a model
    was trained with several) with 95 % bootstrap intervals; bold marks each row's best model
    and every model a paired Wilcoxon test (Holm-corrected) finds not significantly different
    from it, † the others (docs/running.md). The ledger is only read.

    \b
    Example:
        inpaint-bench report runs/seed
    """
    # Imported here: pandas and matplotlib add a second or two to every CLI start otherwise.
    from harness.report.build import build_report

    result = build_report(run_dir, make_reporter(quiet))
    click.echo(str(result.path))
    click.echo()
    click.echo(result.main_markdown, nl=False)
