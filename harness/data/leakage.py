"""Find the same photo in more than one of train, val and test (leakage between splits).

Exact copies (a copy, a symbolic or hard link, or another file that decodes to the same pixels)
give the same PNG bytes in a data tree, so the same sha256: `data prepare` and `data check`
refuse them, naming both files. Near copies (re-encoded, resized, slightly edited) are found by
a perceptual hash (`imagehash.phash`, a 64-bit DCT hash): pairs within NEAR_BITS bits are
reported as a warning, since unrelated photos can now and then land that close too. Flat images
(grey-level spread under FLAT_STD) are left out of that comparison.

Duplicates inside one role (two training sources, two test sets) are not leakage and are left
alone; masks are not photos and are never compared.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Literal

import imagehash
import numpy as np
from PIL import Image

Role = Literal["train", "val", "test"]
# Hamming distance (of 64 bits) at or under which two photos are called near copies. A JPEG
# re-encode or a resize of one photo lands at 0-4; different photos mostly at 20-40.
NEAR_BITS = 6
# A (nearly) flat image has no structure for the hash to describe: its bits are rounding noise,
# and two flat images of different colours would look like copies. They are not compared.
FLAT_STD = 2.0


@dataclass(frozen=True)
class Duplicate:
    first: Path
    second: Path
    distance: int  # bits of perceptual hash apart; 0 for exact copies


def role_of(relative: Path) -> Role | None:
    """The split a data-tree path belongs to: sources/S/train → train, sources/S/val → val,
    test/T → test; None for masks and anything else."""
    parts = relative.parts
    if len(parts) >= 3 and parts[0] == "sources" and parts[2] in ("train", "val"):
        return "train" if parts[2] == "train" else "val"
    if len(parts) >= 2 and parts[0] == "test":
        return "test"
    return None


def exact_duplicates(digests: dict[Path, str], root: Path) -> list[Duplicate]:
    """Pairs of files of different roles with the same sha256 (one pair per role pair and
    digest, first files in sorted order)."""
    groups: dict[str, dict[Role, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for path, digest in digests.items():
        role = role_of(path.relative_to(root))
        if role is not None:
            groups[digest][role].append(path)
    found = []
    for by_role in groups.values():
        for a, b in combinations(sorted(by_role), 2):
            found.append(Duplicate(min(by_role[a]), min(by_role[b]), 0))
    return sorted(found, key=lambda d: (str(d.first), str(d.second)))


def perceptual_hash(image: Image.Image) -> np.ndarray | None:
    """The 64-bit perceptual hash of `image` as 64 booleans; None for a flat image."""
    if float(np.asarray(image.convert("L"), dtype=np.float64).std()) < FLAT_STD:
        return None
    return np.asarray(imagehash.phash(image).hash, dtype=bool).reshape(64)


def near_duplicates(
    hashes: dict[Path, np.ndarray], digests: dict[Path, str], root: Path
) -> list[Duplicate]:
    """Pairs of files of different roles whose perceptual hashes are within NEAR_BITS bits and
    whose bytes differ (exact copies are `exact_duplicates`' to report)."""
    by_role: dict[Role, list[Path]] = defaultdict(list)
    for path in sorted(hashes):
        role = role_of(path.relative_to(root))
        if role is not None:
            by_role[role].append(path)
    found = []
    for a, b in combinations(sorted(by_role), 2):
        left = np.stack([hashes[p] for p in by_role[a]]).astype(np.int32)
        right = np.stack([hashes[p] for p in by_role[b]]).astype(np.int32)
        # Hamming distances of every pair at once: bits set in one and not the other.
        distance = left @ (1 - right).T + (1 - left) @ right.T
        for i, j in zip(*np.nonzero(distance <= NEAR_BITS), strict=True):
            first, second = by_role[a][i], by_role[b][j]
            if digests.get(first) != digests.get(second):
                found.append(Duplicate(first, second, int(distance[i, j])))
    return sorted(found, key=lambda d: (d.distance, str(d.first), str(d.second)))
