"""Score a model's predictions against the ground truth: one CSV row per (image, variant).

    python score.py JOB.json                       # here, with PYTHONPATH=contracts/sdk
    python /inpaint/app/score.py /inpaint/job.json # in the metrics image (the ENTRYPOINT)

The job (score_job.schema.json) names three folders whose PNGs pair by file name: ground truth,
predictions and masks (255 = hole); or, with `sets`, several models' prediction folders of the
same ground truth, each with its own CSV, scored in one pass (the ground truth is decoded and
its LPIPS features computed once). Each file is decoded once, by a thread pool over all CPUs,
one chunk ahead of the scoring. On the CPU the same pool runs the LPIPS trunk (one torch thread
per task) beside the numpy metrics; on a GPU, LPIPS, PSNR and SSIM run there (device_metrics.py)
while the pool decodes.
Every metric is computed on two variants of each prediction: `composite` (the prediction in the
hole, the ground truth elsewhere) and `raw` (the file as the model wrote it). Where the two are
equal (models that composite themselves) the raw scores are copied, not recomputed.

Outputs: the CSV (tidy: image, variant, hole_fraction, bin, one column per metric, and
`<lpips column>_weights`), written to a temporary name and renamed; a sidecar `<stem>.meta.json`
with conventions, the PSNR cap, LPIPS weight provenance, stage timings and counts; and JSON-line
events on stdout (run_start, progress, warning, run_stop) valid under the model contract's event
schema (run_start's command is "predict", its config says step "score"). An empty CSV cell is a
missing value (NaN): no hole (or no known) pixels, or LPIPS weights missing.
`fid` (fid.py), when the job asks for it, is a set-level metric: no CSV column, but one value per
variant over the whole set in the sidecar, {"fid": {"composite", "raw", "status", "images"}},
null with status `n/a (weights missing)` when pytorch-fid or its Inception weights are absent.
Exit codes as the SDK's: 0 done, 1 failure, 2 invalid job, 4 bad data (e.g. a missing prediction).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from inpaint_sdk import (
    CONTRACT_VERSION,
    EXIT_BAD_DATA,
    EXIT_FAILURE,
    EXIT_INVALID_JOB,
    EXIT_OK,
    BadData,
    Events,
    JobInvalid,
    atomic_target,
    claim_stdout,
    list_pngs,
    read_hole,
    read_job_json,
    read_rgb,
)
from metrics import (
    METRICS,
    PSNR_CAP_DB,
    PSNR_MSE_FLOOR,
    RANDOM_BACKBONE,
    WEIGHTS_MISSING,
    LPIPSFeatures,
    LPIPSScorer,
    WeightsMissing,
    composite,
)

SCHEMA = Path(__file__).resolve().parent / "score_job.schema.json"
VARIANTS = ("composite", "raw")
LPIPS_NETS = {"lpips_vgg": "vgg"}  # the `lpips` column uses the job's lpips.net
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
PROGRESS_EVERY_S = 2.0
# run_start's `command`: the event schema reserves "score" for this image; progress.total counts
# images, as a predict pass does.
EVENT_COMMAND = "score"
# The schema's default: every metric but the optional lpips_vgg.
DEFAULT_METRICS = tuple(m for m in METRICS if m != "lpips_vgg")
# Set-level metrics: asked for in the job's `metrics`, reported in the sidecar only.
SET_METRICS = ("fid",)
COMPUTED = "computed"


def area_bin(hole_fraction: float) -> str | None:
    """`0.1` → `"(0.01,0.1]"`, `0.1000001` → `"(0.1,0.2]"`; None outside (0.01, 0.6]."""
    for low, high in AREA_BINS:
        if low < hole_fraction <= high:
            return f"({low:g},{high:g}]"
    return None


# --- job -------------------------------------------------------------------------------------


def _with_defaults(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """Fill each absent property with the schema's default, recursing into objects."""
    out = dict(doc)
    for name, prop in schema.get("properties", {}).items():
        if name not in out and "default" in prop:
            out[name] = json.loads(json.dumps(prop["default"]))
        if prop.get("type") == "object" and isinstance(out.get(name), dict):
            out[name] = _with_defaults(prop, out[name])
    return out


def load_job(path: Path) -> dict[str, Any]:
    """Read, validate (score_job.schema.json) and complete a job; paths become absolute."""
    doc = read_job_json(path)
    schema = json.loads(SCHEMA.read_text())
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.path])
    if errors:
        where = ".".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise JobInvalid(f"{path}: {where}: {errors[0].message}")
    if ("predictions" in doc) == ("sets" in doc):
        raise JobInvalid(f"{path}: give either predictions and output, or sets (not both)")
    job = _with_defaults(schema, doc)
    base = Path(path).resolve().parent
    if "sets" not in job:
        job["sets"] = [{"predictions": job.pop("predictions"), "output": job.pop("output")}]
    for key in ("ground_truth", "masks", "weights_dir"):
        if job[key] is not None:
            job[key] = str(base / job[key])
    job["sets"] = [{k: str(base / v) for k, v in s.items()} for s in job["sets"]]
    return job


# --- scoring ---------------------------------------------------------------------------------


@dataclass
class ScoreResult:
    rows: list[dict[str, Any]]
    columns: list[str]
    metadata: dict[str, Any]


@dataclass
class _Timer:
    """Seconds per stage; thread pools add their workers' seconds (thread-seconds)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def _pairs(gt_dir: Path, pred_dir: Path, mask_dir: Path) -> list[tuple[str, Path, Path, Path]]:
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


def _decode_truth(pair: tuple[str, Path, Path, Path]) -> tuple[np.ndarray, np.ndarray, float]:
    start = time.perf_counter()
    _, gt_path, _, mask_path = pair
    gt, hole = read_rgb(gt_path), read_hole(mask_path)
    if hole.shape != gt.shape[:2]:
        raise BadData(f"{mask_path}: mask is {hole.shape}, ground truth {gt.shape[:2]}")
    return gt, hole, time.perf_counter() - start


def _decode_prediction(path: Path) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    return read_rgb(path), time.perf_counter() - start


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


def _build_scorers(
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


def _split(indices: np.ndarray, parts: int) -> list[np.ndarray]:
    return [p for p in np.array_split(indices, max(1, min(parts, len(indices)))) if len(p)]


def _rows(part: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive indices as a slice (a view, no gathered copy), else the indices."""
    if len(part) and part[-1] - part[0] == len(part) - 1:
        return slice(int(part[0]), int(part[-1]) + 1)
    return part


def _lpips_distances(
    column: str, scorer: LPIPSScorer, images: np.ndarray, gt_features: LPIPSFeatures
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    start = time.perf_counter()
    values = {column: scorer.distance(images, gt_features)}
    return values, {"lpips_in_pool": time.perf_counter() - start}


@contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
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


def _score_group(
    gt: np.ndarray,
    raw: np.ndarray,
    hole: np.ndarray,
    variants: Sequence[str],
    numpy_names: Sequence[str],
    scorers: dict[str, LPIPSScorer | None],
    pool: ThreadPoolExecutor,
    workers: int,
    timer: _Timer,
    features: dict[int, LPIPSFeatures],
    on_device: _OnDevice | None = None,
    lpips_in_pool: bool = False,
) -> tuple[dict[str, dict[str, np.ndarray]], int]:
    """Scores[variant][metric] for one batch of same-sized images, and how many raw == comp.

    `features` caches the ground truth's LPIPS features per trunk, for the other sets of the job.
    `on_device` computes its metrics (PSNR, SSIM) in torch on the scoring device, the pool the rest.
    `lpips_in_pool`: CPU LPIPS as pool tasks (torch set to one thread by the caller).
    """
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
    device_names = [m for m in numpy_names if on_device and m in on_device.names]
    pool_names = [m for m in numpy_names if m not in device_names]
    # LPIPS on the CPU runs in the pool, single-threaded per task (score_sets sets torch to one
    # thread): no OpenMP barriers, which stall whenever another process takes a core, and the
    # trunk overlaps the numpy metrics (GIL released in both).
    in_pool = {c: s for c, s in scorers.items() if lpips_in_pool and s and s.device.type == "cpu"}
    pending_features = {
        id(s): [pool.submit(s.features, gt[_rows(p)]) for p in _split(everything, workers)]
        for s in in_pool.values()
        if id(s) not in features
    }
    futures: list[tuple[str, np.ndarray, Future[Any]]] = []
    for variant in variants:
        for part in _split(todo[variant], workers) if pool_names else []:
            args = (pool_names, images[variant][part], gt[part], hole[part])
            futures.append((variant, part, pool.submit(_numpy_metrics, *args)))
    scores = {v: {m: np.full(len(gt), np.nan) for m in [*numpy_names, *scorers]} for v in variants}

    def collect() -> None:
        for variant, part, future in futures:
            values, seconds = future.result()
            for name, value in values.items():
                scores[variant][name][part] = value
            for name, sec in seconds.items():
                timer.add(name, sec)
        futures.clear()

    start = time.perf_counter()
    for key, parts in pending_features.items():
        features[key] = LPIPSFeatures.cat([f.result() for f in parts])
    for column, scorer in in_pool.items():
        for variant in variants:
            for part in _split(todo[variant], workers):
                rows = _rows(part)
                args = (column, scorer, images[variant][rows], features[id(scorer)][rows])
                futures.append((variant, part, pool.submit(_lpips_distances, *args)))
    cpu_outside = [
        c for c, s in scorers.items() if s and s.device.type == "cpu" and c not in in_pool
    ]
    if cpu_outside:
        collect()  # one worker: torch's threads would fight the pool's (OpenMP spins)
    for column, scorer in scorers.items():  # on a GPU, while the pool does the numpy metrics
        if scorer is None or column in in_pool:
            continue
        if id(scorer) not in features:
            features[id(scorer)] = scorer.features(gt)
        for variant in variants:
            part = todo[variant]
            if len(part) == len(gt):  # every image: no gathered copy of the features
                scores[variant][column] = scorer.distance(images[variant], features[id(scorer)])
            elif len(part):
                gt_features = features[id(scorer)][part]
                scores[variant][column][part] = scorer.distance(images[variant][part], gt_features)
    timer.add("lpips", time.perf_counter() - start)
    if on_device and device_names:
        start = time.perf_counter()  # queued behind LPIPS on the GPU; the pool keeps decoding
        for variant in variants:
            part = todo[variant]
            if len(part):
                values = on_device.scores(device_names, images[variant][part], gt[part])
                for name, value in values.items():
                    scores[variant][name][part] = value
        timer.add("device_metrics", time.perf_counter() - start)
    collect()
    if "raw" in variants and "composite" in variants:
        for name in scores["raw"]:
            scores["raw"][name][same] = scores["composite"][name][same]
    return scores, int(same.sum())


@dataclass(frozen=True)
class _OnDevice:
    """PSNR and SSIM in torch on the scoring device (device_metrics.py), instead of the pool."""

    device: Any  # torch.device

    @classmethod
    def build(cls, scorers: Sequence[LPIPSScorer], device: str) -> _OnDevice:
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


class _FidAccumulator:
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


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
    timer = _Timer()
    emit: Callable[..., None] = events.emit if events else lambda *a, **k: None
    unknown = [m for m in metrics if m not in METRICS and m not in SET_METRICS]
    if unknown or not set(variants) <= set(VARIANTS):
        raise ValueError(f"unknown metrics {unknown} or variants {list(variants)}")
    if not sets:
        raise ValueError("no prediction sets to score")
    per_set = [_pairs(Path(ground_truth), Path(s.predictions), Path(masks)) for s in sets]
    pairs = per_set[0]
    ordered = [m for m in METRICS if m in metrics]
    numpy_names = [m for m in ordered if not METRICS[m].needs_weights]
    lpips_columns = [m for m in ordered if METRICS[m].needs_weights]
    workers = workers or len(os.sched_getaffinity(0))
    chunk_size = max(lpips_batch_size, 2 * workers)
    chunks = list(_chunks(range(len(pairs)), chunk_size))
    pool = ThreadPoolExecutor(max_workers=workers)

    def submit(chunk: Sequence[int]) -> tuple[list[Future[Any]], list[list[Future[Any]]]]:
        truth = [pool.submit(_decode_truth, pairs[i]) for i in chunk]
        preds = [[pool.submit(_decode_prediction, p[i][2]) for i in chunk] for p in per_set]
        return truth, preds

    try:
        # The first chunk decodes while torch is imported and the trunk built (≈ 3.5 s on 2 cores)
        pending = submit(chunks[0])
        setup = time.perf_counter()
        scorers, status, provenance = _build_scorers(
            lpips_columns, lpips_net, lpips_batch_size, device, weights_dir, allow_random_backbone
        )
        timer.add("setup_lpips", time.perf_counter() - setup)
        fids = (
            [_FidAccumulator(variants, device, weights_dir) for _ in sets]
            if "fid" in metrics
            else []
        )
        live = [s for s in scorers.values() if s is not None]
        used_device = live[0].device.type if live else "cpu"
        if device_metrics is None:  # on a GPU, SSIM on the CPU would leave the trunk idle
            device_metrics = used_device == "cuda"
        on_device = _OnDevice.build(live, device) if device_metrics else None
    except BaseException:
        pool.shutdown(cancel_futures=True)
        raise
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
    with pool, _torch_threads(1 if in_pool else None):
        for step, chunk in enumerate(chunks, start=1):
            start = time.perf_counter()
            truth = [f.result() for f in pending[0]]
            decoded = [[f.result() for f in futures] for futures in pending[1]]
            timer.add("decode_wait", time.perf_counter() - start)
            if step < len(chunks):  # decode the next chunk while this one is scored
                pending = submit(chunks[step])
            for seconds in [t[-1] for t in truth] + [d[-1] for s in decoded for d in s]:
                timer.add("decode", seconds)
            for s, images in enumerate(decoded):
                for j, (raw, _) in enumerate(images):
                    if raw.shape != truth[j][0].shape:
                        path = per_set[s][chunk[j]][2]
                        gt_shape = truth[j][0].shape[:2]
                        raise BadData(
                            f"{path}: prediction is {raw.shape[:2]}, ground truth {gt_shape}"
                        )
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for j, (gt, *_rest) in enumerate(truth):
                by_shape.setdefault(gt.shape, []).append(j)
            chunk_rows: list[list[dict[str, Any]]] = [[{} for _ in chunk] for _ in sets]
            for members in by_shape.values():
                gt = np.stack([truth[j][0] for j in members])
                hole = np.stack([truth[j][1] for j in members])
                fractions = hole.mean(axis=(1, 2), dtype=np.float64)
                features: dict[int, LPIPSFeatures] = {}  # per trunk, shared by every set
                for s in range(len(sets)):
                    raw = np.stack([decoded[s][j][0] for j in members])
                    scores, same = _score_group(
                        gt, raw, hole, variants, numpy_names, scorers, pool, workers, timer,
                        features, on_device, in_pool,
                    )  # fmt: skip
                    raw_equal[s] += same
                    if fids:
                        start = time.perf_counter()
                        fids[s].add(gt, raw, hole)
                        timer.add("fid_features", time.perf_counter() - start)
                    for k, j in enumerate(members):
                        frac = float(fractions[k])
                        for variant in variants:
                            row = {
                                "image": pairs[chunk[j]][0],
                                "variant": variant,
                                "hole_fraction": frac,
                                "bin": area_bin(frac),
                            }
                            row.update({m: float(scores[variant][m][k]) for m in ordered})
                            row.update({f"{c}_weights": status[c] for c in lpips_columns})
                            chunk_rows[s][j][variant] = row
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
        metadata = _metadata(
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


def _metadata(
    config: dict[str, Any],
    pairs: Sequence[Any],
    rows: Sequence[Any],
    raw_equal: int,
    status: dict[str, str],
    provenance: dict[str, str],
    scorers: dict[str, LPIPSScorer | None],
    timer: _Timer,
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


# --- entry point -----------------------------------------------------------------------------


def score_job(job: dict[str, Any], events: Events) -> list[ScoreResult]:
    return score_sets(
        Path(job["ground_truth"]),
        Path(job["masks"]),
        [PredictionSet(Path(s["predictions"]), Path(s["output"])) for s in job["sets"]],
        metrics=job["metrics"],
        variants=job["variants"],
        lpips_net=job["lpips"]["net"],
        lpips_batch_size=job["lpips"]["batch_size"],
        device=job["device"],
        weights_dir=Path(job["weights_dir"]) if job["weights_dir"] else None,
        allow_random_backbone=job["allow_random_backbone"],
        job_id=job["job_id"],
        events=events,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    events = claim_stdout()
    if len(argv) != 2:
        print(f"usage: {argv[0]} JOB.json", file=sys.stderr)
        return EXIT_INVALID_JOB
    failed = {"status": "failed", "reason": "error", "step": 0, "images_seen": 0}
    try:
        score_job(load_job(Path(argv[1])), events)
    except (JobInvalid, BadData) as error:
        events.emit("run_stop", **failed, message=str(error))
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID_JOB if isinstance(error, JobInvalid) else EXIT_BAD_DATA
    except Exception as error:
        traceback.print_exc()
        events.emit("run_stop", **failed, message=f"{type(error).__name__}: {error}"[:2000])
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
