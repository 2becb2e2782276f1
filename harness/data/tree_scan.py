"""Walk a data tree against its profile's layout: folders, file names and counts.

Only the tree's shape is checked here; the files' bytes are read by `harness.data.file_checks`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from harness.config import Profile
from harness.data.layout import MANIFEST, MASK_SPLITS, SOURCE_SPLITS, DataLayout, file_name
from harness.data.problem import Problem, shown_names

Kind = Literal["image", "mask"]
_INDEX_NAME = re.compile(r"^\d{6}\.png$")


class TreeScan:
    """Walk a data tree without following links; note what is there and what should not be."""

    def __init__(self, profile: Profile, hint: str) -> None:
        layout = DataLayout(profile.data_root)
        self.root = layout.root
        self.hint = hint
        # Container folders map to None, leaf folders to (expected PNG count, kind of file).
        self.expected: dict[Path, tuple[int, Kind] | None] = {
            self.root / "sources": None,
            self.root / "masks": None,
            self.root / "test": None,
        }
        for source, counts in profile.sources.items():
            self.expected[self.root / "sources" / source] = None
            for split, count in zip(SOURCE_SPLITS, counts, strict=True):
                self.expected[layout.source_dir(source, split)] = (count, "image")
        for split in MASK_SPLITS:
            self.expected[layout.mask_dir(split)] = (getattr(profile.masks, split), "mask")
        for test_set, count in profile.test_sets.items():
            self.expected[layout.test_dir(test_set)] = (count, "image")
        self.problems: list[Problem] = []
        self.seen: set[Path] = {self.root}
        self.found: dict[Path, list[str]] = {}
        self.files: list[tuple[Path, Kind]] = []
        self.manifests: set[Path] = set()

    def walk(self, folder: Path) -> None:
        leaf = self.expected.get(folder)
        if leaf is not None:
            self.found[folder] = []
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            self.problems.append(
                Problem(folder, f"cannot list folder: {error.strerror}", "check its permissions")
            )
            return
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                self.problems.append(
                    Problem(
                        path,
                        "symbolic link (not followed): a data tree holds real files only",
                        "replace the link with a copy of its target, or remove it",
                    )
                )
            elif entry.is_dir(follow_symlinks=False) and path in self.expected:
                self.seen.add(path)
                self.walk(path)
            elif entry.is_dir(follow_symlinks=False):
                self.problems.append(
                    Problem(
                        path,
                        "unexpected folder: not part of this profile's data layout",
                        "move or delete it",
                    )
                )
            elif (
                entry.is_file(follow_symlinks=False)
                and entry.name == MANIFEST
                and (folder == self.root or (leaf is not None and leaf[1] == "mask"))
            ):
                self.manifests.add(path)
            elif (
                leaf is not None
                and entry.is_file(follow_symlinks=False)
                and entry.name.endswith(".png")
            ):
                self._add_png(folder, path, leaf[1])
            else:
                self.problems.append(
                    Problem(
                        path,
                        "unexpected file: a data tree holds only PNGs and manifest.json files",
                        "move or delete it",
                    )
                )

    def _add_png(self, folder: Path, path: Path, kind: Kind) -> None:
        self.found[folder].append(path.name)
        self.files.append((path, kind))
        if not _INDEX_NAME.match(path.name):
            self.problems.append(
                Problem(
                    path,
                    "unexpected file name: files are named 000000.png, 000001.png, … because "
                    "sorted order is pairing order",
                    self.hint,
                )
            )

    def missing_folders(self) -> list[Problem]:
        """Report each missing folder once: a missing `sources/` hides its children."""
        problems: list[Problem] = []
        for folder in self.expected:
            if folder not in self.seen and folder.parent in self.seen:
                entry = self.expected[folder]
                hint = self.hint
                if entry is not None and entry[0] == 0:
                    # `val: 0` means an empty folder, which copies (git, some rsyncs) drop.
                    hint = f"create it empty (mkdir -p {folder}): a count of 0 keeps its folder"
                problems.append(Problem(folder, "folder missing", hint))
        return problems

    def count_problems(self) -> list[Problem]:
        problems: list[Problem] = []
        for folder, names in self.found.items():
            entry = self.expected[folder]
            count = entry[0] if entry else 0
            if len(names) != count:
                problems.append(
                    Problem(folder, f"expected {count} PNG files, found {len(names)}", self.hint)
                )
                continue
            missing = sorted({file_name(i) for i in range(count)} - set(names))
            if missing and all(_INDEX_NAME.match(n) for n in names):
                problems.append(
                    Problem(
                        folder,
                        f"files are not numbered 000000.png to {file_name(count - 1)}: "
                        f"missing {shown_names(missing)}",
                        self.hint,
                    )
                )
        return problems
