"""Job documents for contract v1, built from a resolved profile and validated before any start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.config import ModelEntry, Profile
from harness.contract import CONTRACT_VERSION, check_job_fits_manifest, validate_job
from harness.data.atomic import atomic_write_text
from harness.errors import ConfigError, ContractViolation


def _common(
    command: str,
    job_id: str,
    profile: Profile,
    model: ModelEntry,
    device: str,
    manifest: dict[str, Any],
    seed: int | None = None,
) -> dict[str, Any]:
    hyper = {**manifest.get("defaults", {}).get("hyperparameters", {}), **model.hyperparameters}
    return {
        "contract_version": CONTRACT_VERSION,
        "command": command,
        "job_id": job_id,
        "seed": profile.seed if seed is None else seed,
        "device": device,
        "image_size": profile.image_size,
        "batch_size": model.batch_size,
        "hyperparameters": hyper,
    }


def train_job(
    job_id: str,
    profile: Profile,
    model: ModelEntry,
    device: str,
    manifest: dict[str, Any],
    max_steps: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """A train job; `seed` defaults to the profile's. The profile's snapshots inside the budget
    go in `snapshot_at_s` only for a manifest that claims them, and only when there are some, so
    other jobs (and their ledger keys) are those of a run without snapshots."""
    doc = {
        **_common("train", job_id, profile, model, device, manifest, seed),
        "budget_s": model.train_budget_s,
        "max_steps": max_steps,
        "progress_every_s": 10 if model.train_budget_s >= 120 else 2,
        "checkpoint_every_s": 600,
        "resume": True,
        "data": {
            "train_images": "images/train",
            "train_masks": "masks/train",
            "val_images": "images/val",
            "val_masks": "masks/val",
        },
    }
    snapshots = profile.snapshots_for(model)
    if snapshots and manifest.get("snapshots", False):
        doc["snapshot_at_s"] = list(snapshots)
    fits(doc, model, manifest)
    return doc


def fits(doc: dict[str, Any], model: ModelEntry, manifest: dict[str, Any]) -> None:
    """Refuse, before anything starts, a job the model's manifest rules out (size, batch,
    command, hyperparameter names and types), naming the model and its manifest."""
    try:
        check_job_fits_manifest(doc, manifest, f"models.{model.name}")
    except ContractViolation as error:
        raise ConfigError(error.message, f"see {model.image}/manifest.json") from None


def predict_job(
    job_id: str,
    profile: Profile,
    model: ModelEntry,
    device: str,
    manifest: dict[str, Any],
    seed: int | None = None,
    snapshot_s: float | None = None,
) -> dict[str, Any]:
    """A predict job, with the training seed (a model that draws noise at test time draws it
    from there) and, for a snapshot, `snapshot_s`; the final checkpoint's has no such key."""
    doc = {
        **_common("predict", job_id, profile, model, device, manifest, seed),
        "data": {"inputs": "inputs", "masks": "masks"},
        "output_dir": ".",
    }
    if snapshot_s is not None:
        doc["snapshot_s"] = snapshot_s
    return doc


# The reference size of the complexity table: 256², the seed profile's size (benchmark.yaml) and
# the paper's, so that a run at another size (the sample profile's 128) still has a column that
# compares across runs.
REFERENCE_SIZE = 256


def describe_job(
    job_id: str,
    profile: Profile,
    model: ModelEntry,
    device: str,
    manifest: dict[str, Any],
    reference_sizes: tuple[int, ...] = (REFERENCE_SIZE,),
) -> dict[str, Any]:
    """The describe job: one image per forward at the run's image_size, then at each reference
    size that differs from it and that the model's manifest allows (a model capped below 256
    has no reference column), each size once."""
    common = _common("describe", job_id, profile, model, device, manifest)
    doc = {
        **common,
        "batch_size": 1,
        "measure_latency": True,
        # A CPU forward of the big models at 256² takes seconds: fewer timed runs there.
        "latency_runs": 10 if device == "cuda" else 3,
    }
    sizes: list[int] = []
    for size in reference_sizes:
        if size == profile.image_size or size in sizes:
            continue
        try:
            check_job_fits_manifest({**doc, "image_size": size}, manifest, model.name)
        except ContractViolation:
            continue
        sizes.append(size)
    return {**doc, "reference_sizes": sizes}


def write_job(path: Path, doc: dict[str, Any]) -> Path:
    """Validate `doc` against contract v1, then write it (atomically) for a container to read."""
    validate_job(doc, str(path))
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


def spec_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The part of a job that determines its result: everything but its id."""
    return {k: v for k, v in doc.items() if k != "job_id"}
