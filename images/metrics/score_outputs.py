"""What a scoring run writes: the rows' area bins, the CSV (atomic, NaN as an empty cell), the
sidecar's metadata (conventions, LPIPS provenance, versions, stage timings) and the per-stage
timer that fills it. The scoring loop (set_scoring.py) only hands its results over.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from inpaint_sdk import CONTRACT_VERSION, atomic_target
from lpips_scorer import RANDOM_BACKBONE, LPIPSScorer
from lpips_trunks import LPIPS_NETS
from metrics import METRICS, PSNR_CAP_DB, PSNR_MSE_FLOOR

# A copy of harness/data/layout.py AREA_BINS (this image never imports the harness; a test checks
# they agree): the NVIDIA irregular-mask bins, open below, closed above.
AREA_BINS: tuple[tuple[float, float], ...] = (
    (0.01, 0.1),
    (0.1, 0.2),
    (0.2, 0.3),
    (0.3, 0.4),
    (0.4, 0.5),
    (0.5, 0.6),
)


def area_bin(hole_fraction: float) -> str | None:
    """`0.1` → `"(0.01,0.1]"`, `0.1000001` → `"(0.1,0.2]"`; None outside (0.01, 0.6]."""
    for low, high in AREA_BINS:
        if low < hole_fraction <= high:
            return f"({low:g},{high:g}]"
    return None


@dataclass
class ScoreResult:
    rows: list[dict[str, Any]]
    columns: list[str]
    metadata: dict[str, Any]


@dataclass
class Timer:
    """Seconds per stage; thread pools add their workers' seconds (thread-seconds)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else value


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write rows through a temporary sibling and an atomic rename; NaN/None as empty cells."""
    with atomic_target(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in columns])


def sidecar_metadata(
    config: dict[str, Any],
    pairs: Sequence[Any],
    rows: Sequence[Any],
    raw_equal: int,
    status: dict[str, str],
    provenance: dict[str, str],
    scorers: dict[str, LPIPSScorer | None],
    timer: Timer,
) -> dict[str, Any]:
    conventions = {m: METRICS[m].convention for m in config["metrics"]}
    for column, scorer in scorers.items():
        trunk = LPIPS_NETS.get(column, config["lpips"]["net"])
        conventions[column] = f"LPIPS v0.1, {'alexnet' if trunk == 'alex' else 'vgg16'} trunk"
        conventions[column] += ", inputs in [-1,1], spatial mean"
        if scorer is not None and scorer.weights == RANDOM_BACKBONE:
            conventions[column] += f" ({RANDOM_BACKBONE}: NOT a real LPIPS)"
    versions = {"numpy": np.__version__, "python": sys.version.split()[0]}
    if any(scorers.values()):
        import lpips
        import torch

        versions |= {"torch": torch.__version__, "lpips": getattr(lpips, "__version__", "?")}
    return {
        "contract_version": CONTRACT_VERSION,
        "n_pairs": len(pairs),
        "n_rows": len(rows),
        "raw_equal_composite": raw_equal,
        "variants": config["variants"],
        "metrics": config["metrics"],
        "conventions": conventions,
        "higher_is_better": {m: METRICS[m].higher_is_better for m in config["metrics"]},
        "units": {m: METRICS[m].unit for m in config["metrics"]},
        "psnr_cap_db": PSNR_CAP_DB,
        "psnr_mse_floor": PSNR_MSE_FLOOR,
        "area_bins": [area_bin(high) for _, high in AREA_BINS],
        "lpips_weights": status,
        "lpips_provenance": provenance,
        "lpips": dict(config["lpips"]),
        "inputs": {k: config[k] for k in ("ground_truth", "predictions", "masks")},
        "workers": config["workers"],
        "timings_s": {k: round(v, 4) for k, v in timer.seconds.items()},
        "timings_note": "decode, numpy metrics and lpips_in_pool: thread-seconds summed over "
        "workers; decode_wait, lpips (features + distances, or on the CPU waiting for the gt "
        "features), write_csv, total: wall seconds",
        "versions": versions,
    }
