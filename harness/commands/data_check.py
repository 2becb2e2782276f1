"""`inpaint-bench data check`: report everything wrong with a profile's data tree."""

from __future__ import annotations

from pathlib import Path

import click

from harness.data.check import check_data, expected_file_count
from harness.data.problem import Problem
from harness.options import config_option, profile_option, quiet_option, resolve_profile
from harness.progress import make_reporter

MAX_SHOWN = 50


@click.command()
@config_option
@profile_option()
@quiet_option
def check(config_path: Path, profile: str, quiet: bool) -> None:
    """Check a data tree: folders, counts, PNG formats, masks, pairing and sha256 manifest.

    Prints `ok: N files checked in DIR`, or each problem with a hint and exits 1.

    \b
    Example:
        inpaint-bench data check --profile sample
    """
    _, prof = resolve_profile(config_path, profile)
    warnings: list[Problem] = []
    problems = check_data(prof, make_reporter(quiet), warnings)
    for warning in warnings[:MAX_SHOWN]:
        click.echo(f"warning: {warning.path}: {warning.message}", err=True)
        click.echo(f"  hint: {warning.hint}", err=True)
    if not problems:
        click.echo(f"ok: {expected_file_count(prof)} files checked in {prof.data_root}")
        return
    for problem in problems[:MAX_SHOWN]:
        click.echo(f"{problem.path or prof.data_root}: {problem.message}", err=True)
        click.echo(f"  hint: {problem.hint}", err=True)
    if len(problems) > MAX_SHOWN:
        click.echo(f"... and {len(problems) - MAX_SHOWN} more", err=True)
    raise click.ClickException(f"{prof.data_root}: {len(problems)} problem(s) found")
