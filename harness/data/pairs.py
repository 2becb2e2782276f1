"""Find which mask belongs to which photo when masks come with their photos.

Upstream example folders ship a mask per photo: `image/x.jpg` with `mask/x.png` (AOT-GAN,
TFill), or `x.png` beside `x_mask000.png` in one folder (LaMa). A data tree pairs test image i
with test mask i, so `data prepare` must keep those pairs instead of shuffling photos and masks
separately. Rules, tried in this order:

* `pairs file`: a text file given with `--pairs TEST_SET=FILE`, one `image<TAB or ,>mask` per
  line (paths relative to the test set's folder and the masks' folder; `#` starts a comment);
* `name`: the same relative path in both folders (`a/x.png` ↔ `a/x.png`);
* `stem`: the same relative path without the extension, a mask's `_mask`, `-mask` or
  `_mask000` ending dropped (`x.jpg` ↔ `x.png`, `x.png` ↔ `x_mask000.png`).

A rule applies only if it pairs every photo or every mask of the smaller side: numbered files
(`00001.png`) shared by accident by unrelated folders rarely do. When a photo has several masks
(`x_mask000.png`, `x_mask001.png`) the first in sorted order is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import DataError

_MASK_ENDING = re.compile(r"[_.-]mask\d*$", re.IGNORECASE)


@dataclass(frozen=True)
class Pairing:
    rule: str  # "pairs file PATH", "name" or "stem"
    pairs: list[tuple[Path, Path]]  # (photo, mask), sorted by the photo's relative path


def is_mask_name(path: Path) -> bool:
    """True for `x_mask.png`, `x-mask.png`, `x_mask000.png`: a mask stored beside its photo."""
    return _MASK_ENDING.search(path.stem) is not None


def find_pairs(
    photos: list[Path], photo_root: Path, masks: list[Path], mask_root: Path
) -> Pairing | None:
    """Pair photos with masks by name, else by stem (see the module docstring); None if neither
    rule pairs every photo or every mask."""
    for rule, key in (("name", _name_key), ("stem", _stem_key)):
        by_key: dict[str, Path] = {}
        for mask in sorted(masks, key=lambda m: m.relative_to(mask_root).as_posix()):
            by_key.setdefault(key(mask, mask_root), mask)
        pairs = [(photo, by_key[k]) for photo in photos if (k := key(photo, photo_root)) in by_key]
        if pairs and len(pairs) >= min(len(photos), len(by_key)):
            return Pairing(rule, pairs)
    return None


def read_pairs(path: Path, photo_root: Path, mask_root: Path) -> Pairing:
    """Read a pairs file; DataError naming the file and line for a bad line or a missing file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the pairs file ({error})") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = [f.strip() for f in re.split(r"[\t,]", text)]
        if len(fields) != 2 or not all(fields):
            raise DataError(
                f"{path}:{number}: expected `image,mask` (or tab-separated), got {line!r}",
                "one pair per line, paths relative to the test set's and the masks' folders",
            )
        photo, mask = photo_root / fields[0], mask_root / fields[1]
        for found, root in ((photo, photo_root), (mask, mask_root)):
            if not found.resolve().is_relative_to(root.resolve()) or not found.is_file():
                raise DataError(
                    f"{path}:{number}: {found} is not a file inside {root}",
                    "name files relative to the test set's folder and the masks' folder",
                )
        pairs.append((photo, mask))
    if not pairs:
        raise DataError(f"{path}: no pairs in the pairs file", "one `image,mask` per line")
    return Pairing(f"pairs file {path}", sorted(pairs, key=lambda p: str(p[0])))


def _name_key(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _stem_key(path: Path, root: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    return _MASK_ENDING.sub("", relative.as_posix())
