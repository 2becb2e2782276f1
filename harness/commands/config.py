"""`inpaint-bench config …`: check benchmark.yaml and show a resolved profile."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from harness.config import load_benchmark
from harness.options import config_option


@click.group()
def config() -> None:
    """Inspect benchmark.yaml."""


@config.command("check")
@config_option
@click.option("--profile", default=None, help="Also resolve this profile and print it as JSON.")
def check_config(config_path: Path, profile: str | None) -> None:
    """Validate benchmark.yaml; every error names its YAML path.

    \b
    Example:
        inpaint-bench config check --profile seed
    """
    bench = load_benchmark(config_path)
    if profile is None:
        click.echo(f"{config_path}: valid; profiles: {', '.join(bench.profile_names)}")
        return
    resolved = asdict(bench.profile(profile))
    click.echo(json.dumps(resolved, indent=2, default=str))
