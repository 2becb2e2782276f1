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

import hashlib
import os
import random
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from PIL import Image

from harness.config import Profile
from harness.data import masks as mask_generator
from harness.data import photos
from harness.data.atomic import atomic_dir
from harness.data.layout import AREA_BINS, MASK_SPLITS, DataLayout, bin_label, file_name
from harness.data.leakage import exact_duplicates, near_duplicates, perceptual_hash
from harness.data.manifest import MaskRecord, mask_record, write_data_manifest, write_mask_manifest
from harness.data.mask_levels import SPECKLE_FRACTION, speckles
from harness.data.pairs import Pairing, find_pairs, is_mask_name, read_pairs
from harness.data.photos import MaskReading
from harness.data.pngs import HOLE, KNOWN, TOO_LARGE, encode_png
from harness.errors import DataError, storage_error
from harness.progress import Reporter

MaskPolarity = Literal["auto", "hole-white", "hole-black"]
# Holes cover at most 60% of a mask (the largest NVIDIA bin), so mostly-white means white = known.
AUTO_WHITE_LIMIT = 0.5
_WINDOW_PER_WORKER = 2
_SHOWN_NEAR = 20
T = TypeVar("T")
S = TypeVar("S")


@dataclass(frozen=True)
class MaskStats:
    """What went into masks/<split>: where from, which polarity, and how the areas spread."""

    split: str
    origin: Path | None  # None: generated
    polarity: Literal["hole-white", "hole-black", "generated"]
    auto: bool
    median_white_fraction: float | None
    bins: dict[str, int]  # AREA_BINS label (or "other") → number of masks
    # Imported masks left out, with the reason: not two-level, or a hole fraction outside
    # hole_range. Replaced by the next mask in seeded order.
    excluded: tuple[tuple[Path, str], ...]
    specks: int = 0  # hole components of ≤ SPECKLE_FRACTION of the pixels, in the masks kept
    speckled: int = 0  # masks kept with at least one speck
    pairing: str | None = None  # for test masks kept with their photos: the rule that paired them


@dataclass(frozen=True)
class PrepareReport:
    root: Path
    images: int
    masks: tuple[MaskStats, ...]
    skipped: tuple[tuple[Path, str], ...]  # unreadable inputs left out, with the reason
    warnings: tuple[str, ...] = ()  # shown even with --quiet: random pairing, near-duplicates


@dataclass(frozen=True)
class _Unreadable:
    reason: str
    path: Path | None = None  # the file at fault, when not the one in the work list


@dataclass
class _Context:
    pool: ThreadPoolExecutor
    window: int  # decode tasks in flight: enough to keep the pool busy, few to hold in memory
    reporter: Reporter
    size: int
    skip_unreadable: bool
    skipped: list[tuple[Path, str]]
    origins: dict[Path, Path] = field(default_factory=dict)  # written PNG → the input it came from
    digests: dict[Path, str] = field(default_factory=dict)  # written photo → its sha256
    hashes: dict[Path, np.ndarray] = field(default_factory=dict)  # written photo → its phash
    warnings: list[str] = field(default_factory=list)

    def wrote_photo(self, dest: Path, origin: Path, png: bytes, phash: np.ndarray | None) -> None:
        dest.write_bytes(png)
        self.origins[dest] = origin
        self.digests[dest] = hashlib.sha256(png).hexdigest()
        if phash is not None:
            self.hashes[dest] = phash


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
        ctx = _Context(
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
                    _import_pairs(
                        ctx, profile, name, masks["test"], pairing, seed, mask_polarity, layout
                    )
                )
                images += profile.masks.test
            elif split in masks:
                stats.append(
                    _import_masks(
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
                stats.append(_generate_masks(ctx, profile, split, seed, layout.mask_dir(split)))
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


def _refuse_leaks(ctx: _Context, root: Path) -> None:
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


def _decoded(
    ctx: _Context, order: list[S], work: Callable[[S], T | _Unreadable]
) -> Generator[tuple[S, T]]:
    """Yield `(item, work(item))` in `order` for readable items (a file, or a photo and its
    mask), a few pool tasks ahead."""
    pending: deque[tuple[S, Future[T | _Unreadable]]] = deque()
    upcoming = iter(order)
    try:
        while True:
            while len(pending) < ctx.window and (path := next(upcoming, None)) is not None:
                pending.append((path, ctx.pool.submit(work, path)))
            if not pending:
                return
            path, future = pending.popleft()
            result = future.result()
            if isinstance(result, _Unreadable):
                culprit = result.path or Path(str(path))
                if not ctx.skip_unreadable:
                    raise DataError(
                        f"{culprit}: unreadable image ({result.reason})",
                        "remove or replace it, or pass --skip-unreadable",
                    )
                ctx.skipped.append((culprit, result.reason))
                ctx.reporter.note(f"skipped unreadable {culprit}: {result.reason}")
                continue
            yield path, result
    finally:
        for _, future in pending:
            future.cancel()


def _guarded(
    decode: Callable[[Path], Image.Image], convert: Callable[[Image.Image], T], path: Path
) -> T | _Unreadable:
    """Run `convert(decode(path))`; a failure to decode is the input's fault, not a crash."""
    try:
        image = decode(path)
    except TOO_LARGE as error:
        return _Unreadable(
            f"too large to decode, {type(error).__name__}: {error} Downscale it below "
            f"{(Image.MAX_IMAGE_PIXELS or 0) / 1e6:.1f} Mpixels",
            path,
        )
    except Exception as error:  # PIL raises many types on bad files: all mean "unreadable"
        return _Unreadable(f"{type(error).__name__}: {error}", path)
    return convert(image)


def _import_photos(
    ctx: _Context, folder: Path, order: list[Path], dests: list[Path], label: str
) -> int:
    work = partial(
        _guarded, partial(photos.open_photo, size=ctx.size), partial(_photo_png, size=ctx.size)
    )
    for dest in {d.parent for d in dests}:
        dest.mkdir(parents=True, exist_ok=True)
    written = 0
    with closing(_decoded(ctx, order, work)) as results:
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


def _photo_png(image: Image.Image, size: int) -> tuple[bytes, np.ndarray | None]:
    """The photo's PNG bytes at `size`², and the perceptual hash of those pixels."""
    square = photos.fit_square(image, size, Image.Resampling.LANCZOS)
    return encode_png(np.asarray(square, dtype=np.uint8)), perceptual_hash(square)


def _import_pairs(
    ctx: _Context,
    profile: Profile,
    test_set: str,
    masks_folder: Path,
    pairing: Pairing,
    seed: int,
    polarity: MaskPolarity,
    layout: DataLayout,
) -> MaskStats:
    """Import a test set and masks/test together, pair by pair, so image i keeps its own mask.

    Pairs are shuffled with the test set's seed; a pair whose mask is left out (not two-level,
    hole fraction outside the range) or whose photo or mask is unreadable (with
    --skip-unreadable) is replaced by the next pair."""
    order = list(pairing.pairs)
    random.Random(f"{seed}:test:{test_set}").shuffle(order)

    def work(pair: tuple[Path, Path]) -> tuple[Any, photos.MaskReading] | _Unreadable:
        photo = _guarded(
            partial(photos.open_photo, size=ctx.size), partial(_photo_png, size=ctx.size), pair[0]
        )
        if isinstance(photo, _Unreadable):
            return photo
        reading = _guarded(photos.open_mask, partial(photos.mask_white, size=ctx.size), pair[1])
        if isinstance(reading, _Unreadable):
            return reading
        return photo, reading

    with closing(_decoded(ctx, order, work)) as results:
        items = ((m, reading, (p, m, photo)) for (p, m), (photo, reading) in results)
        selection = _select_masks(ctx, profile, "test", masks_folder, items, polarity)
    folder = layout.test_dir(test_set)
    folder.mkdir(parents=True, exist_ok=True)
    for index, (_, (photo_path, _, (png, phash))) in enumerate(selection.kept):
        ctx.wrote_photo(folder / file_name(index), photo_path, png, phash)
    kept = [(bits, mask_path) for bits, (_, mask_path, _) in selection.kept]
    records, specks = _write_masks(ctx, layout.mask_dir("test"), kept)
    return selection.stats(
        "test", masks_folder, polarity, specks, _bins(records), f"{pairing.rule} with {test_set}"
    )


def _import_masks(
    ctx: _Context,
    profile: Profile,
    split: str,
    folder: Path,
    order: list[Path],
    polarity: MaskPolarity,
    out_dir: Path,
) -> MaskStats:
    work = partial(_guarded, photos.open_mask, partial(photos.mask_white, size=ctx.size))
    with closing(_decoded(ctx, order, work)) as results:
        items = ((path, reading, path) for path, reading in results)
        selection = _select_masks(ctx, profile, split, folder, items, polarity)
    records, specks = _write_masks(ctx, out_dir, selection.kept)
    return selection.stats(split, folder, polarity, specks, _bins(records))


@dataclass
class _Selection:
    kept: list[tuple[np.ndarray, Any]]  # bit-packed hole masks, each with its payload
    excluded: list[tuple[Path, str]]
    chosen: Literal["hole-white", "hole-black"]
    median: float

    def stats(
        self,
        split: str,
        folder: Path,
        polarity: MaskPolarity,
        specks: list[int],
        bins: dict[str, int],
        pairing: str | None = None,
    ) -> MaskStats:
        return MaskStats(
            split,
            folder,
            self.chosen,
            polarity == "auto",
            self.median,
            bins,
            tuple(self.excluded),
            sum(specks),
            sum(1 for n in specks if n),
            pairing,
        )


def _select_masks(
    ctx: _Context,
    profile: Profile,
    split: str,
    folder: Path,
    items: Iterable[tuple[Path, MaskReading, T]],
    polarity: MaskPolarity,
) -> _Selection:
    """Take masks from `items` (in seeded order) until the split has its count: masks that are
    not two-level, or whose hole fraction (after polarity) is outside hole_range, are left out
    and named. `auto` polarity is decided on the first `count` two-level masks."""
    count = getattr(profile.masks, split)
    low, high = profile.masks.hole_range
    excluded: list[tuple[Path, str]] = []

    def two_level() -> Generator[tuple[Path, np.ndarray, float, T]]:
        for path, reading, payload in items:
            if reading.problem is not None:
                excluded.append((path, reading.problem))
                continue
            # Masks are kept bit-packed: a few MB even for thousands of masks.
            yield path, np.packbits(reading.white), float(reading.white.mean()), payload

    stream = two_level()
    first = list(ctx.reporter.track(islice(stream, count), count, f"masks/{split}"))
    if len(first) < count:
        raise DataError(
            f"{folder}: needs {count} readable two-level masks for masks/{split}, found "
            f"{len(first)}" + _excluded_detail(excluded),
            "add masks, or lower the counts",
        )
    median = float(np.median([fraction for _, _, fraction, _ in first])) if first else 0.0
    invert = median > AUTO_WHITE_LIMIT if polarity == "auto" else polarity == "hole-black"
    chosen: Literal["hole-white", "hole-black"] = "hole-black" if invert else "hole-white"
    if polarity == "auto":
        ctx.reporter.note(
            f"masks/{split}: median white fraction {median:.3f} "
            f"{'>' if invert else '≤'} {AUTO_WHITE_LIMIT}, so {chosen} "
            "(pass --mask-polarity to override)"
        )
    kept: list[tuple[np.ndarray, T]] = []
    rest = chain(first, stream)
    while len(kept) < count and (item := next(rest, None)) is not None:
        path, bits, white, payload = item
        hole = 1.0 - white if invert else white
        if low < hole <= high:
            kept.append((~bits if invert else bits, payload))
        else:
            excluded.append(
                (path, f"hole fraction {hole:.3f} outside ({low:g}, {high:g}], read as {chosen}")
            )
    if len(kept) < count:
        raise DataError(
            f"{folder}: needs {count} masks with hole fraction in ({low:g}, {high:g}] for "
            f"masks/{split}, found {len(kept)} (read as {chosen}; median white fraction "
            f"{median:.3f})" + _excluded_detail(excluded),
            "check --mask-polarity, add masks, or widen masks.hole_range in benchmark.yaml",
        )
    return _Selection(kept, excluded, chosen, median)


def _excluded_detail(excluded: list[tuple[Path, str]]) -> str:
    if not excluded:
        return ""
    path, reason = excluded[0]
    return f"; {len(excluded)} left out, e.g. {path}: {reason}"


def _write_masks(
    ctx: _Context, out_dir: Path, kept: list[tuple[np.ndarray, Path]]
) -> tuple[list[MaskRecord], list[int]]:
    """Write masks 000000.png… (each from its input file) and their manifest; return the
    records and each mask's number of specks."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write = partial(_write_mask, out_dir=out_dir, size=ctx.size)
    written = list(ctx.pool.map(write, range(len(kept)), [bits for bits, _ in kept]))
    records = [record for record, _ in written]
    write_mask_manifest(out_dir, records)
    for index, (_, origin) in enumerate(kept):
        ctx.origins[out_dir / file_name(index)] = origin
    return records, [specks for _, specks in written]


def _write_mask(index: int, bits: np.ndarray, out_dir: Path, size: int) -> tuple[MaskRecord, int]:
    hole = np.unpackbits(bits, count=size * size).reshape(size, size).astype(bool)
    path = out_dir / file_name(index)
    # No per-file fsync (write_png): the whole folder is renamed into place atomically.
    path.write_bytes(encode_png(np.where(hole, HOLE, KNOWN).astype(np.uint8)))
    return mask_record(path, hole), speckles(hole)


def _generate_masks(
    ctx: _Context, profile: Profile, split: str, seed: int, out_dir: Path
) -> MaskStats:
    out_dir.mkdir(parents=True, exist_ok=True)
    records = mask_generator.write_masks(
        out_dir,
        getattr(profile.masks, split),
        profile.image_size,
        split_seed(seed, split),
        profile.masks.hole_range,
        ctx.reporter,
    )
    return MaskStats(split, None, "generated", False, None, _bins(records), ())


def split_seed(seed: int, split: str) -> int:
    """Return the seed that generates the masks of `split`: distinct per (seed, split).

    3·seed + split number, as harness.data.sample does, so `data masks --seed` repeats them.
    """
    return 3 * seed + MASK_SPLITS.index(split)


def _bins(records: Iterable[MaskRecord]) -> dict[str, int]:
    counts = Counter(r.bin or "other" for r in records)
    labels = [bin_label(low, high) for low, high in AREA_BINS]
    return {label: counts[label] for label in labels} | (
        {"other": counts["other"]} if counts["other"] else {}
    )


def report_lines(report: PrepareReport, shown: int = 20) -> list[str]:
    """What the user must see even with --quiet: masks left out (named, with the reason),
    specks, and the warnings (random pairing, near-duplicates)."""
    lines = []
    for s in report.masks:
        for path, why in s.excluded[:shown]:
            lines.append(f"masks/{s.split}: left out {path}: {why}")
        if len(s.excluded) > shown:
            lines.append(f"masks/{s.split}: ... and {len(s.excluded) - shown} more left out")
        if s.specks:
            lines.append(
                f"warning: masks/{s.split}: {s.speckled} mask(s) hold {s.specks} speck(s) "
                f"(hole components of ≤ {SPECKLE_FRACTION:g} of the pixels): check that the "
                "holes are meant to be that small, or clean the masks"
            )
    return lines + [f"warning: {w}" for w in report.warnings]


def mask_table(report: PrepareReport) -> str:
    """Render the per-split mask statistics as a plain-text table (one row per split)."""
    labels = list(dict.fromkeys(label for s in report.masks for label in s.bins))
    header = ["split", "polarity", *labels, "excluded", "specks", "from"]
    rows = [header]
    for s in report.masks:
        polarity = s.polarity + (" (auto)" if s.auto else "")
        rows.append(
            [
                s.split,
                polarity,
                *(str(s.bins.get(label, 0)) for label in labels),
                str(len(s.excluded)),
                str(s.specks),
                (str(s.origin) if s.origin else "generated")
                + (f" (paired by {s.pairing})" if s.pairing else ""),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
