"""The parts of a model's three handlers that need no torch: its config from the job, its
manifest, describe.json, and the `train` of a model that does not learn. Stdlib only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Self

from inpaint_sdk import (
    CONTRACT_VERSION,
    BadData,
    Events,
    Job,
    JobInvalid,
    atomic_target,
    start_run,
    stop_run,
)


class JobConfig:
    """Mixin for an adapter's frozen `TrainConfig` dataclass: its defaults equal the manifest's
    `defaults`, and `from_job` overrides them with the job's `hyperparameters`, `image_size` and
    `batch_size`. Checks of their own go in `__post_init__` (raise JobInvalid naming the field)."""

    @classmethod
    def from_job(cls, job: Job | Mapping[str, Any]) -> Self:
        hp = dict(job.get("hyperparameters", {}))
        names = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        known = sorted(set(names) - {"image_size", "batch_size"})
        unknown = sorted(set(hp) - set(known))
        if unknown:
            raise JobInvalid(f"hyperparameters: unknown field(s) {unknown} (allowed: {known})")
        for name, value in hp.items():
            if isinstance(names[name].default, tuple) and isinstance(value, list):
                hp[name] = tuple(value)  # JSON has arrays only; frozen configs hold tuples
        return cls(**hp, image_size=int(job["image_size"]), batch_size=int(job["batch_size"]))

    def resolved(self) -> dict[str, Any]:
        """The fields and any derived values (properties, such as TFill's working_size): what
        run_start and checkpoints record."""
        derived = [k for k, v in vars(type(self)).items() if isinstance(v, property)]
        return {**asdict(self), **{k: getattr(self, k) for k in derived}}  # type: ignore[call-overload]

    @classmethod
    def from_saved(cls, config: Mapping[str, Any]) -> Self:
        """The config a checkpoint recorded (derived entries such as TFill's working_size
        dropped)."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in config.items() if k in names})


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    """The image's manifest: `folder`/manifest.json (the adapter's own folder), else the working
    directory's (the local runner's), else /inpaint/manifest.json (the image's copy)."""
    for candidate in (folder, Path.cwd(), Path("/inpaint")):
        if candidate is not None and (Path(candidate) / "manifest.json").is_file():
            return dict(json.loads((Path(candidate) / "manifest.json").read_text()))
    raise BadData("manifest.json: not found next to the adapter, in the working dir or /inpaint")


def describe_sizes(job: Job | Mapping[str, Any]) -> list[int]:
    """The sizes a describe job asks to measure: its image_size, then each reference size
    (a repeat of image_size is measured once)."""
    sizes = [int(job["image_size"])]
    for size in job.get("reference_sizes", []):
        if int(size) not in sizes:
            sizes.append(int(size))
    return sizes


def size_report(
    size: int,
    forward_flops: int,
    uncounted_ops: list[str],
    latency_ms: Mapping[str, Any] | None,
    peak_memory_bytes: int | None,
) -> dict[str, Any]:
    """One entry of describe.json's `per_size`."""
    return {
        "image_size": size,
        "forward_flops": forward_flops,
        "uncounted_ops": list(uncounted_ops),
        "latency_ms": None if latency_ms is None else dict(latency_ms),
        "peak_memory_bytes": peak_memory_bytes,
    }


def write_describe(
    job: Job,
    events: Events,
    manifest: Mapping[str, Any],
    *,
    parameters: Mapping[str, Any],
    counter: str,
    per_size: list[dict[str, Any]],
    device: str,
) -> None:
    """Write outputs/describe.json (its `model` is the manifest's name, as the contract says)
    and emit the closing `run_stop`. `per_size` is one `size_report` per `describe_sizes(job)`;
    the first, at the job's image_size, is also written to the top-level fields that documents
    have carried since before `per_size`."""
    first = per_size[0]
    doc = {
        "contract_version": CONTRACT_VERSION,
        "model": manifest["name"],
        "parameters": dict(parameters),
        "flops": {
            "image_size": first["image_size"],
            "forward_flops": first["forward_flops"],
            "counter": counter,
            "uncounted_ops": first["uncounted_ops"],
        },
        "latency_ms": first["latency_ms"],
        "peak_memory_bytes": first["peak_memory_bytes"],
        "per_size": per_size,
        "device": device,
    }
    with atomic_target(job.outputs / "describe.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=1, allow_nan=False))
    stop_run(events, "done")


def train_nothing(
    job: Job, events: Events, config: Mapping[str, Any], checkpoint: str = "state.json"
) -> None:
    """`train` of a `trains: false` model: run_start, a checkpoint of `config` (so predict has
    one to find, as after any train), run_stop with step 0."""
    start_run(events, job, "cpu", config)
    with atomic_target(job.checkpoints / checkpoint) as tmp:
        tmp.write_text(json.dumps({**config, "step": 0}))
    events.emit("checkpoint", step=0, images_seen=0, path=checkpoint)
    stop_run(events, "done", message="non-learned baseline: nothing to train")
