"""Every metric of one batch of same-sized images, for each variant (composite, raw): the numpy
metrics as thread-pool tasks, LPIPS in the pool (CPU) or on the GPU, PSNR and SSIM in torch on
the scoring device (device_metrics.py) where asked, and raw scores copied from composite where
the two images are equal. set_scoring.py submits every (shape group, set) of a chunk with
submit_group, then collects them: the pool is drained once per chunk, not once per set.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from lpips_scorer import LPIPSFeatures, LPIPSScorer
from lpips_trunks import lpips_distances
from metrics import METRICS, composite
from score_outputs import Timer


def _numpy_metrics(
    names: Sequence[str], image: np.ndarray, gt: np.ndarray, hole: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    scores, seconds = {}, {}
    for name in names:
        start = time.perf_counter()
        fn = METRICS[name].fn
        assert fn is not None
        scores[name] = fn(image, gt, hole)
        seconds[name] = time.perf_counter() - start
    return scores, seconds


# Images per pool task. Small tasks keep both workers busy to the end of a chunk (a 16-image
# LPIPS task is ≈ 0.25 s of one core that the other would wait out); the trunk costs the same per
# image at batch 8 as at 16 on one thread.
TASK_IMAGES = 8


def _split(indices: np.ndarray, parts: int) -> list[np.ndarray]:
    """At least `parts` parts (fewer only with fewer indices), none over TASK_IMAGES."""
    parts = max(parts, -(-len(indices) // TASK_IMAGES))
    return [p for p in np.array_split(indices, max(1, min(parts, len(indices)))) if len(p)]


def _rows(part: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive indices as a slice (a view, no gathered copy), else the indices."""
    if len(part) and part[-1] - part[0] == len(part) - 1:
        return slice(int(part[0]), int(part[-1]) + 1)
    return part


@dataclass
class PendingGroup:
    """One (shape group, set) of a chunk whose metrics are queued; `result()` waits for them.

    `start` queues the numpy metrics (they need no torch: on the CPU they can run while lpips is
    still being imported), `add_torch` the LPIPS distances (and PSNR/SSIM on a device).
    """

    gt: np.ndarray
    hole: np.ndarray
    images: dict[str, np.ndarray]
    todo: dict[str, np.ndarray]
    same: np.ndarray
    scores: dict[str, dict[str, np.ndarray]]
    futures: list[tuple[str, np.ndarray, Future[Any]]]
    timer: Timer

    @classmethod
    def start(
        cls,
        gt: np.ndarray,
        raw: np.ndarray,
        hole: np.ndarray,
        variants: Sequence[str],
        names: Sequence[str],
        pool_names: Sequence[str],
        pool: ThreadPoolExecutor,
        workers: int,
        timer: Timer,
    ) -> PendingGroup:
        """The composite, and `pool_names` (numpy metrics) queued; `names`: every column."""
        start = time.perf_counter()
        comp = composite(raw, gt, hole)
        same = np.all(raw == comp, axis=(1, 2, 3))
        timer.add("composite", time.perf_counter() - start)
        images = {"composite": comp, "raw": raw}
        everything = np.arange(len(gt))
        # Raw scores equal composite scores where the images are equal: compute only the others.
        todo = {
            v: everything if v == "composite" or "composite" not in variants else everything[~same]
            for v in variants
        }
        futures: list[tuple[str, np.ndarray, Future[Any]]] = []
        for variant in variants:
            for part in _split(todo[variant], workers) if pool_names else []:
                args = (pool_names, images[variant][part], gt[part], hole[part])
                futures.append((variant, part, pool.submit(_numpy_metrics, *args)))
        scores = {v: {m: np.full(len(gt), np.nan) for m in names} for v in variants}
        return cls(gt, hole, images, todo, same, scores, futures, timer)

    def add_torch(
        self,
        scorers: dict[str, LPIPSScorer | None],
        pool: ThreadPoolExecutor,
        workers: int,
        features: dict[int, LPIPSFeatures],
        on_device: OnDevice | None,
        device_names: Sequence[str],
        lpips_in_pool: bool,
    ) -> None:
        """Queue (CPU) or compute (GPU) the LPIPS columns, and `device_names` on `on_device`.

        `features` caches the ground truth's LPIPS features per trunk, for the other sets.
        `lpips_in_pool`: CPU LPIPS as pool tasks (torch set to one thread by the caller).
        """
        gt, images, todo, scores = self.gt, self.images, self.todo, self.scores
        # LPIPS on the CPU runs in the pool, single-threaded per task (score_sets sets torch to
        # one thread): no OpenMP barriers, which stall whenever another process takes a core,
        # and the trunk overlaps the numpy metrics (GIL released in both).
        in_pool = {
            c: s for c, s in scorers.items() if lpips_in_pool and s and s.device.type == "cpu"
        }
        everything = np.arange(len(gt))
        pending_features = {
            id(s): [pool.submit(s.features, gt[_rows(p)]) for p in _split(everything, workers)]
            for s in in_pool.values()
            if id(s) not in features
        }
        start = time.perf_counter()
        for key, parts in pending_features.items():
            features[key] = LPIPSFeatures.cat([f.result() for f in parts])
        for column, scorer in in_pool.items():
            for variant in todo:
                for part in _split(todo[variant], workers):
                    rows = _rows(part)
                    args = (column, scorer, images[variant][rows], features[id(scorer)][rows])
                    self.futures.append((variant, part, pool.submit(lpips_distances, *args)))
        cpu_outside = [
            c for c, s in scorers.items() if s and s.device.type == "cpu" and c not in in_pool
        ]
        if cpu_outside:  # one worker: torch's threads would fight the pool's (OpenMP spins)
            for future in [f for *_, f in self.futures]:
                future.result()  # (collected, with the others, by result())
        for column, scorer in scorers.items():  # on a GPU, while the pool does the numpy metrics
            if scorer is None or column in in_pool:
                continue
            if id(scorer) not in features:
                features[id(scorer)] = scorer.features(gt)
            for variant, part in todo.items():
                if len(part) == len(gt):  # every image: no gathered copy of the features
                    scores[variant][column] = scorer.distance(images[variant], features[id(scorer)])
                elif len(part):
                    gt_features = features[id(scorer)][part]
                    scores[variant][column][part] = scorer.distance(
                        images[variant][part], gt_features
                    )
        self.timer.add("lpips", time.perf_counter() - start)
        if on_device and device_names:
            start = time.perf_counter()  # queued behind LPIPS on the GPU; the pool keeps decoding
            for variant, part in todo.items():
                if len(part):
                    values = on_device.scores(device_names, images[variant][part], gt[part])
                    for name, value in values.items():
                        scores[variant][name][part] = value
            self.timer.add("device_metrics", time.perf_counter() - start)

    def result(self) -> tuple[dict[str, dict[str, np.ndarray]], int]:
        """Scores[variant][metric] and how many raw images equal their composite."""
        for variant, part, future in self.futures:
            values, seconds = future.result()
            for name, value in values.items():
                self.scores[variant][name][part] = value
            for name, sec in seconds.items():
                self.timer.add(name, sec)
        self.futures.clear()
        if "raw" in self.scores and "composite" in self.scores:
            for name in self.scores["raw"]:
                self.scores["raw"][name][self.same] = self.scores["composite"][name][self.same]
        return self.scores, int(self.same.sum())


@dataclass(frozen=True)
class OnDevice:
    """PSNR and SSIM in torch on the scoring device (device_metrics.py), instead of the pool."""

    device: Any  # torch.device

    @classmethod
    def build(cls, scorers: Sequence[LPIPSScorer], device: str) -> OnDevice:
        """On the LPIPS scorers' device; without one, `device` ("auto": CUDA if present)."""
        if scorers:
            return cls(scorers[0].device)
        import torch

        auto = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(torch.device(auto if device == "auto" else device))

    @property
    def names(self) -> tuple[str, ...]:
        return ("psnr", "ssim", "ssim_gauss")

    def scores(self, names: Sequence[str], pred: np.ndarray, gt: np.ndarray) -> dict[str, Any]:
        from device_metrics import device_scores  # imports torch: only where a scorer did

        return device_scores(names, pred, gt, self.device)
