"""What the report knows about each score column: label, direction, unit and precision.

A copy of the few facts the report needs from images/metrics/metrics.py's `METRICS`: the harness
must not import that module (its LPIPS half needs torch), and tests/test_report.py checks that
the two registries agree on names, `higher_is_better` and units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The metrics image writes this status for an LPIPS column whose backbone weights were absent
# (images/metrics/lpips_scorer.py WEIGHTS_MISSING); its cells are NULL in the ledger.
WEIGHTS_MISSING = "n/a (weights missing)"
NOT_AVAILABLE = "n/a"


@dataclass(frozen=True)
class MetricInfo:
    """How to label and rank one score column."""

    name: str
    higher_is_better: bool | None  # None: unknown direction, so never bolded
    label: str  # plain text, no markup: every renderer escapes it its own way
    unit: str = ""
    decimals: int = 3


REGISTRY: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("psnr", True, "PSNR", "dB", 2),
        MetricInfo("ssim", True, "SSIM", "", 3),
        MetricInfo("ssim_gauss", True, "SSIM (Gaussian)", "", 3),
        MetricInfo("lpips", False, "LPIPS", "", 3),
        MetricInfo("lpips_vgg", False, "LPIPS (VGG)", "", 3),
        # The metrics image gives Hole L1 no unit (it is a plain mean of uint8 differences); the
        # label says so, since "12.3" alone reads like a percentage or a [0, 1] value.
        MetricInfo("l1_hole", False, "Hole L1 (uint8 levels, 0–255)", "", 2),
        MetricInfo("psnr_hole", True, "Hole PSNR", "dB", 2),
        MetricInfo("known_pixel_dev", False, "Known-pixel deviation", "", 2),
    )
}
# Set-level metrics: one value per (model, test set, variant) in the score sidecar, never a
# per-image column (so not in the metrics image's METRICS registry), and no interval.
SET_METRICS: dict[str, MetricInfo] = {"fid": MetricInfo("fid", False, "FID", "", 2)}
SET_LEVEL_NOTE = "no CI: a set-level metric"
# images/metrics/metrics.py floors the MSE of PSNR and Hole PSNR at 1e-10, so an image identical to
# its ground truth (MSE 0, PSNR +inf) scores this cap. A pair that differs in any one value scores
# at most 48.13 + 10·log10(3·H·W) dB (107 dB at 512²), so the cap only ever marks exact matches.
PSNR_MSE_FLOOR = 1e-10
PSNR_CAP_DB = 10.0 * math.log10(255.0**2 / PSNR_MSE_FLOOR)
FLOORED = ("psnr", "psnr_hole")
# Scores reach the report through SQLite and CSV as full doubles; the slack only absorbs the last
# bits of a recomputed log10, far below the 40 dB gap to the nearest real difference.
CAP_TOLERANCE_DB = 1e-6


def is_identical(metric: str, value: float) -> bool:
    """Tell a PSNR-type score that is the floor's cap: the prediction equals the ground truth."""
    return metric in FLOORED and not math.isnan(value) and value >= PSNR_CAP_DB - CAP_TOLERANCE_DB


# Always 0 on the composite variant by construction, so it only appears in the raw tables.
RAW_ONLY = ("known_pixel_dev",)


def metric_info(name: str, higher_is_better: Mapping[str, Any] | None = None) -> MetricInfo:
    """Look up `name`; an unknown column takes its direction from the score
    sidecar's `higher_is_better` map when given (else it is never bolded)."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name in SET_METRICS:
        return SET_METRICS[name]
    direction = (higher_is_better or {}).get(name)
    return MetricInfo(name, None if direction is None else bool(direction), name, "", 3)


def direction_map(names: list[str], sidecar: Mapping[str, Any] | None = None) -> dict[str, bool]:
    """Map every column whose direction is known to its `higher_is_better`."""
    infos = [metric_info(n, sidecar) for n in names]
    return {i.name: i.higher_is_better for i in infos if i.higher_is_better is not None}


def metric_order(names: list[str]) -> list[str]:
    """Order metric names: the registry's order first, then any others alphabetically."""
    known = [m for m in REGISTRY if m in names]
    return known + sorted(set(names) - set(known))


def label_with_unit(info: MetricInfo) -> str:
    return f"{info.label} ({info.unit})" if info.unit else info.label
