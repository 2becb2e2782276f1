"""Independent references for the report's statistics tests: plain-Python versions of Holm's
correction and of the documented two-way bootstrap, written without the report's code."""

from __future__ import annotations

import math

import numpy as np


def hand_holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment, one comparison at a time (Holm 1979)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def reference_two_way(matrix: np.ndarray, seed: int) -> tuple[float, float]:
    """The documented two-way bootstrap, one resample at a time in plain Python."""
    seeds, images = matrix.shape
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, images, size=(1000, images)).tolist()
    chosen = rng.integers(0, seeds, size=(1000, seeds)).tolist()
    means = []
    for pick, drawn in zip(picks, chosen, strict=True):
        per_seed = []
        for s in drawn:
            scored = [matrix[s][j] for j in pick if not math.isnan(matrix[s][j])]
            per_seed.append(sum(scored) / len(scored))
        means.append(sum(per_seed) / len(per_seed))
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
