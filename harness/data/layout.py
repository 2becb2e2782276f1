"""Where things live in a data tree, for every profile alike.

    <data_root>/
      sources/<source>/train/*.png     RGB, image_size², training images
      sources/<source>/val/*.png       RGB, validation images
      masks/<split>/*.png              L, 255 = hole, 0 = known; split in train, val, test
      masks/<split>/manifest.json      per mask: file, hole_fraction, bin, sha256
      test/<test_set>/*.png            RGB ground truth; test image i pairs with masks/test file i
      manifest.json                    every file above with its sha256 (the data's identity)

Files are named by zero-padded index (`000000.png`), so sorted order is pairing order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MASK_SPLITS = ("train", "val", "test")
SOURCE_SPLITS = ("train", "val")
MANIFEST = "manifest.json"
# The NVIDIA irregular-mask bins (Liu et al. 2018), used for per-area results.
AREA_BINS: tuple[tuple[float, float], ...] = (
    (0.01, 0.1),
    (0.1, 0.2),
    (0.2, 0.3),
    (0.3, 0.4),
    (0.4, 0.5),
    (0.5, 0.6),
)


def file_name(index: int) -> str:
    return f"{index:06d}.png"


def bin_label(low: float, high: float) -> str:
    """`(0.1, 0.2)` → `"(0.1,0.2]"`: bins are open below, closed above."""
    return f"({low:g},{high:g}]"


def area_bin(hole_fraction: float) -> str | None:
    """The label of the bin holding `hole_fraction`, or None if it is outside every bin."""
    for low, high in AREA_BINS:
        if low < hole_fraction <= high:
            return bin_label(low, high)
    return None


@dataclass(frozen=True)
class DataLayout:
    root: Path

    def source_dir(self, source: str, split: str) -> Path:
        return self.root / "sources" / source / split

    def mask_dir(self, split: str) -> Path:
        return self.root / "masks" / split

    def test_dir(self, test_set: str) -> Path:
        return self.root / "test" / test_set

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST
