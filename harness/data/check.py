"""Check a data tree against its profile and the layout of `harness.data.layout`.

Every file is read once: the same bytes are hashed (for the manifests) and decoded (for format,
size and mask checks), on a thread pool because PIL's decoders release the GIL.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from PIL import Image

from harness.config import Profile
from harness.data.layout import MANIFEST, MASK_SPLITS, SOURCE_SPLITS, DataLayout, file_name
from harness.data.leakage import exact_duplicates, near_duplicates, perceptual_hash, role_of
from harness.data.pngs import HOLE, KNOWN, TOO_LARGE, refuse_too_large
from harness.progress import Reporter

Kind = Literal["image", "mask"]
T = TypeVar("T")
R = TypeVar("R")
_INDEX_NAME = re.compile(r"^\d{6}\.png$")
# PNG colour types (PNG spec, IHDR); the contract wants 8-bit type 2 images and type 0 masks.
_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}
_SHOWN_NAMES = 5


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a data tree: where (None = the tree as a whole), what, what to do."""

    path: Path | None
    message: str
    hint: str


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
    scan = _Scan(profile, hint)
    scan.walk(layout.root)
    problems = scan.problems + scan.missing_folders()
    problems += scan.count_problems()
    digests, hashes, file_problems = _inspect_all(scan.files, profile, hint, reporter)
    problems += file_problems
    problems += _leak_problems(layout.root, digests)
    near = _near_copies(layout.root, hashes, digests)
    if warnings is not None:
        warnings += near
    for problem in near if warnings is None else []:
        reporter.note(f"warning: {problem.path}: {problem.message}")
    problems += _pairing_problems(layout, profile, scan.found)
    problems += _manifest_problems(layout, profile, scan, digests, hint)
    return problems


class _Scan:
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
                        f"missing {_names(missing)}",
                        self.hint,
                    )
                )
        return problems


def _names(names: list[str]) -> str:
    more = len(names) - _SHOWN_NAMES
    return ", ".join(names[:_SHOWN_NAMES]) + (f" and {more} more" if more > 0 else "")


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


def _inspect_all(
    files: list[tuple[Path, Kind]], profile: Profile, hint: str, reporter: Reporter
) -> tuple[dict[Path, str], dict[Path, np.ndarray], list[Problem]]:
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
                f"only in {folder.name}: {_names(only_here)}" if only_here else "",
                f"only in masks/test: {_names(only_masks)}" if only_masks else "",
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


def _manifest_problems(
    layout: DataLayout, profile: Profile, scan: _Scan, digests: dict[Path, str], hint: str
) -> list[Problem]:
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
            continue  # unreadable: already reported by _inspect
        if name not in present:
            problems.append(Problem(base / name, f"listed in {manifest} but missing", fix))
        elif name not in listed:
            problems.append(Problem(base / name, f"not listed in {manifest}", fix))
        elif listed[name] != actual[name]:
            problems.append(Problem(base / name, f"modified: sha256 differs from {manifest}", fix))
    return problems
