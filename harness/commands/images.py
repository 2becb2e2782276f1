"""`inpaint-bench images …`: list and build model images."""

from __future__ import annotations

from pathlib import Path

import click

from harness.builder import build_image
from harness.config import load_benchmark
from harness.images import ImageFolder
from harness.options import config_option, quiet_option, upstream_option
from harness.progress import make_reporter


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
    help="Build argument BASE_IMAGE (default: the Dockerfile's pinned CUDA base).",
)
@upstream_option
@quiet_option
def build(
    names: tuple[str, ...],
    config_path: Path,
    base_image: str | None,
    upstream_src: tuple[tuple[str, Path], ...],
    quiet: bool,
) -> None:
    """Build model images with BuildKit (all models of benchmark.yaml by default).

    The authors' code is cloned at the manifest's pinned commit into the build context (or
    taken from --upstream-src); the manifest becomes the image label. Prints each image tag.

    \b
    Example:
        inpaint-bench images build gatedconv classical --base-image local/torch-cpu:py311
    """
    reporter = make_reporter(quiet)
    upstream = dict(upstream_src)
    for folder in _folders(config_path, names):
        tag = build_image(folder.path, upstream.get(folder.name), base_image, reporter)
        click.echo(f"{folder.name}\t{tag}")
