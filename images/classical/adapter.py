"""Classical baseline: OpenCV fast-marching inpainting (Telea 2004) behind contract v1.

    python adapter.py train    $INPAINT_JOB   # nothing to learn: reports zero steps
    python adapter.py predict  $INPAINT_JOB   # one PNG per input, known pixels untouched
    python adapter.py describe $INPAINT_JOB

Papers include such a baseline; it is a real row in every table.
"""

from __future__ import annotations

import json
import statistics
import time

import cv2
import numpy as np
from inpaint_sdk import (
    Events,
    Job,
    StopFlag,
    atomic_target,
    output_dir,
    predict_pairs,
    read_hole,
    read_rgb,
    run_and_exit,
    write_png,
)

METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def inpaint(rgb: np.ndarray, hole: np.ndarray, radius: int, method: str) -> np.ndarray:
    """uint8 HxWx3 with `hole` True where unknown → uint8 HxWx3 whose known pixels are `rgb`'s."""
    filled = cv2.inpaint(rgb, hole.astype(np.uint8) * 255, radius, METHODS[method])
    return np.where(hole[..., None], filled, rgb)


def _settings(job: Job) -> tuple[int, str]:
    hp = job.get("hyperparameters", {})
    method = str(hp.get("method", "telea"))
    if method not in METHODS:
        raise ValueError(
            f"hyperparameters.method: expected one of {sorted(METHODS)}, got {method!r}"
        )
    return int(hp.get("radius", 5)), method


def train(job: Job, events: Events, stop: StopFlag) -> None:
    radius, method = _settings(job)
    events.emit(
        "run_start",
        contract_version="1",
        command="train",
        job_id=job["job_id"],
        device="cpu",
        config={"radius": radius, "method": method},
        resumed_from_step=0,
    )
    with atomic_target(job.checkpoints / "classical.json") as tmp:
        tmp.write_text(json.dumps({"radius": radius, "method": method, "step": 0}))
    events.emit("checkpoint", step=0, images_seen=0, path="classical.json")
    events.emit(
        "run_stop",
        status="completed",
        reason="done",
        step=0,
        images_seen=0,
        message="non-learned baseline: nothing to train",
    )


def predict(job: Job, events: Events, stop: StopFlag) -> None:
    radius, method = _settings(job)
    pairs = predict_pairs(job)
    out = output_dir(job)
    events.emit(
        "run_start",
        contract_version="1",
        command="predict",
        job_id=job["job_id"],
        device="cpu",
        config={"radius": radius, "method": method},
        resumed_from_step=0,
    )
    for done, (name, image, mask) in enumerate(pairs, start=1):
        if stop:
            events.emit(
                "run_stop",
                status="stopped",
                reason="sigterm",
                step=done - 1,
                images_seen=done - 1,
                message=None,
            )
            return
        write_png(out / name, inpaint(read_rgb(image), read_hole(mask), radius, method))
        if done % 25 == 0 or done == len(pairs):
            events.emit("progress", step=done, images_seen=done, losses={}, total=len(pairs))
    events.emit(
        "run_stop",
        status="completed",
        reason="done",
        step=len(pairs),
        images_seen=len(pairs),
        message=None,
    )


def describe(job: Job, events: Events, stop: StopFlag) -> None:
    radius, method = _settings(job)
    size = int(job["image_size"])
    events.emit(
        "run_start",
        contract_version="1",
        command="describe",
        job_id=job["job_id"],
        device="cpu",
        config={"radius": radius, "method": method},
        resumed_from_step=0,
    )
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    hole = np.zeros((size, size), bool)
    hole[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
    latency = None
    if job.get("measure_latency", True):
        runs = int(job.get("latency_runs", 10))
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            inpaint(rgb, hole, radius, method)
            times.append((time.perf_counter() - start) * 1000)
        latency = {"median": statistics.median(times), "runs": runs}
    report = {
        "contract_version": "1",
        "model": "classical",
        "parameters": {"generator": 0, "discriminator": None, "other": {}},
        "flops": {
            "image_size": size,
            "forward_flops": 0,
            "counter": "none (not a network)",
            "uncounted_ops": ["cv2.inpaint"],
        },
        "latency_ms": latency,
        "peak_memory_bytes": None,
        "device": "cpu",
    }
    with atomic_target(job.outputs / "describe.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    events.emit("run_stop", status="completed", reason="done", step=0, images_seen=0, message=None)


def main() -> None:
    run_and_exit({"train": train, "predict": predict, "describe": describe})


if __name__ == "__main__":
    main()
