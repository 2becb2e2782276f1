"""What `inpaint-bench data prepare` tells the user: the mask statistics per split and the
lines shown even with --quiet."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.data.mask_levels import SPECKLE_FRACTION


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
