"""What contracts/README.md says in words and no schema can express, as checks over a finished
job's documents: `describe.json` and the event stream. `inpaint-bench validate` runs them; each
returns the broken rules as messages (empty when the job kept them all)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any


def describe_problems(doc: dict[str, Any], job: dict[str, Any], name: str) -> list[str]:
    """What describe.json breaks of contracts/README.md's words that its schema cannot say."""
    problems = []
    if doc["model"] != name:
        problems.append(f"model is {doc['model']!r}; the contract says the manifest name {name!r}")
    if doc["flops"]["image_size"] != job["image_size"]:
        problems.append(
            f"flops.image_size is {doc['flops']['image_size']}, the job's is {job['image_size']}"
        )
    if not job.get("measure_latency", False):
        for field_name in ("latency_ms", "peak_memory_bytes"):
            if doc[field_name] is not None:
                problems.append(f"{field_name} must be null unless the job sets measure_latency")
    return problems + _size_problems(doc, job)


def _size_problems(doc: dict[str, Any], job: dict[str, Any]) -> list[str]:
    """per_size against the job's sizes and the top-level fields; peak memory only on CUDA."""
    problems = []
    per_size = doc.get("per_size", [])
    cpu = doc["device"] == "cpu"
    if cpu and doc["peak_memory_bytes"] is not None:
        problems.append("peak_memory_bytes must be null on cpu (it is the CUDA peak)")
    if cpu and any(entry["peak_memory_bytes"] is not None for entry in per_size):
        problems.append("per_size[].peak_memory_bytes must be null on cpu (it is the CUDA peak)")
    asked = [
        job["image_size"],
        *(s for s in job.get("reference_sizes", []) if s != job["image_size"]),
    ]
    if job.get("reference_sizes") and [e["image_size"] for e in per_size] != asked:
        found = [e["image_size"] for e in per_size]
        problems.append(f"per_size measures sizes {found}; the job asks for {asked}, in that order")
    if per_size:
        first, flops = per_size[0], doc["flops"]
        top = {
            "image_size": flops["image_size"],
            "forward_flops": flops["forward_flops"],
            "uncounted_ops": flops.get("uncounted_ops", []),
            "latency_ms": doc["latency_ms"],
            "peak_memory_bytes": doc["peak_memory_bytes"],
        }
        differ = [k for k, v in top.items() if first[k] != v]
        if differ:
            problems.append(f"per_size[0] differs from the top-level fields in {differ}")
    return problems


def stream_problems(
    events: list[dict[str, Any]], job: dict[str, Any], trains: bool = True
) -> list[str]:
    """What an event stream breaks of contracts/README.md's words that the event schema cannot
    say: run_start first and run_stop last (once), run_start agreeing with the job, a fresh
    start from step 0, counters that never go back, checkpoint paths inside their mount,
    max_steps respected, and step 0 for a model that does not train."""
    if not events:
        return ["no events"]
    problems = []
    kinds = [e["event"] for e in events]
    if kinds == ["run_stop"] and events[0]["status"] == "failed":
        return []  # failed before it could start: a run_stop alone is what the contract asks
    if kinds[0] != "run_start":
        problems.append(f"the first event is {kinds[0]}, not run_start (warnings come after it)")
    if kinds.count("run_stop") != 1 or kinds[-1] != "run_stop":
        problems.append(f"{kinds.count('run_stop')} run_stop event(s); one, the last, is due")
    start = next((e for e in events if e["event"] == "run_start"), None)
    for key in ("command", "job_id"):
        if start is not None and start[key] != job[key]:
            problems.append(f"run_start.{key} is {start[key]!r}, the job's is {job[key]!r}")
    fresh = job["command"] != "train" or not job.get("resume", True)
    if start is not None and fresh and start["resumed_from_step"] != 0:
        problems.append(f"resumed_from_step is {start['resumed_from_step']} on a fresh start")
    counted = [e for e in events if e["event"] in ("progress", "checkpoint", "run_stop")]
    for key in ("step", "images_seen"):
        values = [int(e.get(key, 0)) for e in counted if e["event"] != "run_stop" or e.get(key)]
        if any(b < a for a, b in pairwise(values)):
            problems.append(f"{key} goes back: {values}")
    for event in events:
        path = event.get("path", "") if event["event"] == "checkpoint" else ""
        if path.startswith("/") or ".." in Path(path).parts:
            problems.append(f"checkpoint path {path!r} leaves the checkpoints mount")
    stop = events[-1] if kinds[-1] == "run_stop" else None
    if stop is not None and job["command"] == "train" and stop["status"] != "failed":
        max_steps = job.get("max_steps")
        if max_steps is not None and stop["step"] > max_steps:
            problems.append(f"run_stop.step {stop['step']} is past max_steps {max_steps}")
        if not trains and (stop["step"], stop["images_seen"]) != (0, 0):
            problems.append("a model that does not train stops at step 0 with 0 images_seen")
    return problems
