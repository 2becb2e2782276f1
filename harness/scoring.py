"""The score step: the metrics image (or its folder, with the local runner) scores the models'
predictions of one test set, all in one job once they are all there; the per-image rows of
each model go into the ledger under that model's own step.

This is the only step that mounts a test set's ground truth, and it mounts it read-only into
the metrics image, never into a model's.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checkpoints import Checkpoint
from harness.config import ModelEntry
from harness.contract import CONTRACT_VERSION, DATA_MOUNT, OUTPUTS_MOUNT
from harness.data.atomic import atomic_write_text
from harness.errors import HarnessError
from harness.images import REPO, SDK_DIR
from harness.ledger import Ledger, content_key
from harness.runners.base import Launch, Mounts, Outcome, Process
from harness.steps import JointStep, RunContext, RunSummary, StepResult

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
    outputs: Path,
    sets: int,
    metrics: list[str],
    device: str,
    weights_dir: Path | None,
) -> dict[str, Any]:
    """The score job for `sets` prediction folders (host["predictions_<i>"]), their CSVs
    outputs/scores_<i>.csv; folder paths as the scorer will see them (container or host)."""
    if runner == "docker":
        where = {name: f"{DATA_MOUNT}/{name}" for name in host}
        out = OUTPUTS_MOUNT
        weights = None  # baked into the metrics image
    else:
        where = {name: str(path.resolve()) for name, path in host.items()}
        out = str(outputs.resolve())
        weights = str(weights_dir) if weights_dir else os.environ.get("TORCH_HOME")
    return {
        "contract_version": CONTRACT_VERSION,
        "job_id": key[:16],
        "ground_truth": where["ground_truth"],
        "masks": where["masks"],
        "sets": [
            {"predictions": where[f"predictions_{i}"], "output": f"{out}/scores_{i}.csv"}
            for i in range(sets)
        ],
        "metrics": metrics,
        "variants": ["composite", "raw"],
        "lpips": {"net": "alex", "batch_size": 32},
        "device": device,
        "weights_dir": weights,
        "allow_random_backbone": False,
    }


@dataclass(frozen=True)
class PendingScore:
    """A model's predictions of one test set, waiting to be scored with the other models'."""

    model: ModelEntry
    source: str
    test_set: str
    predict: StepResult
    checkpoint: Checkpoint  # the training seed and snapshot the predictions came from


@dataclass(frozen=True)
class _Todo(JointStep):
    """One model's score step, not done yet."""

    kind = "score"
    item: PendingScore


def score_all(
    pipeline: RunContext,
    ledger: Ledger,
    summary: RunSummary,
    pending: list[PendingScore],
    last_started: Callable[[Process], None] | None = None,
) -> None:
    """Score every model's predictions of each (source, test set) in one metrics job: the ground
    truth is decoded and its LPIPS features computed once for all of them. Each model keeps its
    own ledger step (content key, status, rows), so a rerun scores only what is not done.
    `last_started` is called with the run's last score job once it started (--executor slurm
    chains the report job on it)."""
    groups: dict[tuple[str, str], list[PendingScore]] = {}
    for item in pending:
        groups.setdefault((item.source, item.test_set), []).append(item)
    metrics = metrics_for(pipeline.profile.metrics)
    planned = [
        (source, test_set, _plan(pipeline, ledger, source, test_set, metrics, items))
        for (source, test_set), items in groups.items()
    ]
    last = max((i for i, (_, _, (_, todo)) in enumerate(planned) if todo), default=-1)
    for i, (source, test_set, (ended, todo)) in enumerate(planned):
        summary.steps.extend(ended)
        if todo:
            hook = last_started if i == last else None
            _score_together(pipeline, ledger, summary, source, test_set, metrics, todo, hook)


def _plan(
    pipeline: RunContext,
    ledger: Ledger,
    source: str,
    test_set: str,
    metrics: list[str],
    items: list[PendingScore],
) -> tuple[list[StepResult], list[_Todo]]:
    """(the group's scores already ended: cached, or not run; those to score)."""
    ended: list[StepResult] = []
    todo = []
    for item in items:
        label = f"{item.model.name} ({item.checkpoint.label(source)}) on {test_set}"
        if item.predict.status == "failed":
            ended.append(StepResult("score", label, "", "failed", "not run: prediction failed"))
            continue
        parts = {
            "model": item.model.name,
            "predict": item.predict.key,
            "metrics": metrics,
            "scorer": metrics_digest(),
            "weights_dir": str(pipeline.weights_dir),
        }
        key = content_key("score", parts)
        done = ledger.get(key)
        if done is not None and done.status == "done":
            ended.append(
                StepResult("score", label, key, "cached", done.reason or "", done.result or {})
            )
            continue
        todo.append(_Todo(label, key, parts, item))
    return ended, todo


def _score_together(
    pipeline: RunContext,
    ledger: Ledger,
    summary: RunSummary,
    source: str,
    test_set: str,
    metrics: list[str],
    todo: list[_Todo],
    started: Callable[[Process], None] | None = None,
) -> None:
    attempts = [t.begin(ledger) for t in todo]
    pipeline.reporter.note(f"score: {', '.join(t.label for t in todo)}")
    key, attempt = todo[0].key, attempts[0]  # the job's events go to the first model's step
    work = pipeline.run_dir / "work" / key[:16]
    results: list[dict[str, Any]]
    try:
        shutil.rmtree(work, ignore_errors=True)
        outputs = work / "outputs"
        outputs.mkdir(parents=True)
        host = {
            "ground_truth": pipeline.layout.test_dir(test_set),
            "masks": pipeline.layout.mask_dir("test"),
        }
        for i, t in enumerate(todo):
            host[f"predictions_{i}"] = Path(t.item.predict.result["path"])
        doc = score_job(
            key,
            pipeline.runner.name,
            host,
            outputs,
            len(todo),
            metrics,
            pipeline.device,
            pipeline.weights_dir,
        )
        job = work / "job" / "job.json"
        atomic_write_text(job, json.dumps(doc, indent=1) + "\n")
        images = len(list(host["ground_truth"].glob("*.png")))
        launch = Launch(
            "metrics",
            str(METRICS_FOLDER),
            "score",
            Mounts(host, job, work / "checkpoints", outputs),
            pipeline.limits(max(600.0, 2.0 * images * len(todo))),
            pipeline.run_dir / "logs" / f"score-{source}-{test_set}.log",
            pipeline.gpu,
        )
        label = f"score {test_set} ({source}): {len(todo)} model(s)"
        outcome = pipeline.launch(ledger, key, attempt, launch, label, started)
        results = [
            _take_scores(pipeline, ledger, t, source, test_set, metrics, outcome, outputs, i)
            for i, t in enumerate(todo)
        ]
        shutil.rmtree(work, ignore_errors=True)
    except HarnessError as error:
        results = [{"failed": True, "reason": str(error)} for _ in todo]
    except Exception as error:  # contained: the run goes on
        reason = f"harness error: {type(error).__name__}: {error}"
        results = [{"failed": True, "reason": reason} for _ in todo]
    if len(todo) > 1 and all(r.get("failed") for r in results):
        # One model's files can fail the whole job (BadData names the file): score each model
        # alone, so that only the one at fault fails.
        pipeline.reporter.note(f"  the joint score job failed ({results[0]['reason']}); one by one")
        for t in todo:  # each re-chains the report job (which drops the one chained before)
            _score_together(pipeline, ledger, summary, source, test_set, metrics, [t], started)
        return
    for t, result in zip(todo, results, strict=True):
        t.finish(pipeline, ledger, summary, result)


def _take_scores(
    pipeline: RunContext,
    ledger: Ledger,
    todo: _Todo,
    source: str,
    test_set: str,
    metrics: list[str],
    outcome: Outcome,
    outputs: Path,
    index: int,
) -> dict[str, Any]:
    """One model's CSV from the job: its rows into the ledger, the files to scores/."""
    produced = outputs / f"scores_{index}.csv"
    if not outcome.ok or not produced.is_file():
        return {
            "failed": True,
            "reason": outcome.reason if not outcome.ok else f"{produced}: not written",
        }
    with open(produced, newline="") as handle:
        rows = list(csv.DictReader(handle))
    meta_path = produced.with_suffix(".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    model = todo.item.model.name
    checkpoint = todo.item.checkpoint
    ledger.put_scores(
        todo.key,
        {"source": source, "model": model, "test_set": test_set},
        rows,
        [m for m in metrics if rows and m in rows[0]],
        seed=checkpoint.seed,
        snapshot_s=checkpoint.snapshot_s,
    )
    final = pipeline.run_dir / "scores" / source / (model + checkpoint.tag) / f"{test_set}.csv"
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(produced, final)
    if meta_path.is_file():
        os.replace(meta_path, final.with_suffix(".meta.json"))
    return {
        "reason": "done",
        "rows": len(rows),
        "path": str(final),
        "metadata": meta,
        "folder_hash": "sha256:" + metrics_digest(),
        **pipeline.provenance(METRICS_FOLDER),
    }
