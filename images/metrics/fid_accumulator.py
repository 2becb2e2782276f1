"""FID as the scoring loop gathers it: Inception features of the ground truth and each variant,
chunk by chunk, and the Fréchet distance per variant at the end (fid.py does the maths). A
module of its own so that fid.py is imported only by a job that asks for fid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lpips_scorer import WEIGHTS_MISSING, WeightsMissing
from metrics import composite

COMPUTED = "computed"


class FidAccumulator:
    """Inception features of the ground truth and each variant, gathered chunk by chunk; the
    Fréchet distance per variant once every image is in. No extractor: status n/a."""

    def __init__(self, variants: Sequence[str], device: str, weights_dir: Path | None) -> None:
        self.variants = list(variants)
        self.features: dict[str, list[np.ndarray]] = {v: [] for v in ["gt", *variants]}
        # Imported here: only a job that asks for fid needs fid.py next to this file.
        from fid import CONVENTION, InceptionFeatures

        self.convention = CONVENTION
        self.extractor: InceptionFeatures | None
        try:
            self.extractor = InceptionFeatures(device, weights_dir=weights_dir)
            self.provenance = self.extractor.provenance
        except WeightsMissing as error:
            self.extractor, self.provenance = None, str(error)
        self.images = 0

    def add(self, gt: np.ndarray, raw: np.ndarray, hole: np.ndarray) -> None:
        self.images += len(gt)
        if self.extractor is None:
            return
        images = {"gt": gt, "raw": raw, "composite": composite(raw, gt, hole)}
        for name, features in self.features.items():
            features.append(self.extractor(images[name]))

    def result(self) -> dict[str, Any]:
        from fid import activation_statistics, frechet_distance

        out: dict[str, Any] = dict.fromkeys(self.variants)
        if self.extractor is None:
            return {**out, "status": WEIGHTS_MISSING, "images": self.images}
        mu_gt, sigma_gt = activation_statistics(np.concatenate(self.features["gt"]))
        for variant in self.variants:
            mu, sigma = activation_statistics(np.concatenate(self.features[variant]))
            out[variant] = frechet_distance(mu, sigma, mu_gt, sigma_gt)
        return {**out, "status": COMPUTED, "images": self.images}
