"""Build the bundled sample set from the pictures scikit-image ships inside its wheel (no download).

What each kind of set really is (a smoke-test set, not a benchmark):

- `scenes`: random square crops (45–100 % of the short side), resized and sometimes mirrored, of
  six colour photographs: astronaut, chelsea (a cat), coffee, rocket, motorcycle_left/right (a
  stereo pair, so nearly one scene). Train, val and test crops come from the same six photos.
- `faces`: the 100 face crops of `lfw_subset.npy` (LFW, 25×25 grey), recropped to 21–25 px at a
  random offset, upscaled bicubically (so they are blurry) and tinted with one of six skin tones
  to make plausible RGB. Train, val and test use disjoint faces (shared out if over 100).
- `textures`: crops of the grey textures brick, grass, gravel, moon and coins, colourised with a
  random dark-to-light two-colour gradient.

No crop (picture, position, side) is used twice within a kind, so train, val and test never share
an identical image. Only files bundled in the wheel are read (never `skimage.data` fetchers, which
may download), and rocket is the one JPEG. Masks come from `harness.data.masks`.
"""

from __future__ import annotations

import importlib.resources
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from harness.config import Profile
from harness.data.atomic import atomic_dir
from harness.data.layout import MASK_SPLITS, DataLayout, file_name
from harness.data.manifest import write_data_manifest
from harness.data.masks import write_masks
from harness.data.pngs import write_png
from harness.errors import DataError
from harness.progress import Reporter

KINDS = ("scenes", "faces", "textures")
TEST_SUFFIX = "_test"
_SCENES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
)
_TEXTURES = ("brick.png", "grass.png", "gravel.png", "moon.png", "coins.png")
_FACES = "lfw_subset.npy"
_FACE_COUNT = 100  # lfw_subset.npy: the first 100 of its 200 patches are faces (skimage docs)
_SKIN_TONES = (
    (255, 224, 196),
    (241, 194, 125),
    (224, 172, 105),
    (198, 134, 66),
    (141, 85, 36),
    (255, 205, 178),
)
_MAX_REDRAWS = 1000  # a crop already used is redrawn; this many misses means the kind is spent

Crop = tuple[int, ...]  # (picture, x, y, side, flip, …): everything that decides one image


def _bundled(name: str) -> Path:
    path = Path(str(importlib.resources.files("skimage.data").joinpath(name)))
    if not path.is_file():
        raise DataError(
            f"{path}: picture missing from the scikit-image wheel",
            "reinstall it: pip install --force-reinstall scikit-image",
        )
    return path


def _load(name: str, mode: str) -> np.ndarray:
    with Image.open(_bundled(name)) as image:
        return np.asarray(image.convert(mode), dtype=np.uint8).copy()


def _resize(pixels: np.ndarray, crop: Crop, size: int) -> np.ndarray:
    """Cut the square (x, y, side) of `crop` out of `pixels`, resize it to size², maybe mirror."""
    _, x, y, side, flip = crop[:5]
    image = Image.fromarray(pixels).resize(
        (size, size), Image.Resampling.LANCZOS, box=(x, y, x + side, y + side)
    )
    out = np.asarray(image, dtype=np.uint8)
    return np.ascontiguousarray(out[:, ::-1]) if flip else out.copy()


def _gradient(grey: np.ndarray, dark: tuple[int, ...], light: tuple[int, ...]) -> np.ndarray:
    """Map grey 0…255 onto the line from `dark` to `light` in RGB, in integers (exact anywhere)."""
    g = grey.astype(np.int32)[..., None]
    lo, hi = np.array(dark, dtype=np.int32), np.array(light, dtype=np.int32)
    return ((lo * (255 - g) + hi * g + 127) // 255).astype(np.uint8)


class _Painter:
    """Plan unique crops for one kind (train, val, test in order), then render each one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used: set[Crop] = set()

    def plan(self, rng: np.random.Generator, counts: list[int]) -> list[list[Crop]]:
        return [[self._unique(rng, part) for _ in range(n)] for part, n in enumerate(counts)]

    def _unique(self, rng: np.random.Generator, part: int) -> Crop:
        for _ in range(_MAX_REDRAWS):
            crop = self.draw(rng, part)
            if self.identity(crop) not in self.used:
                self.used.add(self.identity(crop))
                return crop
        raise DataError(
            f"{type(self).__name__.strip('_').lower()}: ran out of distinct crops",
            "ask for fewer images of this kind in benchmark.yaml",
        )

    def draw(self, rng: np.random.Generator, part: int) -> Crop:
        raise NotImplementedError

    def identity(self, crop: Crop) -> Crop:
        """Return what makes two crops the same image: the picture and the square cut from it."""
        return crop[:4]

    def render(self, crop: Crop) -> np.ndarray:
        raise NotImplementedError


def _square(rng: np.random.Generator, shape: tuple[int, ...], share: tuple[float, float]) -> Crop:
    """Draw (x, y, side, flip) of a square whose side is `share` of the short side of `shape`."""
    height, width = shape[:2]
    short = min(height, width)
    side = int(rng.integers(max(1, round(share[0] * short)), round(share[1] * short) + 1))
    x = int(rng.integers(0, width - side + 1))
    y = int(rng.integers(0, height - side + 1))
    return x, y, side, int(rng.integers(0, 2))


class _Scenes(_Painter):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.pictures = [_load(name, "RGB") for name in _SCENES]

    def draw(self, rng: np.random.Generator, part: int) -> Crop:
        k = int(rng.integers(0, len(self.pictures)))
        return (k, *_square(rng, self.pictures[k].shape, (0.45, 1.0)))

    def render(self, crop: Crop) -> np.ndarray:
        return _resize(self.pictures[crop[0]], crop, self.size)


class _Textures(_Painter):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.pictures = [_load(name, "L") for name in _TEXTURES]

    def draw(self, rng: np.random.Generator, part: int) -> Crop:
        k = int(rng.integers(0, len(self.pictures)))
        square = _square(rng, self.pictures[k].shape, (0.3, 0.8))
        dark = tuple(int(v) for v in rng.integers(0, 100, 3))
        light = tuple(int(v) for v in rng.integers(150, 256, 3))
        return (k, *square, *dark, *light)

    def render(self, crop: Crop) -> np.ndarray:
        grey = _resize(self.pictures[crop[0]], crop, self.size)
        return _gradient(grey, crop[5:8], crop[8:11])


class _Faces(_Painter):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        faces = np.load(_bundled(_FACES))[:_FACE_COUNT]
        self.faces = np.round(np.clip(faces, 0.0, 1.0) * 255).astype(np.uint8)
        self.pools: list[np.ndarray] = []

    def plan(self, rng: np.random.Generator, counts: list[int]) -> list[list[Crop]]:
        # Disjoint faces per split, so no person seen in training is a test face.
        order = rng.permutation(_FACE_COUNT)
        shares = _shares(counts, _FACE_COUNT)
        starts = np.cumsum([0, *shares])
        self.pools = [order[starts[p] : starts[p + 1]] for p in range(len(counts))]
        return super().plan(rng, counts)

    def draw(self, rng: np.random.Generator, part: int) -> Crop:
        pool = self.pools[part]
        face = int(pool[rng.integers(0, len(pool))])
        side = int(rng.integers(21, 26))
        x, y = (int(v) for v in rng.integers(0, 26 - side, 2))
        return face, x, y, side, int(rng.integers(0, 2)), int(rng.integers(0, len(_SKIN_TONES)))

    def identity(self, crop: Crop) -> Crop:
        # Once faces run out a face recurs, so another tint makes it another image.
        return (*crop[:4], crop[5])

    def render(self, crop: Crop) -> np.ndarray:
        face, x, y, side, flip, tone = crop
        grey = Image.fromarray(self.faces[face]).resize(
            (self.size, self.size), Image.Resampling.BICUBIC, box=(x, y, x + side, y + side)
        )
        light = _SKIN_TONES[tone]
        rgb = _gradient(np.asarray(grey, dtype=np.uint8), tuple(v // 6 for v in light), light)
        return np.ascontiguousarray(rgb[:, ::-1]) if flip else rgb


def _shares(counts: list[int], supply: int) -> list[int]:
    """Split `supply` items over parts in proportion to `counts`, ≥ 1 for each non-empty part."""
    total = sum(counts)
    if total <= supply:
        return list(counts)
    shares = [max(1, n * supply // total) if n else 0 for n in counts]
    while sum(shares) > supply:
        shares[shares.index(max(shares))] -= 1
    return shares


_PAINTERS: dict[str, Callable[[int], _Painter]] = {
    "scenes": _Scenes,
    "faces": _Faces,
    "textures": _Textures,
}


def sample_plan(profile: Profile) -> dict[str, list[tuple[Path, int]]]:
    """Map each kind to its folders (relative to the data root) and image counts, in drawing order.

    Raises DataError if a source or test set of the profile has no bundled kind, or a test set
    has more images than there are test masks to pair with them.
    """
    where = DataLayout(Path())
    plan: dict[str, list[tuple[Path, int]]] = {kind: [] for kind in KINDS}
    for source, (train, val) in profile.sources.items():
        _known(profile, source, source)
        plan[source] += [
            (where.source_dir(source, "train"), train),
            (where.source_dir(source, "val"), val),
        ]
    for test_set, count in profile.test_sets.items():
        kind = test_set.removesuffix(TEST_SUFFIX)
        _known(profile, test_set, kind)
        if count > profile.masks.test:
            raise DataError(
                f"profile {profile.name}: test set {test_set} has {count} images but only"
                f" {profile.masks.test} test masks",
                "test image i pairs with test mask i: raise masks.test in benchmark.yaml",
            )
        plan[kind].append((where.test_dir(test_set), count))
    return plan


def _known(profile: Profile, name: str, kind: str) -> None:
    if kind not in _PAINTERS:
        raise DataError(
            f"profile {profile.name}: {name!r} is not a bundled sample kind"
            f" (known: {', '.join(KINDS)}; test sets end in {TEST_SUFFIX})",
            "build the sample set with --profile sample, or import photos with `data prepare`",
        )


def build_sample_set(
    profile: Profile, seed: int, reporter: Reporter, overwrite: bool = False
) -> Path:
    """Build the sample data tree at `profile.data_root` and return its path.

    Images are RGB image_size² PNGs, masks 8-bit L (255 = hole) spread over the area bins within
    `profile.masks.hole_range`. The same profile and seed give a byte-identical tree. The tree is
    built in a temporary sibling folder and renamed into place, so a crash leaves nothing behind.
    Raises DataError if the root exists and not `overwrite`, or the profile asks for a set this
    builder does not know.
    """
    root = profile.data_root
    if root.exists() and not overwrite:
        raise DataError(f"{root}: already exists", "pass --overwrite to replace it")
    if seed < 0:
        raise DataError(f"seed {seed}: expected an integer ≥ 0", "pass e.g. --seed 0")
    plan = sample_plan(profile)
    started = time.perf_counter()
    with atomic_dir(root, overwrite=overwrite) as tmp:
        for kind, folders in plan.items():
            if folders:
                _paint_kind(tmp, kind, folders, profile.image_size, seed, reporter)
        for number, split in enumerate(MASK_SPLITS):
            # 3·seed + split: distinct per (seed, split) and repeatable with `data masks --seed`.
            count = getattr(profile.masks, split)
            write_masks(
                DataLayout(tmp).mask_dir(split),
                count,
                profile.image_size,
                3 * seed + number,
                profile.masks.hole_range,
                reporter,
            )
        write_data_manifest(tmp)
    images = sum(n for folders in plan.values() for _, n in folders)
    masks = sum(getattr(profile.masks, split) for split in MASK_SPLITS)
    reporter.note(
        f"built {root}: {images} images, {masks} masks in {time.perf_counter() - started:.1f} s"
    )
    return root


def _paint_kind(
    root: Path,
    kind: str,
    folders: list[tuple[Path, int]],
    size: int,
    seed: int,
    reporter: Reporter,
) -> None:
    painter = _PAINTERS[kind](size)
    # One stream per kind, drawn train → val → test, so adding a kind leaves the others alone.
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    plans = painter.plan(rng, [count for _, count in folders])
    for (folder, count), crops in zip(folders, plans, strict=True):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in reporter.track(range(count), count, str(folder)):
            write_png(root / folder / file_name(i), painter.render(crops[i]))
