"""The describe step: each model's parameters, and at the run's image size and at 256² (the
reference, jobs.REFERENCE_SIZE) its FLOPs of one forward, uncounted operations, latency and
peak CUDA memory, for the report's complexity table."""

from __future__ import annotations

import json
import shutil
from typing import Any

from harness.config import ModelEntry
from harness.contract import validate_describe
from harness.images import ImageFolder
from harness.jobs import describe_job, spec_of, write_job
from harness.ledger import Ledger
from harness.runners.base import Launch, Mounts
from harness.steps import RunContext, RunSummary


def describe(
    pipeline: RunContext,
    ledger: Ledger,
    summary: RunSummary,
    model: ModelEntry,
    folder: ImageFolder,
) -> None:
    """Record what the model's `describe` says: parameters, and per size FLOPs, latency and
    peak CUDA memory."""
    if "describe" not in folder.manifest["commands"]:
        return
    doc = describe_job("", pipeline.profile, model, pipeline.device, folder.manifest)
    parts = {"model": model.name, "image": folder.digest, "job": spec_of(doc)}

    def body(key: str, attempt: int) -> dict[str, Any]:
        work = pipeline.run_dir / "describe" / model.name
        shutil.rmtree(work, ignore_errors=True)
        job = write_job(work / "job" / "job.json", {**doc, "job_id": key[:16]})
        launch = Launch(
            model.name,
            str(folder.path),
            "describe",
            Mounts({}, job, work / "checkpoints", work / "outputs"),
            pipeline.limits(600.0),
            pipeline.run_dir / "logs" / f"describe-{model.name}.log",
            pipeline.gpu,
        )
        outcome = pipeline.launch(ledger, key, attempt, launch, f"describe {model.name}")
        found = work / "outputs" / "describe.json"
        if not outcome.ok or not found.is_file():
            return {
                "failed": True,
                "reason": outcome.reason
                if not outcome.ok
                else f"{found}: describe wrote no describe.json",
            }

        report = validate_describe(json.loads(found.read_text()), str(found))
        return {
            "reason": "done",
            "describe": report,
            "folder_hash": folder.digest,
            **pipeline.provenance(folder.path),
        }

    pipeline.step(ledger, summary, "describe", model.name, parts, body)
