"""The predict step: one model's predictions of the test sets from one trained checkpoint, all
the sets not done yet in ONE predict job (process start-up, imports and loading the checkpoint
once, not once per set), checked set by set (one PNG per input, same name and size, known
pixels measured) before they are kept.

Each test set keeps its own ledger step under its own content key, as before batching, so that
scoring, the report, caching and old run folders are unchanged, and a rerun predicts only the
sets not done. The job's events go to the first set's step (as the joint score job's go to its
first model's, harness/scoring.py). Every set's step is `running` while the job runs; after it,
each set's outputs are checked, renamed into place and only then marked done, one set at a
time: a kill -9 at any point leaves each set done with its whole folder in place, or not done
and predicted again by the rerun.
"""

from __future__ import annotations

import logging
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import predict_batch
from harness.checkpoints import Checkpoint
from harness.config import ModelEntry
from harness.errors import DataError, HarnessError
from harness.images import ImageFolder
from harness.jobs import predict_job, spec_of, write_job
from harness.ledger import Ledger, content_key
from harness.predictions import check_predictions, problem_line
from harness.runners.base import Launch, Mounts
from harness.steps import JointStep, RunContext, RunSummary, StepResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Todo(JointStep):
    """One test set's prediction step, not done yet."""

    kind = "predict"
    test_set: str
    inputs: Path
    final: Path


@dataclass(frozen=True)
class _Batch:
    """What the sets predicted in one job from one checkpoint share: the run (its ledger and
    summary), the model with its folder, source and training, and the predict job's document."""

    pipeline: RunContext
    ledger: Ledger
    summary: RunSummary
    model: ModelEntry
    folder: ImageFolder
    source: str
    train: StepResult
    doc: dict[str, Any]


def predict_sets(
    pipeline: RunContext,
    ledger: Ledger,
    summary: RunSummary,
    model: ModelEntry,
    folder: ImageFolder,
    source: str,
    train: StepResult,
    inputs: dict[str, Path],
    checkpoint: Checkpoint,
) -> dict[str, StepResult]:
    """Predict every test set of `inputs` (test set → its masked inputs) from one checkpoint of
    a training (its final one, or a snapshot); each set's predictions go to
    RUN_DIR/predictions/<source>/<model><tag>/<test_set>/. Returns each set's step."""
    labels = {t: f"{model.name} ({checkpoint.label(source)}) on {t}" for t in inputs}
    if train.status == "failed":
        failed = {
            t: StepResult("predict", labels[t], "", "failed", "not run: training failed")
            for t in inputs
        }
        summary.steps.extend(failed.values())
        return failed
    doc = predict_job(
        "",
        pipeline.profile,
        model,
        pipeline.device,
        folder.manifest,
        checkpoint.seed,
        checkpoint.snapshot_s,
    )
    name = model.name + checkpoint.tag
    steps: dict[str, StepResult] = {}
    todo = []
    for test_set, set_inputs in inputs.items():
        parts = {"model": model.name, "train": train.key, "set": test_set, "job": spec_of(doc)}
        key = content_key("predict", parts)
        final = pipeline.run_dir / "predictions" / source / name / test_set
        done = ledger.get(key)
        if done is None or done.status != "done":
            todo.append(_Todo(labels[test_set], key, parts, test_set, set_inputs, final))
            continue
        if not final.is_dir():
            raise DataError(
                f"{final}: recorded as done but missing",
                f"delete {pipeline.run_dir / 'ledger.sqlite'} or the run folder and rerun",
            )
        steps[test_set] = StepResult(
            "predict", labels[test_set], key, "cached", done.reason or "", done.result or {}
        )
        summary.steps.append(steps[test_set])
    if todo:
        batch = _Batch(pipeline, ledger, summary, model, folder, source, train, doc)
        steps.update(_predict_together(batch, todo))
    return {t: steps[t] for t in inputs}


def _predict_together(batch: _Batch, todo: list[_Todo]) -> dict[str, StepResult]:
    """One predict job for the sets of `todo`; each set's step finished as soon as its
    predictions are in place (or it failed)."""
    pipeline, ledger = batch.pipeline, batch.ledger
    attempts = [t.begin(ledger) for t in todo]
    key, attempt = todo[0].key, attempts[0]  # the job's events go to the first set's step
    sets = [t.test_set for t in todo]
    many = f"{len(todo)} test sets ({', '.join(sets)})" if len(todo) > 1 else sets[0]
    label = f"{todo[0].label.rsplit(' on ', 1)[0]} on {many}"
    pipeline.reporter.note(f"predict: {label}")
    work = pipeline.run_dir / "work" / key[:16]
    # Outside `work`, which each attempt wipes: a job adopted by a rerun (--executor slurm) may
    # still be reading it. Its contents follow from the sets' keys, so an attempt reuses it.
    joint = content_key("combined", {"sets": [t.key for t in todo]})[:16]
    combined_dir = pipeline.run_dir / "work" / "combined" / joint
    masks = pipeline.layout.mask_dir("test")
    shared: dict[str, Any]  # what every set's result says about the job
    folders: dict[str, Path] = {}
    try:
        shutil.rmtree(work, ignore_errors=True)
        given = {t.test_set: t.inputs for t in todo}
        combined = predict_batch.combine(given, masks, combined_dir)
        outputs = work / f"outputs-{attempt}"
        job = write_job(work / "job" / "job.json", {**batch.doc, "job_id": key[:16]})
        mounts = Mounts(
            {"inputs": combined.inputs, "masks": combined.masks},
            job,
            Path(batch.train.result["checkpoints"]),
            outputs,
        )
        runtime = pipeline.profile.runtime
        launch = Launch(
            batch.model.name,
            str(batch.folder.path),
            "predict",
            mounts,
            pipeline.limits(runtime.predict_cap(combined.images, len(todo)), "runtime.predict_cap"),
            pipeline.run_dir / "logs" / f"predict-{todo[0].final.parent.name}-{batch.source}.log",
            pipeline.gpu,
        )
        outcome = pipeline.launch(ledger, key, attempt, launch, f"predict {label}")
        if not outcome.ok:
            shared = {"failed": True, "reason": outcome.reason}
        else:
            shared = {
                "setup_s": round(outcome.setup_s, 3),  # start-up to run_start: paid once a job
                "wall_s": round(outcome.wall_s, 3),
                "job": {"step": key[:16], "sets": len(todo), "images": combined.images},
                **pipeline.provenance(batch.folder.path),
            }
            folders = predict_batch.split(outputs, combined, work / "sets")
            extra = predict_batch.leftovers(outputs, combined)
            if extra:
                shared = {"failed": True, "reason": problem_line("extra", [str(p) for p in extra])}
    except HarnessError as error:
        shared = {"failed": True, "reason": str(error)}
    except Exception as error:  # contained: the run goes on with the next job
        log.debug("predict %s failed:\n%s", label, traceback.format_exc())
        shared = {"failed": True, "reason": f"harness error: {type(error).__name__}: {error}"}
    steps = {}
    for t in todo:
        result = (
            shared
            if shared.get("failed")
            else _keep(pipeline, t, folders[t.test_set], masks, shared)
        )
        steps[t.test_set] = t.finish(pipeline, ledger, batch.summary, result)
    if all(s.status == "done" for s in steps.values()):  # a failed job's files stay to look at
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(combined_dir, ignore_errors=True)
    return steps


def _keep(
    pipeline: RunContext, todo: _Todo, predicted: Path, masks: Path, shared: dict[str, Any]
) -> dict[str, Any]:
    """Check one set's predictions against its own inputs and rename them into place."""
    try:
        check = check_predictions(predicted, todo.inputs, masks, pipeline.profile.image_size)
        if not check.ok:
            return {"failed": True, "reason": "; ".join(check.problems[:5])}
        todo.final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(todo.final, ignore_errors=True)
        predicted.rename(todo.final)
    except HarnessError as error:
        return {"failed": True, "reason": str(error)}
    except Exception as error:  # contained: the other sets are kept
        log.debug("predict %s failed:\n%s", todo.label, traceback.format_exc())
        return {"failed": True, "reason": f"harness error: {type(error).__name__}: {error}"}
    return {
        "reason": "done",
        "images": sum(1 for _ in todo.inputs.glob("*.png")),
        "path": str(todo.final),
        "known_pixel_max_abs": check.known_pixel_max_abs,
        "composites": check.known_pixel_max_abs == 0,
        **shared,
    }
