"""The predict step: one model's predictions of one test set from one trained checkpoint, checked
(one PNG per input, same name and size, known pixels measured) before they are kept."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from harness.checkpoints import Checkpoint
from harness.config import ModelEntry
from harness.errors import DataError
from harness.images import ImageFolder
from harness.jobs import predict_job, spec_of, write_job
from harness.ledger import Ledger
from harness.predictions import check_predictions
from harness.runners.base import Launch, Mounts
from harness.steps import RunContext, RunSummary, StepResult


def predict(
    pipeline: RunContext,
    ledger: Ledger,
    summary: RunSummary,
    model: ModelEntry,
    folder: ImageFolder,
    source: str,
    test_set: str,
    train: StepResult,
    inputs: Path,
    checkpoint: Checkpoint,
) -> StepResult:
    """Predict `test_set` from one checkpoint of a training (its final one, or a snapshot): the
    predictions go to RUN_DIR/predictions/<source>/<model><tag>/<test_set>/, renamed into place
    before the step is done."""
    label = f"{model.name} ({checkpoint.label(source)}) on {test_set}"
    if train.status == "failed":
        step = StepResult("predict", label, "", "failed", "not run: training failed")
        summary.steps.append(step)
        return step
    doc = predict_job(
        "",
        pipeline.profile,
        model,
        pipeline.device,
        folder.manifest,
        checkpoint.seed,
        checkpoint.snapshot_s,
    )
    parts = {"model": model.name, "train": train.key, "set": test_set, "job": spec_of(doc)}
    name = model.name + checkpoint.tag
    final = pipeline.run_dir / "predictions" / source / name / test_set

    def body(key: str, attempt: int) -> dict[str, Any]:
        work = pipeline.run_dir / "work" / key[:16]
        outputs = work / f"outputs-{attempt}"
        shutil.rmtree(work, ignore_errors=True)
        job = write_job(work / "job" / "job.json", {**doc, "job_id": key[:16]})
        masks = pipeline.layout.mask_dir("test")
        mounts = Mounts(
            {"inputs": inputs, "masks": masks}, job, Path(train.result["checkpoints"]), outputs
        )
        n = sum(1 for _ in inputs.glob("*.png"))
        launch = Launch(
            model.name,
            str(folder.path),
            "predict",
            mounts,
            pipeline.limits(pipeline.profile.runtime.predict_cap(n), "runtime.predict_cap"),
            pipeline.run_dir / "logs" / f"predict-{name}-{source}.log",
            pipeline.gpu,
        )
        outcome = pipeline.launch(ledger, key, attempt, launch, f"predict {label}")
        if not outcome.ok:
            return {"failed": True, "reason": outcome.reason}
        check = check_predictions(outputs, inputs, masks, pipeline.profile.image_size)
        if not check.ok:
            return {"failed": True, "reason": "; ".join(check.problems[:5])}
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        outputs.rename(final)
        shutil.rmtree(work, ignore_errors=True)
        return {
            "reason": "done",
            "images": n,
            "path": str(final),
            "known_pixel_max_abs": check.known_pixel_max_abs,
            "composites": check.known_pixel_max_abs == 0,
            "wall_s": round(outcome.wall_s, 3),
            **pipeline.provenance(folder.path),
        }

    step = pipeline.step(ledger, summary, "predict", label, parts, body)
    if step.status == "cached" and not final.is_dir():
        raise DataError(
            f"{final}: recorded as done but missing",
            f"delete {pipeline.run_dir / 'ledger.sqlite'} or the run folder and rerun",
        )
    return step
