"""The `inpaint-bench` command: one click group, nouns as sub-groups, thin commands."""

from __future__ import annotations

import logging
import sqlite3

import click

from harness import __version__
from harness.errors import HarnessError, storage_error


class HarnessGroup(click.Group):
    """Turn every `HarnessError` raised below into a clean one-line error with exit status 1,
    and so too a read-only folder or a full disk (`storage_error`)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except HarnessError as error:
            raise click.ClickException(str(error)) from error
        except (OSError, sqlite3.OperationalError) as error:
            translated = storage_error(error)
            if translated is None:
                raise
            raise click.ClickException(str(translated)) from error


@click.group(cls=HarnessGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="inpaint-bench")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level to stderr.")
def cli(verbose: bool) -> None:
    """Benchmark image-inpainting models trained under one contract and one time budget.

    \b
    Example:
        inpaint-bench data sample
        inpaint-bench data check --profile sample
        inpaint-bench config check
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    # Imported here so that `harness.cli` stays the one place commands are wired together.
    from harness.commands import config as config_commands
    from harness.commands import contract as contract_commands
    from harness.commands import data as data_commands
    from harness.commands import images as image_commands
    from harness.commands import report as report_commands
    from harness.commands import run as run_commands
    from harness.commands import validate as validate_commands

    cli.add_command(data_commands.data)
    cli.add_command(config_commands.config)
    cli.add_command(contract_commands.contract)
    cli.add_command(run_commands.run)
    cli.add_command(validate_commands.validate)
    cli.add_command(report_commands.report)
    cli.add_command(image_commands.images)


_register()
