"""Run tables as data: training, models and their upstreams, failed and skipped jobs, training
curves and the run's metadata (complexity has its own module, complexity.py). Unformatted
DataFrames; render.py formats them."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from harness.report.rundata import RunData
from harness.report.stats import LEVEL, RESAMPLES

NOT_RUN = "not run"
SKIPPED = "skipped"
SKIP_REASON = (
    "no step in the ledger: `inpaint-bench run` skipped this model (e.g. no upstream source "
    "for the runner) or never reached it; its run summary says which"
)


def _integers(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Keep counts integer where some are missing (pandas would make the column float)."""
    for column in columns:
        table[column] = table[column].astype("Int64")
    return table


def training_table(run: RunData) -> pd.DataFrame:
    """Tabulate every (source, model, seed) training job, failed ones included, with its stop
    reason."""
    out = []
    for step in run.of_kind("train"):
        where = run.where(step)
        result = step.result or {}
        out.append(
            {
                "source": where.source,
                "model": where.model,
                "seed": run.seed if where.seed is None else where.seed,
                "status": step.status,
                "stop_reason": result.get("reason") or step.reason,
                "budget_s": result.get("budget_s"),
                "steps": result.get("steps"),
                "images_seen": result.get("images_seen"),
                "setup_s": result.get("setup_s"),
                "train_s": result.get("train_s"),
                "wall_s": result.get("wall_s"),
                "docker_image": result.get("docker_image"),
                "folder_hash": folder_hash(result),
            }
        )
    columns = ["source", "model", "seed", "status", "stop_reason", "budget_s", "steps"]
    times = ["images_seen", "setup_s", "train_s", "wall_s"]
    table = pd.DataFrame(out, columns=[*columns, *times, "docker_image", "folder_hash"])
    return _integers(table, ["steps", "images_seen"])


def folder_hash(result: dict[str, Any]) -> str | None:
    """The image folder's hash (called `image_digest` in ledgers before it got its own name)."""
    return result.get("folder_hash") or result.get("image_digest")


PROVENANCE = ["docker_image", "base_image", "base_image_id", "folder_hash"]


def models_table(run: RunData) -> pd.DataFrame:
    """Tabulate per model (and the metrics image) what happened to it, what ran (Docker image
    ID, base image and its ID, image folder hash) and its upstream (from the model's
    images/<name>/manifest.json when that folder is here)."""
    out = []
    for model in run.models:
        steps = [s for s in run.steps if run.where(s).model == model]
        failed = [s for s in steps if s.status == "failed"]
        if not steps:
            status = SKIPPED
        elif failed:
            status = f"failed ({len(failed)} of {len(steps)} steps)"
        else:
            status = "ok"
        upstream = _manifest(run, model).get("upstream") or {}
        out.append(
            {
                "model": model,
                "status": status,
                **_provenance(run, model, steps),
                "upstream_url": upstream.get("url"),
                "upstream_commit": upstream.get("commit"),
                "license": upstream.get("license"),
            }
        )
    scores = run.of_kind("score")
    if scores:
        status = "ok" if all(s.status == "done" for s in scores) else "failed"
        out.append(
            {"model": "metrics (scorer)", "status": status, **_provenance(run, "metrics", scores)}
        )
    columns = ["model", "status", *PROVENANCE, "upstream_url", "upstream_commit", "license"]
    return pd.DataFrame(out, columns=columns)


def _provenance(run: RunData, name: str, steps: list[Any]) -> dict[str, str | None]:
    """The newest step result that names each field of what ran, else run.json's record."""
    recorded = (run.info.get("images") or {}).get(name) or {}
    found: dict[str, str | None] = {}
    for key in PROVENANCE:
        values = [
            folder_hash(s.result or {}) if key == "folder_hash" else (s.result or {}).get(key)
            for s in steps
        ]
        found[key] = next((v for v in reversed(values) if v), None) or recorded.get(key)
    return found


def _manifest(run: RunData, model: str) -> dict[str, Any]:
    path = run.images_root / model / "manifest.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def jobs_table(run: RunData) -> pd.DataFrame:
    """List every job that did not finish: failed or still running steps, the predictions and
    scores a failed training prevented, and models with no step at all (skipped)."""
    out: list[dict[str, Any]] = []
    for step in run.steps:
        if step.status == "done":
            continue
        where = run.where(step)
        out.append(
            {
                "kind": step.kind,
                "model": where.model,
                "source": where.source,
                "test_set": where.test_set,
                "status": step.status,
                "reason": step.reason,
            }
        )
        if step.kind == "train" and step.status == "failed":
            row = {"kind": "predict, score", "model": where.model, "source": where.source}
            out.append(row | {"test_set": "all", "status": NOT_RUN, "reason": "training failed"})
    for model in run.models:
        if not any(run.where(s).model == model for s in run.steps):
            row = {"kind": "all", "model": model, "source": "", "test_set": ""}
            reason = run.info.get("skipped", {}).get(model, SKIP_REASON)
            out.append(row | {"status": SKIPPED, "reason": reason})
    return pd.DataFrame(out, columns=["kind", "model", "source", "test_set", "status", "reason"])


def curves_table(run: RunData) -> pd.DataFrame:
    """Collect the training losses from the train steps' progress events: source, model, seed,
    the job's status, step, loss, value (every attempt of a resumed job; a later attempt wins
    where steps repeat)."""
    out = []
    for step in run.of_kind("train"):
        where = run.where(step)
        seed = run.seed if where.seed is None else where.seed
        for event in run.progress.get(step.key, []):
            for loss, value in (event.get("losses") or {}).items():
                if value is not None:
                    step_no = int(event["step"])
                    row = (where.source, where.model, seed, step.status, step_no, loss, value)
                    out.append(row)
    columns = ["source", "model", "seed", "status", "step", "loss", "value"]
    table = pd.DataFrame(out, columns=columns)
    cell = ["source", "model", "seed", "step", "loss"]
    return table.drop_duplicates(cell, keep="last").reset_index(drop=True)


def run_table(run: RunData) -> pd.DataFrame:
    """Tabulate the run's identity as field/value rows: versions, profile, runner, device, seed,
    data."""
    info = run.info
    fields: list[tuple[str, Any]] = [
        ("run folder", str(run.run_dir)),
        ("harness version", info.get("harness_version")),
        ("profile", info.get("profile")),
        ("runner", info.get("runner")),
        ("device", info.get("device")),
        ("gpu", info.get("gpu")),
        ("seed", info.get("seed")),
        ("training seeds", ", ".join(map(str, info.get("seeds") or [run.seed]))),
        ("snapshots (training s)", ", ".join(f"{s:g}" for s in info.get("snapshots_s") or [])),
        ("image size", info.get("image_size")),
        ("data root", info.get("data_root")),
        ("data identity", info.get("data_identity")),
        ("models", ", ".join(map(str, info.get("models", [])))),
        ("sources", ", ".join(run.sources)),
        ("test sets", ", ".join(run.test_sets)),
        (
            "confidence intervals",
            f"{LEVEL:.0%} percentile bootstrap over images, {RESAMPLES} resamples, seed {run.seed}",
        ),
    ]
    return pd.DataFrame(fields, columns=["field", "value"])
