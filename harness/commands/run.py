"""`inpaint-bench run`: train every model on every source, then predict every test set."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from harness.ledger import LEDGER_NAME, check_ledger
from harness.options import (
    config_option,
    gpu_option,
    profile_option,
    quiet_option,
    run_dir_option,
    runner_option,
    slots_options,
    upstream_option,
)
from harness.progress import make_reporter
from harness.running import RunRequest, format_summary, run_command


@click.command()
@config_option
@profile_option(default="auto")
@run_dir_option()
@runner_option
@gpu_option
@slots_options
@upstream_option
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Also stop training after this many optimiser steps.",
)
@click.option(
    "--weights-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="TORCH_HOME-style folder with the LPIPS backbone weights "
    "(local runner; the metrics image bakes its own).",
)
@click.option("--no-score", is_flag=True, help="Stop after the predictions.")
@click.option(
    "--executor",
    type=click.Choice(["host", "slurm"]),
    default="host",
    show_default=True,
    help="host: jobs run on this machine; slurm: each job, and the report, is a Slurm batch job "
    "(submitted from here, --slots of them in flight, run on the node through --runner; extra "
    "sbatch arguments from $INPAINT_SLURM_ARGS; --run-dir on a filesystem the nodes share).",
)
@quiet_option
def run(
    config_path: Path,
    profile: str,
    run_dir: Path | None,
    runner: str,
    gpu: int | None,
    gpus: tuple[int, ...],
    slots: int | None,
    upstream_src: tuple[tuple[str, Path], ...],
    max_steps: int | None,
    weights_dir: Path | None,
    no_score: bool,
    executor: str,
    quiet: bool,
) -> None:
    """Train each model on each training source under its budget, predict every test set, score.

    One job at a time, or one per GPU (--gpus) or CPU slot (--slots) side by side.
    Completed steps are recorded in RUN_DIR/ledger.sqlite and skipped when the same command
    runs again. Then writes RUN_DIR/report/ (as `inpaint-bench report`) and prints its path
    and main tables; exits 1 after that if any step failed.

    \b
    Example:
        inpaint-bench run --profile sample --runner local
        inpaint-bench run --profile seed --gpu 0 --run-dir runs/seed
        inpaint-bench run --profile seed --gpus 0,1,2,3 --run-dir runs/seed
        inpaint-bench run --profile seed --executor slurm --runner docker --gpu 0 --slots 24
    """
    if gpu is not None and gpus:
        raise click.UsageError("--gpu and --gpus: give one of them (--gpus 0 is --gpu 0)")
    if gpus and slots is not None and executor == "host":
        raise click.UsageError("--gpus and --slots: give one of them (a GPU is a slot)")
    if run_dir is not None:
        # Refuse a damaged ledger before the run folder is touched (run.json is written first).
        check_ledger(run_dir / LEDGER_NAME)
    # SIGTERM ends the harness like Ctrl-C: the running job's container or process is removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    reporter = make_reporter(quiet)
    request = RunRequest(
        config_path,
        profile,
        run_dir,
        runner,
        gpu,
        dict(upstream_src),
        max_steps,
        weights_dir,
        score=not no_score,
        gpus=gpus,
        slots=slots,
        executor=executor,
    )
    summary = run_command(request, reporter)
    click.echo(format_summary(summary))
    # --executor slurm: a job wrote the report (its step's result); a failed one is in the table.
    job = next((s for s in summary.steps if s.kind == "report"), None)
    if job is not None and job.status != "failed":
        click.echo(f"\nreport: {job.result['path']}\n")
        click.echo(job.result["main_markdown"], nl=False)
    elif job is None and request.score:
        # The report is the point of a run: write it even when some jobs failed (it shows them).
        from harness.report.build import build_report

        result = build_report(summary.run_dir, reporter)
        click.echo(f"\nreport: {result.path}\n")
        click.echo(result.main_markdown, nl=False)
    if summary.failed:
        raise click.exceptions.Exit(1)
