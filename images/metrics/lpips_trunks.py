"""The LPIPS trunks of a scoring run: one scorer per trunk shared by its columns (a trunk whose
weights are missing gives its columns None and status n/a), the distance as a pool task, and
torch's thread count around the pool. Apart from the metric assembly (group_scoring.py): the
sidecar (score_outputs.py) needs the trunk names too, and this is where LPIPS's setup lives.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from lpips_scorer import WEIGHTS_MISSING, LPIPSFeatures, LPIPSScorer, WeightsMissing

LPIPS_NETS = {"lpips_vgg": "vgg"}  # the `lpips` column uses the job's lpips.net


def build_lpips_scorers(
    columns: Sequence[str],
    net: str,
    batch_size: int,
    device: str,
    weights_dir: Path | None,
    allow_random_backbone: bool,
) -> tuple[dict[str, LPIPSScorer | None], dict[str, str], dict[str, str]]:
    """One scorer per trunk; a column whose weights are missing gets None and status n/a."""
    built: dict[str, LPIPSScorer | None] = {}
    scorers, status, provenance = {}, {}, {}
    for column in columns:
        trunk = LPIPS_NETS.get(column, net)
        if trunk not in built:
            try:
                built[trunk] = LPIPSScorer(
                    trunk,
                    device,
                    batch_size,
                    weights_dir,
                    allow_random_backbone=allow_random_backbone,
                )
                provenance[trunk] = built[trunk].provenance  # type: ignore[union-attr]
            except WeightsMissing as error:
                built[trunk], provenance[trunk] = None, str(error)
        scorer = built[trunk]
        scorers[column] = scorer
        status[column] = WEIGHTS_MISSING if scorer is None else scorer.weights
        provenance[column] = provenance[trunk]
    return scorers, status, {c: provenance[c] for c in columns}


def lpips_distances(
    column: str, scorer: LPIPSScorer, images: np.ndarray, gt_features: LPIPSFeatures
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """One pool task: the column's distances, and its seconds as `lpips_in_pool`."""
    start = time.perf_counter()
    values = {column: scorer.distance(images, gt_features)}
    return values, {"lpips_in_pool": time.perf_counter() - start}


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op threads set to `count` inside the block, then restored (None: as is)."""
    if count is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
