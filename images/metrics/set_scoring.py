"""score_sets: several models' predictions of one test set scored in one pass, one CSV and sidecar
per set. The ground truth is decoded and its LPIPS features computed once for all sets; a thread
pool decodes one chunk ahead of the scoring (image_decoding.py) while each chunk's shape groups
are scored (group_scoring.py: every set of a chunk queued before any is collected), and the rows
and sidecars are written at the end (score_outputs.py). On a CPU job lpips is imported and built
in a second thread while the first chunk's PSNR and SSIM already run. score.py is the job's entry
point around this.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fid_accumulator import FidAccumulator
from group_scoring import OnDevice, PendingGroup
from image_decoding import chunked, decode_prediction, decode_truth, pair_files
from inpaint_sdk import CONTRACT_VERSION, BadData, Events, atomic_target
from lpips_scorer import WEIGHTS_MISSING, LPIPSFeatures
from lpips_trunks import build_lpips_scorers, torch_threads
from metrics import METRICS
from score_outputs import ScoreResult, Timer, area_bin, sidecar_metadata, write_csv

VARIANTS = ("composite", "raw")
PROGRESS_EVERY_S = 2.0
# run_start's `command`: the event schema reserves "score" for this image; progress.total counts
# images, as a predict pass does.
EVENT_COMMAND = "score"
# The schema's default: every metric but the optional lpips_vgg.
DEFAULT_METRICS = tuple(m for m in METRICS if m != "lpips_vgg")
# Set-level metrics: asked for in the job's `metrics`, reported in the sidecar only.
SET_METRICS = ("fid",)


@dataclass(frozen=True)
class Queued:
    """One (shape group, set) of a chunk: its rows in the chunk, and its pending metrics."""

    members: list[int]
    fractions: np.ndarray
    set_index: int
    group: PendingGroup
    features: dict[int, LPIPSFeatures]  # the shape group's ground-truth features, per trunk
    raw: np.ndarray


def check_shapes(
    truth: list[tuple[np.ndarray, ...]],
    decoded: list[list[tuple[Any, ...]]],
    paths: list[list[Path]],
) -> None:
    """BadData naming the first prediction whose size is not its ground truth's."""
    for s, images in enumerate(decoded):
        for j, (raw, _) in enumerate(images):
            if raw.shape != truth[j][0].shape:
                gt_shape = truth[j][0].shape[:2]
                raise BadData(
                    f"{paths[s][j]}: prediction is {raw.shape[:2]}, ground truth {gt_shape}"
                )


@dataclass(frozen=True)
class PredictionSet:
    """One model's predictions (a folder of PNGs named as the ground truth) and its CSV."""

    predictions: Path
    output: Path


def score_pairs(
    ground_truth: Path,
    predictions: Path,
    masks: Path,
    output: Path,
    **options: Any,
) -> ScoreResult:
    """Score every ground-truth image; write `output` (CSV) and its `.meta.json` sidecar."""
    return score_sets(ground_truth, masks, [PredictionSet(predictions, output)], **options)[0]


def score_sets(
    ground_truth: Path,
    masks: Path,
    sets: Sequence[PredictionSet],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    variants: Sequence[str] = VARIANTS,
    lpips_net: str = "alex",
    lpips_batch_size: int = 32,
    device: str = "auto",
    weights_dir: Path | None = None,
    allow_random_backbone: bool = False,
    job_id: str = "score",
    events: Events | None = None,
    workers: int | None = None,
    device_metrics: bool | None = None,
) -> list[ScoreResult]:
    """Score several models' predictions of one test set: one CSV and sidecar per set.

    The ground truth and masks are decoded once, and the ground truth's LPIPS features computed
    once, for all sets (with five models that halves the LPIPS trunk's work). `device_metrics`:
    PSNR and SSIM in torch on the scoring device (device_metrics.py, the same values); None
    means where LPIPS runs on CUDA, True forces it (on the CPU too: tests).
    """
    started = time.perf_counter()
    timer = Timer()
    emit: Callable[..., None] = events.emit if events else lambda *a, **k: None
    unknown = [m for m in metrics if m not in METRICS and m not in SET_METRICS]
    if unknown or not set(variants) <= set(VARIANTS):
        raise ValueError(f"unknown metrics {unknown} or variants {list(variants)}")
    if not sets:
        raise ValueError("no prediction sets to score")
    per_set = [pair_files(Path(ground_truth), Path(s.predictions), Path(masks)) for s in sets]
    pairs = per_set[0]
    ordered = [m for m in METRICS if m in metrics]
    numpy_names = [m for m in ordered if not METRICS[m].needs_weights]
    lpips_columns = [m for m in ordered if METRICS[m].needs_weights]
    workers = workers or len(os.sched_getaffinity(0))
    chunk_size = max(lpips_batch_size, 2 * workers)
    chunks = list(chunked(range(len(pairs)), chunk_size))
    pool = ThreadPoolExecutor(max_workers=workers)

    def submit(chunk: Sequence[int]) -> tuple[list[Future[Any]], list[list[Future[Any]]]]:
        truth = [pool.submit(decode_truth, pairs[i]) for i in chunk]
        preds = [[pool.submit(decode_prediction, p[i][2]) for i in chunk] for p in per_set]
        return truth, preds

    # On a CPU-only job the numpy metrics of the first chunk need no torch: they run while this
    # thread imports lpips (with torchvision and torch._dynamo: ≈ 1.5–2 s) and builds the trunk.
    early = device == "cpu" and not device_metrics and "fid" not in metrics

    def open_chunk(step: int, pool_names: Sequence[str]) -> list[Queued]:
        """Wait for chunk `step`'s images, queue the next chunk's, and start its metrics."""
        nonlocal pending
        start = time.perf_counter()
        truth = [f.result() for f in pending[0]]
        decoded = [[f.result() for f in futures] for futures in pending[1]]
        timer.add("decode_wait", time.perf_counter() - start)
        if step < len(chunks):  # decode the next chunk while this one is scored
            pending = submit(chunks[step])
        for seconds in [t[-1] for t in truth] + [d[-1] for s in decoded for d in s]:
            timer.add("decode", seconds)
        chunk = chunks[step - 1]
        check_shapes(truth, decoded, [[p[i][2] for i in chunk] for p in per_set])
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for j, (gt, *_rest) in enumerate(truth):
            by_shape.setdefault(gt.shape, []).append(j)
        queued = []
        for members in by_shape.values():
            gt = np.stack([truth[j][0] for j in members])
            hole = np.stack([truth[j][1] for j in members])
            fractions = hole.mean(axis=(1, 2), dtype=np.float64)
            features: dict[int, LPIPSFeatures] = {}  # per trunk, shared by every set
            for s in range(len(sets)):
                raw = np.stack([decoded[s][j][0] for j in members])
                group = PendingGroup.start(
                    gt, raw, hole, variants, ordered, pool_names, pool, workers, timer
                )
                queued.append(Queued(members, fractions, s, group, features, raw))
        return queued

    try:
        pending = submit(chunks[0])
        setup = time.perf_counter()
        first: list[Queued] | None = None
        if early:
            with ThreadPoolExecutor(max_workers=1) as builder:
                building = builder.submit(
                    build_lpips_scorers, lpips_columns, lpips_net, lpips_batch_size, device,
                    weights_dir, allow_random_backbone,
                )  # fmt: skip
                first = open_chunk(1, numpy_names)
                scorers, status, provenance = building.result()
        else:
            scorers, status, provenance = build_lpips_scorers(
                lpips_columns, lpips_net, lpips_batch_size, device, weights_dir,
                allow_random_backbone,
            )  # fmt: skip
        timer.add("setup_lpips", time.perf_counter() - setup)
        fids = (
            [FidAccumulator(variants, device, weights_dir) for _ in sets]
            if "fid" in metrics
            else []
        )
        live = [s for s in scorers.values() if s is not None]
        used_device = live[0].device.type if live else "cpu"
        if device_metrics is None:  # on a GPU, SSIM on the CPU would leave the trunk idle
            device_metrics = used_device == "cuda"
        on_device = OnDevice.build(live, device) if device_metrics else None
    except BaseException:
        pool.shutdown(cancel_futures=True)
        raise
    on_names = [m for m in numpy_names if on_device and m in on_device.names]
    pool_names = [m for m in numpy_names if m not in on_names]
    for column in lpips_columns:
        if status[column] != "pretrained":
            emit("warning", message=f"{column}: {status[column]}: {provenance[column]}")
    config = {
        "step": "score",
        "ground_truth": str(ground_truth),
        "predictions": [str(s.predictions) for s in sets],
        "masks": str(masks),
        "output": [str(s.output) for s in sets],
        "metrics": ordered,
        "variants": list(variants),
        "lpips": {"net": lpips_net, "batch_size": lpips_batch_size, "weights": status},
        "psnr_ssim_on": str(on_device.device) if on_device else "cpu (numpy)",
        "workers": workers,
    }
    emit(
        "run_start",
        contract_version=CONTRACT_VERSION,
        command=EVENT_COMMAND,
        job_id=job_id,
        device=used_device,
        config=config,
        resumed_from_step=0,
    )
    rows: list[list[dict[str, Any]]] = [[] for _ in sets]
    raw_equal = [0 for _ in sets]
    last_progress = time.monotonic()
    # Not with FID: its Inception network runs in this thread and needs torch's threads.
    in_pool = workers > 1 and not fids and any(s.device.type == "cpu" for s in live)
    with pool, torch_threads(1 if in_pool else None):
        for step, chunk in enumerate(chunks, start=1):
            # Every set of every shape group is queued before any is collected: the pool drains
            # once per chunk (the next chunk's decoding ahead of it), not once per set.
            queued = first if step == 1 and first is not None else open_chunk(step, pool_names)
            for q in queued:
                q.group.add_torch(scorers, pool, workers, q.features, on_device, on_names, in_pool)
                if fids:
                    start = time.perf_counter()
                    fids[q.set_index].add(q.group.gt, q.raw, q.group.hole)
                    timer.add("fid_features", time.perf_counter() - start)
            chunk_rows: list[list[dict[str, Any]]] = [[{} for _ in chunk] for _ in sets]
            for q in queued:
                scores, same = q.group.result()
                raw_equal[q.set_index] += same
                for k, j in enumerate(q.members):
                    frac = float(q.fractions[k])
                    for variant in variants:
                        row = {
                            "image": pairs[chunk[j]][0],
                            "variant": variant,
                            "hole_fraction": frac,
                            "bin": area_bin(frac),
                        }
                        row.update({m: float(scores[variant][m][k]) for m in ordered})
                        row.update({f"{c}_weights": status[c] for c in lpips_columns})
                        chunk_rows[q.set_index][j][variant] = row
            for s in range(len(sets)):
                rows[s].extend(r[v] for r in chunk_rows[s] for v in variants)
            done = sum(len(c) for c in chunks[:step])
            if time.monotonic() - last_progress >= PROGRESS_EVERY_S or step == len(chunks):
                emit("progress", step=step, images_seen=done, total=len(pairs))
                last_progress = time.monotonic()
    columns = ["image", "variant", "hole_fraction", "bin", *ordered]
    columns += [f"{c}_weights" for c in lpips_columns]
    results = []
    for s, prediction_set in enumerate(sets):
        start = time.perf_counter()
        write_csv(Path(prediction_set.output), columns, rows[s])
        timer.add("write_csv", time.perf_counter() - start)
        results.append(ScoreResult(rows[s], columns, {}))
    timer.add("total", time.perf_counter() - started)
    for s, prediction_set in enumerate(sets):
        set_config = {**config, "predictions": str(prediction_set.predictions)}
        set_config["output"] = str(prediction_set.output)
        metadata = sidecar_metadata(
            set_config, pairs, rows[s], raw_equal[s], status, provenance, scorers, timer
        )
        metadata["lpips"]["device"] = used_device
        metadata["psnr_ssim_on"] = config["psnr_ssim_on"]
        metadata["sets_in_job"] = len(sets)
        if fids:
            start = time.perf_counter()
            metadata["fid"] = fids[s].result()
            metadata["higher_is_better"]["fid"] = False
            metadata["conventions"]["fid"] = fids[s].convention
            metadata["fid_provenance"] = fids[s].provenance
            metadata["timings_s"]["fid"] = round(time.perf_counter() - start, 4)
            if fids[s].extractor is None:
                emit("warning", message=f"fid: {WEIGHTS_MISSING}: {fids[s].provenance}")
        sidecar = Path(prediction_set.output).with_suffix(".meta.json")
        with atomic_target(sidecar) as tmp:
            tmp.write_text(json.dumps(metadata, indent=2, allow_nan=False) + "\n")
        results[s].metadata.update(metadata)
    emit(
        "run_stop",
        status="completed",
        reason="done",
        step=len(chunks),
        images_seen=len(pairs),
        message=None,
    )
    return results
