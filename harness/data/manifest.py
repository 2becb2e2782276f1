"""Manifests: per-mask records (file, hole fraction, bin, sha256) and the data tree's identity.

The data manifest lists every PNG under the data root with its sha256; its own hash is the
"data manifest" part of the ledger key, so changing any file invalidates cached results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.data.atomic import atomic_write_text
from harness.data.layout import MANIFEST, area_bin
from harness.errors import DataError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class MaskRecord:
    file: str
    hole_fraction: float
    bin: str | None
    sha256: str


def mask_record(path: Path, hole: np.ndarray) -> MaskRecord:
    """Describe the mask written at `path`, whose hole pixels are True in `hole`."""
    fraction = float(hole.mean())
    return MaskRecord(path.name, round(fraction, 6), area_bin(fraction), sha256_file(path))


def write_mask_manifest(folder: Path, records: list[MaskRecord]) -> Path:
    path = folder / MANIFEST
    body = {"polarity": "255 = hole, 0 = known", "masks": [asdict(r) for r in records]}
    atomic_write_text(path, json.dumps(body, indent=1) + "\n")
    return path


def read_mask_manifest(folder: Path) -> list[MaskRecord]:
    """The records of folder/manifest.json; DataError naming the file if it is unreadable."""
    path = folder / MANIFEST
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        return [MaskRecord(**r) for r in body["masks"]]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise DataError(
            f"{path}: unreadable mask manifest ({type(error).__name__}: {error})",
            "restore it, or rebuild the data tree",
        ) from None


def write_data_manifest(root: Path) -> Path:
    """List every PNG under `root` (sorted relative paths) with its sha256 in root/manifest.json."""
    files = {
        str(p.relative_to(root)): sha256_file(p)
        for p in sorted(root.rglob("*.png"))
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    }
    path = root / MANIFEST
    atomic_write_text(path, json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")
    return path


def data_identity(root: Path) -> str:
    """The sha256 of root/manifest.json: one string that changes when any data file changes."""
    return sha256_file(root / MANIFEST)
