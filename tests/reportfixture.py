"""A finished run folder for report tests, built without running any model.

Two training sources, two test sets and three scored models (alpha, beta, gamma), plus `broken`
(its describe and both trainings failed) and `absent` (in run.json, never run: skipped). Scores
are random but seeded, stored through the real ledger; the per-image rows are also returned as
plain dicts so tests can recompute every number without the report's code. LPIPS is NULL for
beta on celeba_test (trained on place2), whose sidecar says the weights were missing, and for
gamma on places_test (trained on celeba), whose sidecar says nothing (so plain "n/a"). beta's
predictions on places_test (trained on celeba) failed, so it has no scores there. gamma does not
composite: its raw files change known pixels. alpha's training on place2 was resumed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.layout import area_bin, file_name
from harness.data.pngs import write_png
from harness.ledger import Ledger, content_key

SOURCES = ("place2", "celeba")
TEST_SETS = ("celeba_test", "places_test")
MODELS = ("alpha", "beta", "gamma")
FAILED = "broken"
SKIPPED = "absent"
METRICS = ("psnr", "ssim", "lpips", "l1_hole", "psnr_hole", "known_pixel_dev")
# What run.json records of the images that ran under docker (the provenance the report shows).
ALPHA_IMAGE = {
    "folder_hash": "sha256:" + "f" * 64,
    "docker_image": "sha256:" + "1" * 64,
    "base_image": "inpaint-bench/base:cuda",
    "base_image_id": "sha256:" + "2" * 64,
}
METRICS_IMAGE = {**ALPHA_IMAGE, "docker_image": "sha256:" + "3" * 64}
SEED = 7
SIZE = 20
# One hole fraction per test image, spread over the six area bins (hole = first k pixels).
HOLE_FRACTIONS = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.08, 0.19, 0.31)
N_IMAGES = len(HOLE_FRACTIONS)
LPIPS_WEIGHTS_MISSING = ("place2", "beta", "celeba_test")
LPIPS_NULL_SILENT = ("celeba", "gamma", "places_test")
# The first IDENTICAL_COUNT predictions of this cell equal their ground truth: PSNR and Hole PSNR
# read the metrics image's cap, 10·log10(255² / 1e-10) dB (MSE floored at 1e-10).
IDENTICAL_CELL = ("place2", "alpha", "places_test")
IDENTICAL_COUNT = 2
PSNR_CAP = 10 * math.log10(255**2 / 1e-10)
PREDICT_FAILED = ("celeba", "beta", "places_test")  # its predictions failed the checks
PREDICT_FAILURE = "2 prediction(s) missing, e.g. 000003.png"
WEIGHTS_MISSING = "n/a (weights missing)"
TRAIN_FAILURE = "exit 1 after 3.2 s: RuntimeError: CUDA out of memory"
DESCRIBE_FAILURE = "exit 1: ImportError: no module named upstream"
# Per-model centres, so the best model differs by metric (and lower-is-better is exercised).
CENTRES = {
    "alpha": {"psnr": 27.0, "ssim": 0.80, "lpips": 0.20, "l1_hole": 12.0, "psnr_hole": 20.0},
    "beta": {"psnr": 26.0, "ssim": 0.84, "lpips": 0.16, "l1_hole": 14.0, "psnr_hole": 19.0},
    "gamma": {"psnr": 25.0, "ssim": 0.78, "lpips": 0.12, "l1_hole": 11.0, "psnr_hole": 21.0},
}
SPREAD = {"psnr": 2.0, "ssim": 0.05, "lpips": 0.05, "l1_hole": 3.0, "psnr_hole": 2.0}
FLOPS = {"alpha": 12_600_000_000, "beta": 3_000_000_000, "gamma": 151_000_000_000}


@dataclass
class FixtureRun:
    run_dir: Path
    data_root: Path
    images_root: Path
    rows: list[dict[str, Any]] = field(default_factory=list)  # exactly what the ledger holds


def _digest(model: str) -> str:
    return "sha256:" + content_key("image", {"model": model})


def _hole(index: int) -> np.ndarray:
    hole = np.zeros(SIZE * SIZE, dtype=bool)
    hole[: round(HOLE_FRACTIONS[index] * SIZE * SIZE)] = True
    return hole.reshape(SIZE, SIZE)


def _write_data(root: Path, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    truth: dict[str, list[np.ndarray]] = {}
    for i in range(N_IMAGES):
        write_png(root / "masks" / "test" / file_name(i), _hole(i).astype(np.uint8) * 255)
    for test_set in TEST_SETS:
        truth[test_set] = []
        for i in range(N_IMAGES):
            gt = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
            write_png(root / "test" / test_set / file_name(i), gt)
            truth[test_set].append(gt)
    return truth


def _score_rows(
    rng: np.random.Generator, source: str, model: str, test_set: str
) -> list[dict[str, Any]]:
    """Make per-image CSV-like rows (both variants) for one score step."""
    rows = []
    for i in range(N_IMAGES):
        fraction = float(_hole(i).mean())
        composite: dict[str, Any] = {
            m: float(rng.normal(CENTRES[model][m], SPREAD[m])) for m in SPREAD
        }
        composite["known_pixel_dev"] = 0.0
        if (source, model, test_set) == IDENTICAL_CELL and i < IDENTICAL_COUNT:
            composite |= {"psnr": PSNR_CAP, "psnr_hole": PSNR_CAP, "ssim": 1.0, "l1_hole": 0.0}
            composite["lpips"] = 0.0
        if (source, model, test_set) in (LPIPS_WEIGHTS_MISSING, LPIPS_NULL_SILENT):
            composite["lpips"] = None
        raw = dict(composite)
        if model == "gamma":  # does not composite: raw differs, known pixels damaged
            raw["psnr"] = composite["psnr"] - 3.0 - float(rng.random())
            raw["known_pixel_dev"] = 20.0 + 10.0 * float(rng.random())
        for variant, values in (("composite", composite), ("raw", raw)):
            rows.append(
                {
                    "image": file_name(i),
                    "variant": variant,
                    "hole_fraction": fraction,
                    "bin": area_bin(fraction),
                    **values,
                }
            )
    return rows


def _progress(steps: range, model: str) -> list[dict[str, Any]]:
    events = []
    for step in steps:
        losses = {"l1": 1.0 / (step + 1)}
        if model == "alpha":
            losses["adv"] = 0.7 + 0.01 * step
        events.append(
            {
                "event": "progress",
                "time": 1000.0 + step,
                "step": step,
                "images_seen": 4 * step,
                "losses": losses,
            }
        )
    return events


def build_run(root: Path) -> FixtureRun:
    """Write the data tree, run folder, ledger and image manifests under `root`."""
    rng = np.random.default_rng(SEED)
    data_root, run_dir, images_root = root / "data", root / "run", root / "images"
    truth = _write_data(data_root, rng)
    run_dir.mkdir(parents=True)
    info = {
        "harness_version": "0.1.0",
        "profile": "fixture",
        "runner": "local",
        "device": "cuda",
        "gpu": 0,
        "seed": SEED,
        "data_root": str(data_root),
        "data_identity": "d" * 64,
        "image_size": SIZE,
        "models": [*MODELS, FAILED, SKIPPED],
        "images": {"alpha": ALPHA_IMAGE, "metrics": METRICS_IMAGE},
    }
    (run_dir / "run.json").write_text(json.dumps(info, indent=1))
    for model, upstream in (
        ("alpha", {"url": "https://example.org/alpha", "commit": "a" * 40, "license": "MIT"}),
        ("beta", None),
    ):
        folder = images_root / model
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"name": model, "upstream": upstream}))
    fixture = FixtureRun(run_dir, data_root, images_root)
    with Ledger.in_run_dir(run_dir) as ledger:
        for test_set in TEST_SETS:
            key = content_key("inputs", {"set": test_set})
            ledger.begin(key, "inputs", test_set, {"set": test_set})
            for i, gt in enumerate(truth[test_set]):
                masked = gt.copy()
                masked[_hole(i)] = 0
                write_png(run_dir / "inputs" / test_set / file_name(i), masked)
            ledger.finish(key, "done", {"images": N_IMAGES, "path": str(run_dir / "inputs")})
        for model in (*MODELS, FAILED):
            _describe(ledger, model)
            for source in SOURCES:
                train = _train(ledger, model, source)
                if model == FAILED:
                    continue
                for test_set in TEST_SETS:
                    fixture.rows += _predict_and_score(
                        ledger, rng, run_dir, truth, model, source, test_set, train
                    )
    return fixture


def _describe(ledger: Ledger, model: str) -> None:
    key = content_key("describe", {"model": model})
    ledger.begin(key, "describe", model, {"model": model})
    if model == FAILED:
        ledger.finish(key, "failed", reason=DESCRIBE_FAILURE)
        return
    doc = {
        "contract_version": "1",
        "model": model,
        "device": "cuda",
        "parameters": {
            "generator": 1_000_000 * len(model),
            "other": {},
            "discriminator": None if model == "beta" else 2_765_569,
        },
        "flops": {
            "image_size": 256,
            "forward_flops": FLOPS[model],
            "counter": "FlopCounterMode",
            "uncounted_ops": ["aten._fft_r2c"] if model == "gamma" else [],
        },
        "latency_ms": None if model == "gamma" else {"median": 12.5 * len(model), "runs": 10},
        "peak_memory_bytes": None if model == "gamma" else 512 * 2**20,
    }
    ledger.finish(key, "done", {"reason": "done", "describe": doc, "image_digest": _digest(model)})


def _train(ledger: Ledger, model: str, source: str) -> str:
    spec = {"model": model, "source": source, "image": _digest(model)}
    key = content_key("train", spec)
    label = f"{model} on {source}"
    attempts = 2 if (model, source) == ("alpha", "place2") else 1
    for attempt in range(1, attempts + 1):
        assert ledger.begin(key, "train", label, spec) == attempt
        first = 0 if attempt == 1 else 30
        last = 30 if attempt < attempts else 60
        seq = 0
        for seq, event in enumerate(_progress(range(first, last + 1, 10), model)):
            ledger.add_event(key, attempt, seq, event)
        ledger.add_event(key, attempt, seq + 1, {"event": "run_stop", "time": 2000.0})
    if model == FAILED:
        result = {
            "failed": True,
            "status": "failed",
            "reason": TRAIN_FAILURE,
            "steps": 0,
            "images_seen": 0,
            "setup_s": 3.2,
            "train_s": 0.0,
            "wall_s": 3.2,
            "image_digest": _digest(model),
            "budget_s": 60.0,
        }
        ledger.finish(key, "failed", result, reason=TRAIN_FAILURE)
    else:
        result = {
            "status": "completed",
            "reason": "budget",
            "steps": 60,
            "images_seen": 240,
            "setup_s": 4.5,
            "train_s": 60.1,
            "wall_s": 64.6,
            "image_digest": _digest(model),
            "budget_s": 60.0,
        }
        ledger.finish(key, "done", result, reason="budget")
    return key


def _predict_and_score(
    ledger: Ledger,
    rng: np.random.Generator,
    run_dir: Path,
    truth: dict[str, list[np.ndarray]],
    model: str,
    source: str,
    test_set: str,
    train: str,
) -> list[dict[str, Any]]:
    spec = {"model": model, "train": train, "set": test_set}
    key = content_key("predict", spec)
    ledger.begin(key, "predict", f"{model} ({source}) on {test_set}", spec)
    folder = run_dir / "predictions" / source / model / test_set
    shift = {"alpha": 10, "beta": 60, "gamma": 120}[model]
    for i, gt in enumerate(truth[test_set]):
        pred = gt.copy()
        region = np.ones_like(_hole(i)) if model == "gamma" else _hole(i)
        pred[region] = (gt[region].astype(int) + shift).clip(0, 255).astype(np.uint8)
        write_png(folder / file_name(i), pred)
    if (source, model, test_set) == PREDICT_FAILED:  # the pipeline then scores nothing
        ledger.finish(key, "failed", {"failed": True, "reason": PREDICT_FAILURE}, PREDICT_FAILURE)
        return []
    composites = model != "gamma"
    ledger.finish(
        key,
        "done",
        {
            "reason": "done",
            "images": N_IMAGES,
            "path": str(folder),
            "composites": composites,
            "known_pixel_max_abs": 0 if composites else 120,
        },
    )
    score_spec = {"model": model, "predict": key, "metrics": list(METRICS)}
    score_key = content_key("score", score_spec)
    ledger.begin(score_key, "score", f"{model} ({source}) on {test_set}", score_spec)
    rows = _score_rows(rng, source, model, test_set)
    where = {"source": source, "model": model, "test_set": test_set}
    ledger.put_scores(score_key, where, rows, list(METRICS))
    status = WEIGHTS_MISSING if (source, model, test_set) == LPIPS_WEIGHTS_MISSING else "alex-v0.1"
    meta = {
        "lpips_weights": {"lpips": status},
        "higher_is_better": {
            "psnr": True,
            "ssim": True,
            "lpips": False,
            "l1_hole": False,
            "psnr_hole": True,
            "known_pixel_dev": False,
        },
        "psnr_cap_db": 148.13,
    }
    ledger.finish(score_key, "done", {"reason": "done", "rows": len(rows), "metadata": meta})
    return [
        {
            **where,
            "image": r["image"],
            "variant": r["variant"],
            "hole_fraction": r["hole_fraction"],
            "bin": r["bin"],
            "metric": m,
            "value": r[m],
        }
        for r in rows
        for m in METRICS
    ]


@dataclass(frozen=True)
class BuiltReport:
    fixture: FixtureRun
    report: Path  # RUN_DIR/report
    main_markdown: str
    ledger_sha256_before: str


_BUILT: list[BuiltReport] = []


def shared_report(factory: Any) -> BuiltReport:
    """Build the fixture run and its report once per test session (a build draws a dozen
    figures, so each test module building its own would dominate the suite's time). Tests
    must treat it as read-only; copy the run folder to change anything."""
    if not _BUILT:
        import hashlib

        from harness.report import build_report

        fixture = build_run(factory.mktemp("report-run"))
        ledger = fixture.run_dir / "ledger.sqlite"
        before = hashlib.sha256(ledger.read_bytes()).hexdigest()
        result = build_report(fixture.run_dir, images_root=fixture.images_root)
        _BUILT.append(BuiltReport(fixture, result.path, result.main_markdown, before))
    return _BUILT[0]
