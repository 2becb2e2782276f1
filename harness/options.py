"""Options shared by several commands: one meaning, one name, everywhere."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from harness.config import DEFAULT_CONFIG, Benchmark, Profile, load_benchmark

F = Callable[..., Any]


def config_option(f: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_CONFIG,
        show_default=True,
        help="The experiment file.",
    )(f)


def profile_option(default: str | None = "sample") -> Callable[[F], F]:
    def decorate(f: F) -> F:
        return click.option(
            "--profile",
            default=default,
            show_default=default is not None,
            help="Profile of benchmark.yaml to use (e.g. sample, seed).",
        )(f)

    return decorate


def quiet_option(f: F) -> F:
    return click.option("-q", "--quiet", is_flag=True, help="No progress bars or status lines.")(f)


def seed_option(f: F) -> F:
    return click.option(
        "--seed",
        type=int,
        default=None,
        help="Random seed (default: the `seed` of benchmark.yaml).",
    )(f)


def resolve_profile(config_path: Path, profile: str) -> tuple[Benchmark, Profile]:
    bench = load_benchmark(config_path)
    return bench, bench.profile(profile)


def run_dir_option(must_exist: bool = False) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        return click.option(
            "--run-dir",
            type=click.Path(file_okay=False, exists=must_exist, path_type=Path),
            default=None,
            help="Run folder (default: runs/<profile>).",
        )(f)

    return decorate


def runner_option(f: F) -> F:
    return click.option(
        "--runner",
        type=click.Choice(["auto", "local", "docker"]),
        default="auto",
        show_default=True,
        help="docker: each model in its image; local: its folder in a per-model venv.",
    )(f)


def gpu_option(f: F) -> F:
    return click.option(
        "--gpu",
        type=click.IntRange(min=0),
        default=None,
        help="Run on this NVIDIA GPU index (default: the CPU).",
    )(f)


def _parse_gpus(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...]:
    if value is None:
        return ()
    try:
        gpus = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected GPU indices separated by commas (e.g. 0,1,2,3), got {value!r}", ctx, param
        ) from None
    if any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise click.BadParameter(f"{value}: give each GPU index (0 or more) once", ctx, param)
    return gpus


def slots_options(f: F) -> F:
    """--gpus and --slots: several jobs side by side, one per device (docs/running.md)."""
    f = click.option(
        "--slots",
        type=click.IntRange(min=1),
        default=None,
        help="On the CPU: run this many jobs side by side, each with cores/slots threads "
        "(default: runtime.slots, else 1).",
    )(f)
    return click.option(
        "--gpus",
        callback=_parse_gpus,
        metavar="0,1,...",
        default=None,
        help="Run one job per listed NVIDIA GPU at a time, each pinned to its GPU "
        "(default: runtime.gpus).",
    )(f)


UPSTREAM_ENV_PREFIX = "INPAINT_UPSTREAM_"


def upstream_from_env() -> dict[str, Path]:
    """$INPAINT_UPSTREAM_<MODEL>=PATH, e.g. INPAINT_UPSTREAM_MADF: a local checkout of that
    model's upstream code, so `make bench` on an offline host needs no --upstream-src."""
    found = {}
    for key, value in sorted(os.environ.items()):
        if key.startswith(UPSTREAM_ENV_PREFIX) and value:
            name = key.removeprefix(UPSTREAM_ENV_PREFIX).lower()
            if not Path(value).is_dir():
                raise click.BadParameter(f"{key}={value}: no such folder")
            found[name] = Path(value)
    return found


def _parse_upstream(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, Path], ...]:
    pairs = upstream_from_env()  # --upstream-src wins over the environment
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"expected NAME=PATH, got {value!r}", ctx, param)
        if not Path(path).is_dir():
            raise click.BadParameter(f"{path}: no such folder", ctx, param)
        pairs[name] = Path(path)
    return tuple(pairs.items())


def upstream_option(f: F) -> F:
    return click.option(
        "--upstream-src",
        multiple=True,
        callback=_parse_upstream,
        metavar="NAME=PATH",
        help="Use a local checkout of a model's upstream code (offline hosts, tests); "
        "also read from $INPAINT_UPSTREAM_<MODEL>.",
    )(f)
