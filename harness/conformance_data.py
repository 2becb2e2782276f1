"""The tiny data set `inpaint-bench validate` runs a model image on, at its smallest legal size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.data.layout import file_name
from harness.data.masks import write_masks
from harness.data.pngs import write_png


def smallest_legal(manifest: dict[str, Any]) -> tuple[int, int]:
    """The smallest image size and batch the manifest's input rules allow (size ≥ 32)."""
    rules = manifest["input"]
    size = max(32, rules["min_size"])
    while size % rules["size_multiple"] or (rules["power_of_two"] and size & (size - 1)):
        size += 1
    batch = rules["batch"]
    small_batch = 1 if batch["max_any"] is not None or batch["multiple_of"] == 1 else 0
    return size, small_batch or batch["multiple_of"]


def tiny_data(root: Path, size: int, seed: int = 0) -> dict[str, Path]:
    """Smooth random images (6 train, 4 test) and masks (255 = hole) at size²."""
    rng = np.random.default_rng(seed)
    out = {
        "train": root / "images" / "train",
        "test": root / "test",
        "masks_train": root / "masks" / "train",
        "masks_test": root / "masks" / "test",
    }
    yy, xx = np.mgrid[0:size, 0:size] / size
    for split, count in (("train", 6), ("test", 4)):
        for i in range(count):
            a, b, c = rng.uniform(0.5, 4.0, 3)
            base = np.stack([np.sin(a * xx * 6 + c), np.cos(b * yy * 6), np.sin((xx + yy) * c * 4)])
            rgb = ((base.transpose(1, 2, 0) + 1) * 127.5).clip(0, 255).astype(np.uint8)
            write_png(out[split] / file_name(i), rgb)
    write_masks(out["masks_train"], 6, size, seed, (0.05, 0.4))
    write_masks(out["masks_test"], 4, size, seed + 1, (0.05, 0.4))
    return out
