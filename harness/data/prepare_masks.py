"""Masks for `data prepare`: imported (polarity decided, two-level and hole-range checks, the
excluded named), imported together with their test photos, or generated; written with their
manifest."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Generator, Iterable
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from harness.config import Profile
from harness.data import masks as mask_generator
from harness.data import photos
from harness.data.import_pool import ImportContext, Unreadable, decoded, guarded, photo_png
from harness.data.layout import AREA_BINS, MASK_SPLITS, DataLayout, bin_label, file_name
from harness.data.manifest import MaskRecord, mask_record, write_mask_manifest
from harness.data.mask_levels import speckles
from harness.data.pairs import Pairing
from harness.data.pngs import HOLE, KNOWN, encode_png
from harness.data.prepare_report import MaskStats
from harness.errors import DataError

MaskPolarity = Literal["auto", "hole-white", "hole-black"]
# Holes cover at most 60% of a mask (the largest NVIDIA bin), so mostly-white means white = known.
AUTO_WHITE_LIMIT = 0.5
T = TypeVar("T")


def import_pairs(
    ctx: ImportContext,
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

    def work(pair: tuple[Path, Path]) -> tuple[Any, photos.MaskReading] | Unreadable:
        photo = guarded(
            partial(photos.open_photo, size=ctx.size), partial(photo_png, size=ctx.size), pair[0]
        )
        if isinstance(photo, Unreadable):
            return photo
        reading = guarded(photos.open_mask, partial(photos.mask_white, size=ctx.size), pair[1])
        if isinstance(reading, Unreadable):
            return reading
        return photo, reading

    with closing(decoded(ctx, order, work)) as results:
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


def import_masks(
    ctx: ImportContext,
    profile: Profile,
    split: str,
    folder: Path,
    order: list[Path],
    polarity: MaskPolarity,
    out_dir: Path,
) -> MaskStats:
    work = partial(guarded, photos.open_mask, partial(photos.mask_white, size=ctx.size))
    with closing(decoded(ctx, order, work)) as results:
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
    ctx: ImportContext,
    profile: Profile,
    split: str,
    folder: Path,
    items: Iterable[tuple[Path, photos.MaskReading, T]],
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
    ctx: ImportContext, out_dir: Path, kept: list[tuple[np.ndarray, Path]]
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


def generate_masks(
    ctx: ImportContext, profile: Profile, split: str, seed: int, out_dir: Path
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
