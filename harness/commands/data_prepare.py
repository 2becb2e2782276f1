"""`inpaint-bench data prepare`: import folders of photos and masks into a profile's data tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harness.data.layout import MASK_SPLITS
from harness.data.prepare import prepare_data
from harness.data.prepare_masks import MaskPolarity
from harness.data.prepare_report import mask_table, report_lines
from harness.options import (
    config_option,
    profile_option,
    quiet_option,
    resolve_profile,
    seed_option,
)
from harness.progress import make_reporter

_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


class NamedFolder(click.ParamType):
    """`NAME=DIR` → (NAME, existing folder DIR)."""

    name = "NAME=DIR"
    kind = _FOLDER

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, Path]:
        if isinstance(value, tuple):
            return value
        name, sep, folder = str(value).partition("=")
        if not sep or not name or not folder:
            self.fail(f"expected {self.name}, got {value!r}", param, ctx)
        return name, self.kind.convert(folder, param, ctx)


class NamedFile(NamedFolder):
    """`NAME=FILE` → (NAME, existing file FILE)."""

    name = "NAME=FILE"
    kind = _FILE


def named(pairs: tuple[tuple[str, Path], ...], allowed: list[str], option: str) -> dict[str, Path]:
    """Check each NAME against `allowed` (once each) and return {NAME: DIR}."""
    found: dict[str, Path] = {}
    for name, folder in pairs:
        if name not in allowed:
            raise click.BadParameter(
                f"{name!r} is not one of {', '.join(allowed)}", param_hint=option
            )
        if name in found:
            raise click.BadParameter(f"{name!r} is given twice", param_hint=option)
        found[name] = folder
    return found


@click.command()
@config_option
@profile_option("seed")
@click.option(
    "--source",
    "sources",
    type=NamedFolder(),
    multiple=True,
    help="A source's photo folder; every source of the profile needs one.",
)
@click.option(
    "--test-set",
    "test_sets",
    type=NamedFolder(),
    multiple=True,
    help="A test set's photo folder; every test set of the profile needs one.",
)
@click.option(
    "--masks",
    "masks",
    type=NamedFolder(),
    multiple=True,
    metavar="SPLIT=DIR",
    help="Masks for train, val or test; splits not given are generated.",
)
@click.option(
    "--mask-polarity",
    type=click.Choice(["auto", "hole-white", "hole-black"]),
    default="auto",
    show_default=True,
    help="Which colour means hole in the --masks folders (auto: by median area).",
)
@click.option(
    "--pairs",
    "pairs",
    type=NamedFile(),
    multiple=True,
    metavar="TEST_SET=FILE",
    help="Which test mask belongs to which photo: `image,mask` lines (else by name or stem).",
)
@click.option(
    "--no-pairing",
    is_flag=True,
    help="Share test masks among all test sets at random (seeded), even where names match.",
)
@seed_option
@click.option("--overwrite", is_flag=True, help="Replace an existing data tree.")
@click.option(
    "--skip-unreadable",
    is_flag=True,
    help="Skip unreadable photos and masks (listed) instead of failing on the first.",
)
@quiet_option
def prepare(
    config_path: Path,
    profile: str,
    sources: tuple,
    test_sets: tuple,
    masks: tuple,
    mask_polarity: MaskPolarity,
    pairs: tuple,
    no_pairing: bool,
    seed: int | None,
    overwrite: bool,
    skip_unreadable: bool,
    quiet: bool,
) -> None:
    """Import photos (any size and format PIL reads) and masks into a profile's data tree.

    Photos are turned upright, converted to RGB, resized by their shorter side, centre-cropped
    and split with a seeded shuffle. Masks become 255 = hole, split at their own grey levels;
    missing splits are generated. Test masks that belong to a test set's photos (same name or
    stem, or --pairs) stay with their photos, unless --no-pairing. A photo in two of train,
    val and test is refused.

    \b
    Example:
        inpaint-bench data prepare --profile seed \\
            --source place2=~/photos/places --source celeba=~/photos/celeba \\
            --test-set celeba_test=~/photos/celeba_test ... \\
            --masks test=~/masks/nvidia_test --mask-polarity auto
    """
    _, prof = resolve_profile(config_path, profile)
    report = prepare_data(
        prof,
        named(sources, list(prof.sources), "--source"),
        named(test_sets, list(prof.test_sets), "--test-set"),
        named(masks, list(MASK_SPLITS), "--masks"),
        mask_polarity,
        prof.seed if seed is None else seed,
        make_reporter(quiet),
        overwrite,
        skip_unreadable,
        named(pairs, list(prof.test_sets), "--pairs"),
        not no_pairing,
    )
    click.echo(report.root)
    click.echo(mask_table(report))
    for line in report_lines(report):
        click.echo(line, err=True)
