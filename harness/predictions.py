"""Test inputs for models (masked, no ground truth) and the checks on what a model wrote back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from harness.data.atomic import atomic_dir
from harness.data.pngs import read_mask, read_rgb, write_png
from harness.progress import Reporter


def make_masked_inputs(images: Path, masks: Path, out: Path, reporter: Reporter) -> list[str]:
    """Write image i with the hole pixels of mask i zeroed into `out` (atomically); the ground
    truth never leaves this function, so it never reaches a model container."""
    names = sorted(p.name for p in images.glob("*.png"))
    with atomic_dir(out, overwrite=True) as tmp:
        for name in reporter.track(names, len(names), f"masking {images.name}"):
            rgb = read_rgb(images / name)
            hole = read_mask(masks / name)
            rgb[hole] = 0
            write_png(tmp / name, rgb)
    return names


@dataclass(frozen=True)
class OutputCheck:
    problems: list[str]
    known_pixel_max_abs: int  # largest |output - input| over known pixels, 0 if it composites

    @property
    def ok(self) -> bool:
        return not self.problems


def check_predictions(outputs: Path, inputs: Path, masks: Path, size: int) -> OutputCheck:
    """One 8-bit RGB PNG per input, same name and size, nothing else, no links; measures how
    far the known pixels moved (a model that does not composite is flagged, not failed).

    Problems of one kind are one line with a count and the first file, so a reason stays short
    however many images a model got wrong."""
    expected = sorted(p.name for p in inputs.glob("*.png"))
    present = sorted(p.name for p in outputs.iterdir()) if outputs.is_dir() else []
    missing = sorted(set(expected) - set(present))
    extra = sorted(set(present) - set(expected))
    found: dict[str, list[str]] = {}  # kind of problem → "path: detail" for each file
    if missing:
        found["missing"] = [str(outputs / name) for name in missing]
    if extra:
        found["extra"] = [str(outputs / name) for name in extra]
    worst = 0
    for name in sorted(set(expected) & set(present)):
        path = outputs / name
        if path.is_symlink() or not path.is_file():
            found.setdefault("link", []).append(f"{path}: not a regular file (links are refused)")
            continue
        try:
            with Image.open(path) as image:
                if image.format != "PNG" or image.mode != "RGB":
                    found.setdefault("format", []).append(
                        f"{path}: expected an 8-bit RGB PNG, got {image.format} {image.mode}"
                    )
                    continue
                if image.size != (size, size):
                    found.setdefault("size", []).append(
                        f"{path}: expected {size}x{size}, got {image.size[0]}x{image.size[1]}"
                    )
                    continue
                pred = np.asarray(image, dtype=np.int16)
        except (OSError, UnidentifiedImageError) as error:
            found.setdefault("unreadable", []).append(f"{path}: unreadable PNG: {error}")
            continue
        known = ~read_mask(masks / name)
        given = read_rgb(inputs / name).astype(np.int16)
        if known.any():
            worst = max(worst, int(np.abs(pred[known] - given[known]).max()))
    return OutputCheck([problem_line(kind, items) for kind, items in found.items()], worst)


_KINDS = {
    "missing": "prediction(s) missing (one PNG per input image, same name)",
    "extra": "unexpected file(s) in the outputs (only the predictions belong there)",
    "link": "prediction(s) not regular files",
    "format": "prediction(s) in the wrong format",
    "size": "prediction(s) of the wrong size (the inputs' size)",
    "unreadable": "prediction(s) unreadable",
}


def problem_line(kind: str, items: list[str]) -> str:
    """One line for every file with a problem of `kind` (a key of _KINDS): the count and the
    first file."""
    return f"{len(items)} {_KINDS[kind]}, e.g. {items[0]}"
