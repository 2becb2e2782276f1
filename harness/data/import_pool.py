"""The import pool of `data prepare`: inputs decoded in worker threads a few tasks ahead, in
seeded order, with unreadable files named (or skipped, with --skip-unreadable) instead of
crashing the import."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from harness.data import photos
from harness.data.leakage import perceptual_hash
from harness.data.pngs import TOO_LARGE, encode_png
from harness.errors import DataError
from harness.progress import Reporter

T = TypeVar("T")
S = TypeVar("S")


@dataclass(frozen=True)
class Unreadable:
    reason: str
    path: Path | None = None  # the file at fault, when not the one in the work list


@dataclass
class ImportContext:
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


def decoded(
    ctx: ImportContext, order: list[S], work: Callable[[S], T | Unreadable]
) -> Generator[tuple[S, T]]:
    """Yield `(item, work(item))` in `order` for readable items (a file, or a photo and its
    mask), a few pool tasks ahead."""
    pending: deque[tuple[S, Future[T | Unreadable]]] = deque()
    upcoming = iter(order)
    try:
        while True:
            while len(pending) < ctx.window and (path := next(upcoming, None)) is not None:
                pending.append((path, ctx.pool.submit(work, path)))
            if not pending:
                return
            path, future = pending.popleft()
            result = future.result()
            if isinstance(result, Unreadable):
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


def guarded(
    decode: Callable[[Path], Image.Image], convert: Callable[[Image.Image], T], path: Path
) -> T | Unreadable:
    """Run `convert(decode(path))`; a failure to decode is the input's fault, not a crash."""
    try:
        image = decode(path)
    except TOO_LARGE as error:
        return Unreadable(
            f"too large to decode, {type(error).__name__}: {error} Downscale it below "
            f"{(Image.MAX_IMAGE_PIXELS or 0) / 1e6:.1f} Mpixels",
            path,
        )
    except Exception as error:  # PIL raises many types on bad files: all mean "unreadable"
        return Unreadable(f"{type(error).__name__}: {error}", path)
    return convert(image)


def photo_png(image: Image.Image, size: int) -> tuple[bytes, np.ndarray | None]:
    """The photo's PNG bytes at `size`², and the perceptual hash of those pixels."""
    square = photos.fit_square(image, size, Image.Resampling.LANCZOS)
    return encode_png(np.asarray(square, dtype=np.uint8)), perceptual_hash(square)
