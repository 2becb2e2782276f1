"""Qualitative figures: PNG grids of inputs, predictions and ground truth, composed with PIL.

Sample grids (one per test set, like the seed report's figures 7-12): rows are sample images,
columns are the masked input, every model grouped by training source, and the ground truth.
Predictions are shown composited (the model's pixels in the hole, the ground truth elsewhere),
as the main tables score them. The samples are drawn once with the run's seed and stored in
RUN_DIR/report_samples.json, so later reports show the same images even if the data grows.
"""

from __future__ import annotations

import functools
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from harness.data.atomic import atomic_write_text

SAMPLES_FILE = "report_samples.json"
SAMPLE_COUNT = 4
MAX_TILE = 256  # px; larger images are shrunk so a grid stays readable
MIN_TILE = 112  # px; smaller ones are enlarged (pixel-exact) so labels fit above them
GAP, LEFT, LINE = 4, 120, 16
BACKGROUND, INK, FAINT = (255, 255, 255), (20, 20, 20), (120, 120, 120)


def choose_samples(
    run_dir: Path, candidates: dict[str, list[str]], seed: int, count: int = SAMPLE_COUNT
) -> dict[str, list[str]]:
    """Pick sample image names per test set: those stored in RUN_DIR/report_samples.json when they
    still exist, else `count` drawn with `seed` (and stored, so the next report reuses them)."""
    path = Path(run_dir) / SAMPLES_FILE
    stored = json.loads(path.read_text()) if path.is_file() else {}
    chosen: dict[str, list[str]] = dict(stored.get("test_sets", {}))
    changed = False
    for test_set, names in candidates.items():
        kept = chosen.get(test_set)
        if kept and set(kept) <= set(names):
            continue
        # Seeded per test set by name, so adding a test set leaves the others' samples alone.
        rng = np.random.default_rng([seed, zlib.crc32(test_set.encode())])
        pool = sorted(names)
        picked = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
        chosen[test_set] = [pool[i] for i in sorted(picked)]
        changed = True
    if changed:
        doc = {"seed": seed, "count": count, "test_sets": chosen}
        atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return {t: chosen[t] for t in candidates}


@dataclass(frozen=True)
class Pictures:
    """Where a run's pictures are: its inputs and predictions, and the data tree's truth."""

    run_dir: Path
    data_root: Path | None

    def masked(self, test_set: str, name: str) -> np.ndarray | None:
        return _load(self.run_dir / "inputs" / test_set / name)

    def truth(self, test_set: str, name: str) -> np.ndarray | None:
        return _load(self.data_root / "test" / test_set / name) if self.data_root else None

    def hole(self, name: str) -> np.ndarray | None:
        mask = _load(self.data_root / "masks" / "test" / name, "L") if self.data_root else None
        return mask == 255 if mask is not None else None  # contract: 255 = hole

    def prediction(self, source: str, model: str, test_set: str, name: str) -> np.ndarray | None:
        """Load the model's output composited onto the ground truth (raw if the truth is
        missing)."""
        raw = _load(self.run_dir / "predictions" / source / model / test_set / name)
        truth, hole = self.truth(test_set, name), self.hole(name)
        if raw is None or truth is None or hole is None or raw.shape != truth.shape:
            return raw
        return np.where(hole[..., None], raw, truth)


def _load(path: Path, mode: str = "RGB") -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=4)
def _font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _fit(text: str, width: int, draw: ImageDraw.ImageDraw) -> str:
    """Shorten `text` with an ellipsis until it fits `width` pixels."""
    while text and draw.textlength(text, font=_font()) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def compose(
    title: str,
    groups: list[tuple[str, list[str]]],
    rows: list[tuple[list[str], list[np.ndarray | None]]],
) -> Image.Image:
    """Compose a labelled grid: `groups` are (group label, column labels) left to right; each row
    has label lines and one picture per column (None draws a grey 'missing' tile)."""
    pictures = [p for _, line in rows for p in line if p is not None]
    side = max(MIN_TILE, min(MAX_TILE, max((max(p.shape[:2]) for p in pictures), default=0)))
    n_cols = sum(len(cols) for _, cols in groups)
    top = 3 * LINE + GAP
    width = LEFT + n_cols * (side + GAP)
    height = top + len(rows) * (side + GAP)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, 0), title, fill=INK, font=_font(14))
    x = LEFT
    for group, cols in groups:
        span = len(cols) * (side + GAP) - GAP
        if group:
            draw.text((x, LINE), _fit(group, span, draw), fill=FAINT, font=_font())
            draw.line((x, 2 * LINE - 1, x + span, 2 * LINE - 1), fill=FAINT)
        for i, label in enumerate(cols):
            draw.text(
                (x + i * (side + GAP), 2 * LINE), _fit(label, side, draw), fill=INK, font=_font()
            )
        x += len(cols) * (side + GAP)
    for r, (labels, line) in enumerate(rows):
        y = top + r * (side + GAP)
        for i, label in enumerate(labels):
            draw.text(
                (GAP, y + i * LINE), _fit(label, LEFT - 2 * GAP, draw), fill=INK, font=_font()
            )
        for c, picture in enumerate(line):
            box = (LEFT + c * (side + GAP), y)
            if picture is None:
                draw.rectangle((*box, box[0] + side - 1, box[1] + side - 1), fill=(200, 200, 200))
                draw.text((box[0] + GAP, box[1] + side // 2), "missing", fill=INK, font=_font())
                continue
            tile = Image.fromarray(picture)
            if tile.size != (side, side):
                # Enlarge by pixel replication (no invented detail); shrink with a proper filter.
                grow = max(tile.size) < side
                how = Image.Resampling.NEAREST if grow else Image.Resampling.LANCZOS
                tile = tile.resize((side, side), how)
            canvas.paste(tile, box)
    return canvas


def sample_grid(
    pictures: Pictures,
    test_set: str,
    names: list[str],
    columns: list[tuple[str, str]],
    hole_fractions: dict[str, float],
) -> Image.Image:
    """Draw one test set's grid: masked input | each (source, model) | ground truth, a row per
    sample."""
    groups: list[tuple[str, list[str]]] = [("", ["masked input"])]
    for source in dict.fromkeys(s for s, _ in columns):
        groups.append((f"trained on {source}", [m for s, m in columns if s == source]))
    groups.append(("", ["ground truth"]))
    rows = []
    for name in names:
        line = [pictures.masked(test_set, name)]
        line += [pictures.prediction(s, m, test_set, name) for s, m in columns]
        line.append(pictures.truth(test_set, name))
        fraction = hole_fractions.get(name)
        labels = [Path(name).stem] + ([f"hole {fraction:.0%}"] if fraction is not None else [])
        rows.append((labels, line))
    return compose(f"{test_set}: composited predictions", groups, rows)


def worst_grid(
    pictures: Pictures, source: str, model: str, picks: list[dict[str, object]]
) -> Image.Image:
    """Draw one model's worst cases: masked input | its prediction | ground truth, a row per pick
    (a worst_table row: test_set, image, metric, value)."""
    rows = []
    for pick in picks:
        test_set, name = str(pick["test_set"]), str(pick["image"])
        line = [
            pictures.masked(test_set, name),
            pictures.prediction(source, model, test_set, name),
            pictures.truth(test_set, name),
        ]
        score = f"{str(pick['metric']).upper()} {float(pick['value']):.3f}"  # type: ignore[arg-type]
        rows.append(([test_set, Path(name).stem, score], line))
    groups = [("", ["masked input", model, "ground truth"])]
    return compose(f"{model} (trained on {source}): worst cases", groups, rows)
