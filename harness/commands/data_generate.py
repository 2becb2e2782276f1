"""`inpaint-bench data sample` and `data masks`: make data from the installed packages alone."""

from __future__ import annotations

from pathlib import Path

import click

from harness.data.atomic import atomic_dir
from harness.data.masks import bin_counts, mask_bins, write_masks
from harness.data.sample import build_sample_set
from harness.errors import DataError
from harness.options import (
    config_option,
    profile_option,
    quiet_option,
    resolve_profile,
    seed_option,
)
from harness.progress import make_reporter


@click.command()
@config_option
@profile_option()
@seed_option
@click.option("--overwrite", is_flag=True, help="Replace the profile's data tree if it exists.")
@quiet_option
def sample(config_path: Path, profile: str, seed: int | None, overwrite: bool, quiet: bool) -> None:
    """Build the bundled sample set from scikit-image's pictures; print its path.

    Scenes, faces and textures at the profile's image size, with free-form masks over every area
    bin. No download. The same seed gives a byte-identical tree.

    \b
    Example:
        inpaint-bench data sample
        inpaint-bench data sample --profile sample --seed 1 --overwrite
    """
    _, resolved = resolve_profile(config_path, profile)
    seed = resolved.seed if seed is None else seed
    click.echo(build_sample_set(resolved, seed, make_reporter(quiet), overwrite))


def _hole_range(
    ctx: click.Context, param: click.Parameter, value: tuple[float, float]
) -> tuple[float, float]:
    try:
        mask_bins(value)
    except DataError as error:
        raise click.BadParameter(error.message) from None
    return value


@click.command()
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create for the masks and their manifest.json.",
)
@click.option("--count", required=True, type=click.IntRange(min=1), help="Number of masks.")
@click.option(
    "--size",
    default=256,
    show_default=True,
    type=click.IntRange(min=8),
    help="Mask side in pixels.",
)
@click.option(
    "--hole-range",
    type=(float, float),
    default=(0.01, 0.6),
    show_default=True,
    callback=_hole_range,
    help="Hole fractions to cover, spread over the area bins.",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed."
)
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@quiet_option
def masks(
    out_dir: Path,
    count: int,
    size: int,
    hole_range: tuple[float, float],
    seed: int,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Write free-form masks (255 = hole) spread evenly over the area bins; print counts per bin.

    \b
    Example:
        inpaint-bench data masks --out masks/ --count 600 --size 256 --hole-range 0.1 0.4
    """
    if out_dir.exists() and not overwrite:
        raise DataError(f"{out_dir}: already exists", "pass --overwrite to replace it")
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        records = write_masks(tmp, count, size, seed, hole_range, make_reporter(quiet))
    for label, n in [("bin", "masks"), *bin_counts(records), ("total", len(records))]:
        click.echo(f"{label:<12} {n:>6}")
