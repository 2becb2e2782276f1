"""Check a data tree's files against its manifests: the data manifest at the root (every PNG
with its sha256) and each mask folder's manifest.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from harness.data.layout import MANIFEST, MASK_SPLITS, DataLayout
from harness.data.problem import Problem
from harness.data.tree_scan import TreeScan


def manifest_problems(
    layout: DataLayout, scan: TreeScan, digests: dict[Path, str], hint: str
) -> list[Problem]:
    """Compare the manifests found by `scan` with the files present and their `digests`."""
    problems: list[Problem] = []
    if layout.manifest in scan.manifests:
        listed = _read_listing(layout.manifest, "data")
        if isinstance(listed, Problem):
            problems.append(listed)
        else:
            present = {str(p.relative_to(layout.root)) for p, _ in scan.files}
            actual = {str(p.relative_to(layout.root)): d for p, d in digests.items()}
            problems += _compare(layout.manifest, layout.root, listed, present, actual, hint)
    for split in MASK_SPLITS:
        folder = layout.mask_dir(split)
        manifest = folder / MANIFEST
        if folder not in scan.found:
            continue
        if manifest not in scan.manifests:
            problems.append(Problem(manifest, "mask manifest missing", hint))
            continue
        listed = _read_listing(manifest, "masks")
        if isinstance(listed, Problem):
            problems.append(listed)
            continue
        present = set(scan.found[folder])
        actual = {p.name: d for p, d in digests.items() if p.parent == folder}
        problems += _compare(manifest, folder, listed, present, actual, hint)
    return problems


def _read_listing(path: Path, kind: Literal["data", "masks"]) -> dict[str, str] | Problem:
    """Read {relative path: sha256} from a data or mask manifest, or say why not."""
    try:
        body: Any = json.loads(path.read_text(encoding="utf-8"))
        if kind == "data":
            listed = body["files"]
        else:
            listed = {record["file"]: record["sha256"] for record in body["masks"]}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in listed.items()):
            raise TypeError("names and sha256 values must be strings")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        return Problem(
            path,
            f"unreadable manifest ({type(error).__name__}: {error})",
            "restore it, or rebuild the data tree",
        )
    for name in listed:
        if not _inside(name, nested=kind == "data"):
            return Problem(
                path,
                f"manifest names {name!r}, a path outside its folder",
                "restore it, or rebuild the data tree (manifests list relative paths only)",
            )
    return dict(listed)


def _inside(name: str, nested: bool) -> bool:
    """True if `name` is a relative path that stays inside its folder (one level if not nested)."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return False
    if not nested and len(parts) > 1:
        return False
    return all(part not in ("", ".", "..") for part in parts)


def _compare(
    manifest: Path,
    base: Path,
    listed: dict[str, str],
    present: set[str],
    actual: dict[str, str],
    hint: str,
) -> list[Problem]:
    """Compare a manifest's {name: sha256} with the files present and the hashes read."""
    fix = f"restore the original file, or {hint} (the tree's identity changes either way)"
    problems = []
    for name in sorted(listed.keys() | present):
        if name in present and name not in actual:
            continue  # unreadable: already reported by the file checks
        if name not in present:
            problems.append(Problem(base / name, f"listed in {manifest} but missing", fix))
        elif name not in listed:
            problems.append(Problem(base / name, f"not listed in {manifest}", fix))
        elif listed[name] != actual[name]:
            problems.append(Problem(base / name, f"modified: sha256 differs from {manifest}", fix))
    return problems
