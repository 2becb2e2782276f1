"""Check each PNG of a data tree: format, size and, for masks, binary values and hole fraction.

Every file is read once: the same bytes are hashed (for the manifests) and decoded (for format,
size and mask checks), on a thread pool because PIL's decoders release the GIL.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from harness.config import Profile
from harness.data.leakage import perceptual_hash
from harness.data.pngs import HOLE, KNOWN, TOO_LARGE, refuse_too_large
from harness.data.problem import Problem
from harness.data.tree_scan import Kind
from harness.progress import Reporter

T = TypeVar("T")
R = TypeVar("R")
# PNG colour types (PNG spec, IHDR); the contract wants 8-bit type 2 images and type 0 masks.
_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}


def inspect_files(
    files: list[tuple[Path, Kind]], profile: Profile, hint: str, reporter: Reporter
) -> tuple[dict[Path, str], dict[Path, np.ndarray], list[Problem]]:
    """Return the sha256 of every readable file, the perceptual hash of every good image and
    the files' problems, sorted by path."""
    digests: dict[Path, str] = {}
    hashes: dict[Path, np.ndarray] = {}
    problems: list[Problem] = []
    workers = min(32, (os.cpu_count() or 1) + 4)
    with ThreadPoolExecutor(workers) as pool:
        results = _bounded_map(
            pool, lambda item: _inspect(item[0], item[1], profile, hint), files, 4 * workers
        )
        for path, digest, phash, found in reporter.track(results, len(files), "checking files"):
            if digest is not None:
                digests[path] = digest
            if phash is not None:
                hashes[path] = phash
            problems += found
    problems.sort(key=lambda p: str(p.path))
    return digests, hashes, problems


def _bounded_map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], window: int
) -> Iterator[R]:
    """`pool.map`, in order, with at most `window` calls in flight: submitting every file at
    once kept a finished future (about 1 KiB) per file alive until the last one was read."""
    pending: deque[Future[R]] = deque()
    for item in items:
        if len(pending) >= window:
            yield pending.popleft().result()
        pending.append(pool.submit(fn, item))
    while pending:
        yield pending.popleft().result()


def _inspect(
    path: Path, kind: Kind, profile: Profile, hint: str
) -> tuple[Path, str | None, np.ndarray | None, list[Problem]]:
    """Read `path` once, hash it and decode it; return its sha256, the perceptual hash of an
    image (None for masks and bad files) and its problems."""
    digest, pixels, problems = _decode(path, kind, profile, hint)
    phash = None
    if kind == "image" and not problems and pixels is not None:
        phash = perceptual_hash(Image.fromarray(pixels))
    if kind == "mask" and not problems and pixels is not None:
        problems = _mask_problems(path, pixels, profile, hint)
    return path, digest, phash, problems


def _decode(
    path: Path, kind: Kind, profile: Profile, hint: str
) -> tuple[str | None, np.ndarray | None, list[Problem]]:
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, None, [Problem(path, f"cannot read: {error.strerror}", "check permissions")]
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return digest, None, [Problem(path, "empty file (0 bytes)", hint)]
    try:
        with Image.open(io.BytesIO(data)) as image:
            refuse_too_large(image)
            if image.format != "PNG":
                return digest, None, [Problem(path, f"not a PNG: holds {image.format} data", hint)]
            problems = _header_problems(path, kind, data, image.size, profile, hint)
            if problems:
                # A wrong header means rebuilding the file anyway; decoding it could be huge.
                return digest, None, problems
            image.load()
            return digest, np.asarray(image), []
    except TOO_LARGE as error:
        side = profile.image_size
        return (
            digest,
            None,
            [Problem(path, f"too large to decode: {error}; expected {side}x{side}", hint)],
        )
    except Exception as error:  # PIL raises many types on bad bytes: all mean "corrupt"
        reason = f"{type(error).__name__}: {error}"
        return digest, None, [Problem(path, f"corrupt or unreadable image ({reason})", hint)]


def _header_problems(
    path: Path, kind: Kind, data: bytes, size: tuple[int, int], profile: Profile, hint: str
) -> list[Problem]:
    problems = []
    # IHDR sits at a fixed offset after the signature (PNG spec); PIL has parsed it already.
    bit_depth, colour_type = (data[24], data[25]) if len(data) > 25 else (0, -1)
    if (bit_depth, colour_type) != (8, 2 if kind == "image" else 0):
        got = f"{bit_depth}-bit {_COLOUR_TYPES.get(colour_type, f'type {colour_type}')}"
        if kind == "image":
            problems.append(Problem(path, f"expected an 8-bit RGB image, got {got}", hint))
        else:
            channels = "3 channels" if colour_type in (2, 6) else "the wrong format"
            problems.append(
                Problem(
                    path,
                    f"mask has {channels} ({got}): masks are 8-bit single-channel (L), "
                    "255 = hole, 0 = known",
                    "re-import the masks with `inpaint-bench data prepare "
                    "--masks SPLIT=DIR`, which converts them, or " + hint,
                )
            )
    side = profile.image_size
    if size != (side, side):
        problems.append(
            Problem(path, f"wrong size {size[0]}x{size[1]}: expected {side}x{side}", hint)
        )
    return problems


def _mask_problems(path: Path, pixels: np.ndarray, profile: Profile, hint: str) -> list[Problem]:
    if np.count_nonzero((pixels != KNOWN) & (pixels != HOLE)):
        return [
            Problem(path, "mask is not binary: values other than 0 (known) and 255 (hole)", hint)
        ]
    low, high = profile.masks.hole_range
    fraction = float((pixels == HOLE).mean())
    if low < fraction <= high:
        return []
    if low < 1.0 - fraction <= high:
        return [
            Problem(
                path,
                f"mask looks inverted: hole fraction {fraction:.3f}, but "
                f"{1 - fraction:.3f} if inverted; 255 must mean hole",
                "invert it, or re-import the folder with `inpaint-bench data prepare "
                "--masks SPLIT=DIR --mask-polarity hole-black`",
            )
        ]
    return [
        Problem(
            path,
            f"hole fraction {fraction:.3f} is outside the profile's hole_range ({low:g}, {high:g}]",
            hint,
        )
    ]
