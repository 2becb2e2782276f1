"""`inpaint-bench validate`: the conformance suite for a model image."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from harness.conformance import Conformance
from harness.conformance_report import format_report
from harness.options import quiet_option, runner_option, upstream_option
from harness.progress import make_reporter
from harness.running import choose_runner, resolve_target


@click.command()
@click.argument("target")
@runner_option
@upstream_option
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the suite's jobs, data and logs here (default: a temporary folder).",
)
@quiet_option
def validate(
    target: str,
    runner: str,
    upstream_src: tuple[tuple[str, Path], ...],
    work_dir: Path | None,
    quiet: bool,
) -> None:
    """Check that a model image honours contract v1, and print a pass/fail table.

    TARGET is an image folder (images/<name>), a model name from benchmark.yaml, or (with the
    docker runner) a built image reference. Exits 1 if any check fails.

    \b
    Example:
        inpaint-bench validate images/gatedconv --runner local
        inpaint-bench validate inpaint-bench/aotgan:3f2a... --runner docker
    """
    reporter = make_reporter(quiet)
    chosen = choose_runner(runner, dict(upstream_src), reporter)
    image, manifest = resolve_target(target, chosen)
    with tempfile.TemporaryDirectory(prefix="inpaint-bench-validate-") as tmp:
        suite = Conformance(image, chosen, work_dir or Path(tmp), reporter, manifest)
        report = suite.run()
    click.echo(format_report(report))
    if not report.passed:
        raise click.exceptions.Exit(1)
