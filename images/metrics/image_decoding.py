"""Reading a scoring job's PNGs: pairing the three folders by file name, decoding a ground truth
with its mask or a prediction (run as thread-pool tasks, timed per task), and cutting the image
list into chunks. set_scoring.py decodes one chunk ahead of the scoring with these; they sit
apart so the loop there reads as the pipeline it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from inpaint_sdk import BadData, list_pngs, read_hole, read_rgb


def pair_files(gt_dir: Path, pred_dir: Path, mask_dir: Path) -> list[tuple[str, Path, Path, Path]]:
    """(name, gt, prediction, mask) per ground-truth PNG; BadData names the first missing file."""
    gts = list_pngs(gt_dir)
    if not gts:
        raise BadData(f"{gt_dir}: no ground-truth PNG files")
    for folder, what in ((pred_dir, "prediction"), (mask_dir, "mask")):
        if not folder.is_dir():
            raise BadData(f"{folder}: {what} folder not found")
        missing = [g.name for g in gts if not (folder / g.name).is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise BadData(
                f"{folder / missing[0]}: no {what} for ground-truth image {missing[0]}{more}"
            )
    return [(g.name, g, pred_dir / g.name, mask_dir / g.name) for g in gts]


def decode_truth(pair: tuple[str, Path, Path, Path]) -> tuple[np.ndarray, np.ndarray, float]:
    """The ground truth, its hole (bool) and the seconds it took; BadData if the sizes differ."""
    start = time.perf_counter()
    _, gt_path, _, mask_path = pair
    gt, hole = read_rgb(gt_path), read_hole(mask_path)
    if hole.shape != gt.shape[:2]:
        raise BadData(f"{mask_path}: mask is {hole.shape}, ground truth {gt.shape[:2]}")
    return gt, hole, time.perf_counter() - start


def decode_prediction(path: Path) -> tuple[np.ndarray, float]:
    """The prediction as the model wrote it, and the seconds it took."""
    start = time.perf_counter()
    return read_rgb(path), time.perf_counter() - start


def chunked(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Consecutive slices of `size` items (the last may be shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
