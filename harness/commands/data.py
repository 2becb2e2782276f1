"""`inpaint-bench data …`: make, import and check data trees."""

from __future__ import annotations

import signal

import click

from harness.commands.data_check import check
from harness.commands.data_generate import masks, sample
from harness.commands.data_prepare import prepare


@click.group()
def data() -> None:
    """Build the sample set, generate masks, import photos and check a data tree."""
    # SIGTERM ends a data command like Ctrl-C, so that its temporary folder is deleted on the
    # way out (atomic_dir) instead of being left behind by the default, immediate exit.
    signal.signal(signal.SIGTERM, signal.default_int_handler)


data.add_command(sample)
data.add_command(masks)
data.add_command(prepare)
data.add_command(check)
