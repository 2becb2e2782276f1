"""`inpaint-bench images …`: list and build model images."""

from __future__ import annotations

from pathlib import Path

import click

from harness.builder import build_image
from harness.config import load_benchmark
from harness.errors import HarnessError
from harness.images import ImageFolder
from harness.options import config_option, quiet_option, upstream_option
from harness.progress import make_reporter
from harness.scoring import METRICS_FOLDER


@click.group()
def images() -> None:
    """Model image folders and their built images."""


def _folders(config_path: Path, names: tuple[str, ...]) -> list[ImageFolder]:
    bench = load_benchmark(config_path)
    models = bench.document["models"]
    base = config_path.resolve().parent
    chosen = names or tuple(models)
    folders = []
    for name in chosen:
        ref = models[name]["image"] if name in models else name
        folders.append(ImageFolder.at(ref, base=base))
    return folders


@images.command("list")
@config_option
def list_images(config_path: Path) -> None:
    """List the models of benchmark.yaml with their image folder, upstream and licence.

    \b
    Example:
        inpaint-bench images list
    """
    for folder in _folders(config_path, ()):
        up = folder.manifest.get("upstream")
        origin = f"{up['url']} @ {up['commit'][:12]} ({up['license']})" if up else "our own code"
        click.echo(f"{folder.name:12} {folder.path}  {origin}")


@images.command("build")
@click.argument("names", nargs=-1)
@config_option
@click.option(
    "--base-image",
    default=None,
    help="Build argument BASE_IMAGE (default: $INPAINT_BENCH_BASE_IMAGE, else the Dockerfile's "
    "inpaint-bench/base:cuda, made by images/base/build.sh).",
)
@click.option(
    "--build-arg",
    "build_args",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra build argument (e.g. BAKE_WEIGHTS=0 for an offline build without pretrained "
    "weights; also $INPAINT_BENCH_BUILD_ARGS).",
)
@click.option("--metrics", "with_metrics", is_flag=True, help="Also build the metrics image.")
@upstream_option
@quiet_option
def build(
    names: tuple[str, ...],
    config_path: Path,
    base_image: str | None,
    build_args: tuple[str, ...],
    with_metrics: bool,
    upstream_src: tuple[tuple[str, Path], ...],
    quiet: bool,
) -> None:
    """Build model images with BuildKit (all models of benchmark.yaml by default).

    The authors' code is cloned at the manifest's pinned commit into the build context (or
    taken from --upstream-src); the manifest becomes the image label. Prints each image tag;
    an image that does not build is reported (the failing step, its cause and a hint) and the
    others are still built; the exit status is then 1.

    \b
    Example:
        inpaint-bench images build madf --base-image inpaint-bench/base:cpu \\
            --build-arg BAKE_WEIGHTS=0 --upstream-src madf=~/src/Pytorch-MADF
    """
    reporter = make_reporter(quiet)
    upstream = dict(upstream_src)
    args = dict(a.split("=", 1) for a in build_args if "=" in a)
    paths = [folder.path for folder in _folders(config_path, names)]
    if with_metrics:
        paths.append(METRICS_FOLDER)
    failed = []
    for path in paths:  # one image that does not build does not stop the others
        try:
            tag = build_image(path, upstream.get(path.name), base_image, reporter, build_args=args)
        except HarnessError as error:
            click.echo(f"{path.name}\tnot built: {error}", err=True)
            failed.append(path.name)
            continue
        click.echo(f"{path.name}\t{tag}")
    if failed:
        raise HarnessError(f"{len(failed)} image(s) did not build: {', '.join(failed)}")
