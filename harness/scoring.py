"""The score step: the metrics image (or its folder, with the local runner) scores one model's
predictions on one test set; the per-image rows go into the ledger.

This is the only step that mounts a test set's ground truth, and it mounts it read-only into
the metrics image, never into a model's.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import ModelEntry
from harness.contract import CONTRACT_VERSION, DATA_MOUNT, OUTPUTS_MOUNT
from harness.data.atomic import atomic_write_text
from harness.images import REPO, SDK_DIR
from harness.ledger import Ledger
from harness.runners.base import Launch, Mounts

if TYPE_CHECKING:
    from harness.pipeline import Pipeline, RunSummary, StepResult

METRICS_FOLDER = REPO / "images" / "metrics"
# Always scored next to what benchmark.yaml asks for: the second SSIM convention, hole-only
# scores and the known-pixel deviation that exposes models damaging the unmasked region.
ALWAYS = ("ssim_gauss", "psnr_hole", "l1_hole", "known_pixel_dev")
SCORABLE = (
    "psnr",
    "ssim",
    "ssim_gauss",
    "lpips",
    "lpips_vgg",
    "l1_hole",
    "psnr_hole",
    "known_pixel_dev",
    "fid",  # set-level: the sidecar's `fid`, no per-image column (put_scores skips it)
)


def metrics_for(requested: tuple[str, ...]) -> list[str]:
    wanted = [m for m in requested if m in SCORABLE]
    return wanted + [m for m in ALWAYS if m not in wanted]


def metrics_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(
        [*METRICS_FOLDER.rglob("*.py"), *METRICS_FOLDER.glob("*.json"), *SDK_DIR.glob("*.py")]
    ):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def score_job(
    key: str,
    runner: str,
    host: dict[str, Path],
    output: Path,
    metrics: list[str],
    device: str,
    weights_dir: Path | None,
) -> dict[str, Any]:
    """The score job; folder paths as the scorer will see them (container or host)."""
    if runner == "docker":
        where = {name: f"{DATA_MOUNT}/{name}" for name in host}
        out = f"{OUTPUTS_MOUNT}/scores.csv"
        weights = None  # baked into the metrics image
    else:
        where = {name: str(path.resolve()) for name, path in host.items()}
        out = str(output.resolve())
        weights = str(weights_dir) if weights_dir else os.environ.get("TORCH_HOME")
    return {
        "contract_version": CONTRACT_VERSION,
        "job_id": key[:16],
        "ground_truth": where["ground_truth"],
        "predictions": where["predictions"],
        "masks": where["masks"],
        "output": out,
        "metrics": metrics,
        "variants": ["composite", "raw"],
        "lpips": {"net": "alex", "batch_size": 32},
        "device": device,
        "weights_dir": weights,
        "allow_random_backbone": False,
    }


def score(
    pipeline: Pipeline,
    ledger: Ledger,
    summary: RunSummary,
    model: ModelEntry,
    source: str,
    test_set: str,
    predict: StepResult,
) -> StepResult | None:
    label = f"{model.name} ({source}) on {test_set}"
    if predict.status == "failed":
        from harness.pipeline import StepResult

        result = StepResult("score", label, "", "failed", "not run: prediction failed")
        summary.steps.append(result)
        return result
    metrics = metrics_for(pipeline.profile.metrics)
    parts = {
        "model": model.name,
        "predict": predict.key,
        "metrics": metrics,
        "scorer": metrics_digest(),
        "weights_dir": str(pipeline.weights_dir),
    }
    final = pipeline.run_dir / "scores" / source / model.name / f"{test_set}.csv"

    def body(key: str, attempt: int) -> dict[str, Any]:
        work = pipeline.run_dir / "work" / key[:16]
        shutil.rmtree(work, ignore_errors=True)
        outputs = work / "outputs"
        outputs.mkdir(parents=True)
        host = {
            "ground_truth": pipeline.layout.test_dir(test_set),
            "predictions": Path(predict.result["path"]),
            "masks": pipeline.layout.mask_dir("test"),
        }
        doc = score_job(
            key,
            pipeline.runner.name,
            host,
            outputs / "scores.csv",
            metrics,
            pipeline.device,
            pipeline.weights_dir,
        )
        job = work / "job" / "job.json"
        atomic_write_text(job, json.dumps(doc, indent=1) + "\n")
        launch = Launch(
            "metrics",
            str(METRICS_FOLDER),
            "score",
            Mounts(host, job, work / "checkpoints", outputs),
            pipeline._limits(max(600.0, 2.0 * len(list(host["predictions"].iterdir())))),
            pipeline.run_dir / "logs" / f"score-{model.name}-{source}.log",
            pipeline.gpu,
        )
        outcome = pipeline._launch(ledger, key, attempt, launch, f"score {label}")
        produced = outputs / "scores.csv"
        if not outcome.ok or not produced.is_file():
            return {
                "failed": True,
                "reason": outcome.reason if not outcome.ok else f"{produced}: not written",
            }
        with open(produced, newline="") as handle:
            rows = list(csv.DictReader(handle))
        meta_path = produced.with_suffix(".meta.json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        ledger.put_scores(
            key,
            {"source": source, "model": model.name, "test_set": test_set},
            rows,
            [m for m in metrics if rows and m in rows[0]],
        )
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(produced, final)
        if meta_path.is_file():
            os.replace(meta_path, final.with_suffix(".meta.json"))
        shutil.rmtree(work, ignore_errors=True)
        return {"reason": "done", "rows": len(rows), "path": str(final), "metadata": meta}

    return pipeline._step(ledger, summary, "score", label, parts, body)
