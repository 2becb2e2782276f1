"""Check a data tree against its profile and the layout of `harness.data.layout`.

`check_data` runs the checks in turn: the tree's shape (`harness.data.tree_scan`), each file
(`harness.data.file_checks`), copies across splits, test pairing and the manifests
(`harness.data.manifest_checks`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.config import Profile
from harness.data.file_checks import inspect_files
from harness.data.layout import DataLayout
from harness.data.leakage import exact_duplicates, near_duplicates, role_of
from harness.data.manifest_checks import manifest_problems
from harness.data.problem import Problem, shown_names
from harness.data.tree_scan import TreeScan
from harness.progress import Reporter


def expected_file_count(profile: Profile) -> int:
    """Return how many PNGs a complete data tree for `profile` holds."""
    sources = sum(train + val for train, val in profile.sources.values())
    masks = profile.masks.train + profile.masks.val + profile.masks.test
    return sources + masks + sum(profile.test_sets.values())


def rebuild_hint(profile: Profile) -> str:
    """Say how to rebuild the tree of `profile` from scratch."""
    if profile.name == "sample":
        return "re-run `inpaint-bench data sample --overwrite`"
    return f"re-run `inpaint-bench data prepare --profile {profile.name} ... --overwrite`"


def check_data(
    profile: Profile, reporter: Reporter, warnings: list[Problem] | None = None
) -> list[Problem]:
    """Return every problem of the data tree at `profile.data_root`; never raise on bad data.

    Checks folders, counts, file names, PNG format (8-bit RGB images, 8-bit L masks with
    255 = hole and a hole fraction in the profile's `hole_range`, open below, closed above),
    test image/mask pairing, the same image in two of train, val and test (same sha256) and,
    where present, the sha256 of every file against the manifests. Symbolic links are reported
    and never followed. Near copies across splits (perceptual hash, `harness.data.leakage`) are
    not problems: they are appended to `warnings`, or noted through `reporter` without it.
    """
    layout = DataLayout(profile.data_root)
    hint = rebuild_hint(profile)
    if not layout.root.is_dir():
        return [Problem(layout.root, "data folder not found", hint)]
    scan = TreeScan(profile, hint)
    scan.walk(layout.root)
    problems = scan.problems + scan.missing_folders()
    problems += scan.count_problems()
    digests, hashes, file_problems = inspect_files(scan.files, profile, hint, reporter)
    problems += file_problems
    problems += _leak_problems(layout.root, digests)
    near = _near_copies(layout.root, hashes, digests)
    if warnings is not None:
        warnings += near
    for problem in near if warnings is None else []:
        reporter.note(f"warning: {problem.path}: {problem.message}")
    problems += _pairing_problems(layout, profile, scan.found)
    problems += manifest_problems(layout, scan, digests, hint)
    return problems


def _leak_problems(root: Path, digests: dict[Path, str]) -> list[Problem]:
    return [
        Problem(
            dup.first,
            f"the same image (sha256) as {dup.second}: a test or validation image must not be "
            f"a training image ({role_of(dup.first.relative_to(root))} and "
            f"{role_of(dup.second.relative_to(root))})",
            "replace one of the two by another photo, or rebuild the tree with `inpaint-bench "
            "data prepare`, which refuses such copies",
        )
        for dup in exact_duplicates(digests, root)
    ]


def _near_copies(
    root: Path, hashes: dict[Path, np.ndarray], digests: dict[Path, str]
) -> list[Problem]:
    return [
        Problem(
            dup.first,
            f"near copy of {dup.second} ({dup.distance} of 64 bits of perceptual hash apart)",
            "look at both: if they show the same scene, replace one of them",
        )
        for dup in near_duplicates(hashes, digests, root)
    ]


def _pairing_problems(
    layout: DataLayout, profile: Profile, found: dict[Path, list[str]]
) -> list[Problem]:
    """Test image i pairs with mask i by file name, so both folders must hold the same names."""
    masks = found.get(layout.mask_dir("test"))
    if masks is None:
        return []
    problems = []
    for test_set in profile.test_sets:
        folder = layout.test_dir(test_set)
        images = found.get(folder)
        if images is None or set(images) == set(masks):
            continue
        only_here = sorted(set(images) - set(masks))
        only_masks = sorted(set(masks) - set(images))
        detail = "; ".join(
            part
            for part in (
                f"only in {folder.name}: {shown_names(only_here)}" if only_here else "",
                f"only in masks/test: {shown_names(only_masks)}" if only_masks else "",
            )
            if part
        )
        problems.append(
            Problem(
                folder,
                f"test images do not pair 1:1 with masks/test ({detail})",
                "test image i pairs with mask i: give both folders the same "
                "file names, or " + rebuild_hint(profile),
            )
        )
    return problems
