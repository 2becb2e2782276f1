"""Build a data tree from folders of photos and masks (`inpaint-bench data prepare`).

Selection is deterministic: a folder's files, sorted by relative path, are shuffled by
`random.Random(f"{seed}:<kind>:<name>")` and taken in that order (sources: train, then val).
How pixels are converted is documented in `harness.data.photos`.

Unreadable inputs (corrupt, truncated, zero bytes, a format PIL cannot convert) stop the import
with a DataError naming the file, since a silently shorter or different selection would change
the benchmark. With `skip_unreadable=True` the file is listed in the report and the next file in
seeded order takes its place. Imported masks whose hole fraction falls outside the profile's
`hole_range` are treated the same way as skipped ones (listed, replaced by the next), so the tree
always passes `inpaint-bench data check`. Everything is written to a temporary sibling folder
that is renamed into place only when complete.
"""

from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from functools import partial
from itertools import islice
from pathlib import Path

from harness.config import Profile
from harness.data import photos
from harness.data.atomic import atomic_dir
from harness.data.import_pool import ImportContext, decoded, guarded, photo_png
from harness.data.layout import MASK_SPLITS, DataLayout, file_name
from harness.data.leakage import exact_duplicates, near_duplicates
from harness.data.manifest import write_data_manifest
from harness.data.pairs import Pairing, find_pairs, is_mask_name, read_pairs
from harness.data.prepare_masks import MaskPolarity, generate_masks, import_masks, import_pairs
from harness.data.prepare_report import PrepareReport
from harness.errors import DataError, storage_error
from harness.progress import Reporter

_WINDOW_PER_WORKER = 2
_SHOWN_NEAR = 20


def prepare_data(
    profile: Profile,
    sources: dict[str, Path],
    test_sets: dict[str, Path],
    masks: dict[str, Path],
    mask_polarity: MaskPolarity,
    seed: int,
    reporter: Reporter,
    overwrite: bool = False,
    skip_unreadable: bool = False,
    pairs: dict[str, Path] | None = None,
    pair_masks: bool = True,
) -> PrepareReport:
    """Build profile.data_root, with its manifests, from folders of photos and masks.

    Every source and test set of the profile needs a photo folder; mask splits (train, val,
    test) without a folder are generated with `harness.data.masks.write_masks`. Photos become
    RGB PNGs of image_size² (shorter side resized, centre crop). Masks become L PNGs,
    255 = hole; `mask_polarity` says which colour means hole in the given folders: `hole-white`,
    `hole-black`, or `auto` (white is the hole unless the median white fraction of the chosen
    masks is over 0.5). When the test masks belong to a test set's photos (`pairs`: a pairs
    file per test set, else by name or stem, `harness.data.pairs`), each kept photo keeps its
    own mask (with `pair_masks` False, test masks are shared by every test set in a seeded
    shuffle, the seed layout). A photo in two of train, val and test (same PNG bytes) is
    refused, naming both
    input files; near copies (perceptual hash) are warned about in the report.

    Raises DataError before writing anything if a folder is missing or too small, and leaves
    no output (and an existing tree untouched) if anything fails later.
    """
    _check_inputs(profile, sources, test_sets, masks)
    root = profile.data_root
    if root.exists() and not overwrite:
        raise DataError(f"{root}: already exists", "pass --overwrite to replace it")
    _warn_shared(sources, test_sets, reporter)
    paired = (
        _test_pairing(profile, test_sets, masks.get("test"), pairs or {}) if pair_masks else None
    )
    notes = _pairing_warnings(test_sets, masks.get("test"), paired, pair_masks)
    orders: dict[tuple[str, str], list[Path]] = {}
    for name, folder in sources.items():
        train, val = profile.sources[name]
        orders["source", name] = _order(
            folder,
            train + val,
            seed,
            f"source:{name}",
            f"images for source {name} ({train} train + {val} val)",
        )
    for name, folder in test_sets.items():
        if paired is None or name != paired[0]:
            orders["test", name] = _order(
                folder, profile.test_sets[name], seed, f"test:{name}", f"images for test set {name}"
            )
    for split, folder in masks.items():
        if split != "test" or paired is None:
            orders["masks", split] = _order(
                folder,
                getattr(profile.masks, split),
                seed,
                f"masks:{split}",
                f"masks for masks/{split}",
            )
    try:
        return _write_tree(
            profile,
            sources,
            test_sets,
            masks,
            mask_polarity,
            seed,
            reporter,
            overwrite,
            skip_unreadable,
            paired,
            orders,
            notes,
        )
    except OSError as error:
        failure = storage_error(error, f"{root}: writing the data tree")
        if failure is None:
            raise
        raise DataError(failure.message, failure.hint) from None


def _write_tree(
    profile: Profile,
    sources: dict[str, Path],
    test_sets: dict[str, Path],
    masks: dict[str, Path],
    mask_polarity: MaskPolarity,
    seed: int,
    reporter: Reporter,
    overwrite: bool,
    skip_unreadable: bool,
    paired: tuple[str, Pairing] | None,
    orders: dict[tuple[str, str], list[Path]],
    notes: list[str],
) -> PrepareReport:
    root = profile.data_root
    skipped: list[tuple[Path, str]] = []
    workers = os.cpu_count() or 4
    with atomic_dir(root, overwrite=overwrite) as tmp, ThreadPoolExecutor(workers) as pool:
        # The pool is shut down (its tasks done) before atomic_dir deletes tmp on error.
        ctx = ImportContext(
            pool,
            _WINDOW_PER_WORKER * workers,
            reporter,
            profile.image_size,
            skip_unreadable,
            skipped,
        )
        layout = DataLayout(tmp)
        _make_folders(layout, profile)
        images = 0
        for name, folder in sources.items():
            train, val = profile.sources[name]
            dests = [layout.source_dir(name, "train") / file_name(i) for i in range(train)]
            dests += [layout.source_dir(name, "val") / file_name(i) for i in range(val)]
            images += _import_photos(ctx, folder, orders["source", name], dests, f"sources/{name}")
        for name, folder in test_sets.items():
            if ("test", name) not in orders:
                continue  # imported with its masks below
            dests = [layout.test_dir(name) / file_name(i) for i in range(profile.test_sets[name])]
            images += _import_photos(ctx, folder, orders["test", name], dests, f"test/{name}")
        stats = []
        for split in MASK_SPLITS:
            if split == "test" and paired is not None:
                name, pairing = paired
                stats.append(
                    import_pairs(
                        ctx, profile, name, masks["test"], pairing, seed, mask_polarity, layout
                    )
                )
                images += profile.masks.test
            elif split in masks:
                stats.append(
                    import_masks(
                        ctx,
                        profile,
                        split,
                        masks[split],
                        orders["masks", split],
                        mask_polarity,
                        layout.mask_dir(split),
                    )
                )
            else:
                stats.append(generate_masks(ctx, profile, split, seed, layout.mask_dir(split)))
        _refuse_leaks(ctx, tmp)
        write_data_manifest(tmp)
    warnings = notes + ctx.warnings
    return PrepareReport(root, images, tuple(stats), tuple(skipped), tuple(warnings))


def _make_folders(layout: DataLayout, profile: Profile) -> None:
    """Create every leaf folder, also those with a count of 0 (`val: 0`): `data check` and `run`
    expect each folder of the layout, empty or not."""
    for name in profile.sources:
        for split in ("train", "val"):
            layout.source_dir(name, split).mkdir(parents=True, exist_ok=True)
    for name in profile.test_sets:
        layout.test_dir(name).mkdir(parents=True, exist_ok=True)
    for split in MASK_SPLITS:
        layout.mask_dir(split).mkdir(parents=True, exist_ok=True)


def _test_pairing(
    profile: Profile,
    test_sets: dict[str, Path],
    test_masks: Path | None,
    pairs: dict[str, Path],
) -> tuple[str, Pairing] | None:
    """Which test set (if any) the test masks belong to, and how they pair."""
    for name in sorted(pairs.keys() - test_sets.keys()):
        raise DataError(f"--pairs {name}: no such test set", f"use one of {', '.join(test_sets)}")
    if test_masks is None:
        if pairs:
            raise DataError("--pairs needs the test masks' folder", "pass --masks test=DIR")
        return None
    found: dict[str, Pairing] = {}
    masks = [m for m in photos.image_files(test_masks)]
    for name, folder in test_sets.items():
        if name in pairs:
            found[name] = read_pairs(pairs[name], folder, test_masks)
            continue
        images = photos.image_files(folder)
        candidates = masks
        if folder.resolve() == test_masks.resolve():
            # Photos and masks in one folder (x.png beside x_mask000.png).
            candidates = [m for m in masks if is_mask_name(m)]
            images = [p for p in images if not is_mask_name(p)]
        pairing = find_pairs(images, folder, candidates, test_masks)
        if pairing is not None:
            found[name] = pairing
    if len(found) > 1:
        raise DataError(
            f"{test_masks}: the test masks pair with the photos of test sets "
            f"{', '.join(sorted(found))}, but a data tree holds one set of test masks, shared "
            "by all test sets",
            "prepare each such test set in a profile of its own, pass --pairs for one, or "
            "pass --no-pairing to share the masks among all test sets at random (seeded)",
        )
    if not found:
        return None
    name, pairing = next(iter(found.items()))
    if profile.test_sets[name] != profile.masks.test:
        raise DataError(
            f"test set {name} keeps its own masks, so it needs as many images "
            f"({profile.test_sets[name]}) as masks/test ({profile.masks.test})",
            "make the two counts equal in benchmark.yaml",
        )
    if len(pairing.pairs) < profile.masks.test:
        raise DataError(
            f"{test_masks}: only {len(pairing.pairs)} photos of test set {name} have a mask "
            f"(by {pairing.rule}); {profile.masks.test} needed",
            "add pairs, or lower the counts in benchmark.yaml",
        )
    return name, pairing


def _pairing_warnings(
    test_sets: dict[str, Path],
    test_masks: Path | None,
    paired: tuple[str, Pairing] | None,
    pairs_wanted: bool,
) -> list[str]:
    if test_masks is None or not pairs_wanted:
        return []  # generated masks, or --no-pairing: random by design
    others = [name for name in test_sets if paired is None or name != paired[0]]
    if not others:
        return []
    if paired is None:
        return [
            f"masks/test ({test_masks}) shares no file names or stems with the photos of "
            f"{', '.join(others)}: each test image gets a mask by a seeded shuffle, at random; "
            "if masks belong to photos, pass --pairs TEST_SET=FILE"
        ]
    return [
        f"masks/test keeps the pairs of test set {paired[0]} ({paired[1].rule}); test set(s) "
        f"{', '.join(others)} use the same masks, paired at random by a seeded shuffle"
    ]


def _refuse_leaks(ctx: ImportContext, root: Path) -> None:
    """Refuse a photo written into two of train, val and test; warn about near copies."""
    exact = exact_duplicates(ctx.digests, root)
    if exact:
        first = exact[0]
        raise DataError(
            f"{ctx.origins[first.first]} and {ctx.origins[first.second]} are the same image: it "
            f"would be in {first.first.relative_to(root)} and {first.second.relative_to(root)}"
            f" ({len(exact)} such pair(s)); a test or validation photo must not be trained on",
            "remove one of the two (a copy, a link or a hard link) from its folder, or give "
            "train, val and test folders that do not share photos",
        )
    for near in near_duplicates(ctx.hashes, ctx.digests, root)[:_SHOWN_NEAR]:
        ctx.warnings.append(
            f"near-duplicate photos ({near.distance} of 64 bits of perceptual hash apart): "
            f"{ctx.origins[near.first]} ({near.first.relative_to(root)}) and "
            f"{ctx.origins[near.second]} ({near.second.relative_to(root)})"
        )


def _check_inputs(
    profile: Profile,
    sources: dict[str, Path],
    test_sets: dict[str, Path],
    masks: dict[str, Path],
) -> None:
    for kind, option, given, wanted in (
        ("source", "--source", sources, profile.sources),
        ("test set", "--test-set", test_sets, profile.test_sets),
    ):
        for name in sorted(given.keys() - wanted.keys()):
            raise DataError(
                f"{kind} {name!r} is not in profile {profile.name}",
                f"its {kind}s are: {', '.join(wanted)}",
            )
        missing = [name for name in wanted if name not in given]
        if missing:
            raise DataError(
                f"profile {profile.name} needs {kind} {', '.join(missing)}: no folder given",
                f"pass {option} NAME=DIR for each",
            )
    for split in sorted(masks.keys() - set(MASK_SPLITS)):
        raise DataError(f"unknown mask split {split!r}", f"use {', '.join(MASK_SPLITS)}")
    for folder in [*sources.values(), *test_sets.values(), *masks.values()]:
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found")


def _warn_shared(sources: dict[str, Path], test_sets: dict[str, Path], reporter: Reporter) -> None:
    for test_set, folder in test_sets.items():
        for source, other in sources.items():
            if folder.resolve() == other.resolve():
                reporter.note(
                    f"warning: test set {test_set} and source {source} both read "
                    f"{folder}: test images may also be training images"
                )


def _order(folder: Path, needed: int, seed: int, key: str, purpose: str) -> list[Path]:
    """List `folder`'s images and shuffle them with a seed of their own; fail if too few."""
    files = photos.image_files(folder)
    if len(files) < needed:
        raise DataError(
            f"{folder}: needs {needed} {purpose}, found {len(files)}",
            "add files, or lower the counts of the profile in benchmark.yaml",
        )
    random.Random(f"{seed}:{key}").shuffle(files)
    return files


def _import_photos(
    ctx: ImportContext, folder: Path, order: list[Path], dests: list[Path], label: str
) -> int:
    work = partial(
        guarded, partial(photos.open_photo, size=ctx.size), partial(photo_png, size=ctx.size)
    )
    for dest in {d.parent for d in dests}:
        dest.mkdir(parents=True, exist_ok=True)
    written = 0
    with closing(decoded(ctx, order, work)) as results:
        chosen = islice(results, len(dests))
        # The tracked iterator goes first so that zip exhausts it and the bar closes.
        for (origin, (png, phash)), dest in zip(
            ctx.reporter.track(chosen, len(dests), label), dests, strict=False
        ):
            ctx.wrote_photo(dest, origin, png, phash)
            written += 1
    if written < len(dests):
        raise DataError(
            f"{folder}: needs {len(dests)} readable images for {label}, found {written}",
            "add images, or lower the counts in benchmark.yaml",
        )
    return written
