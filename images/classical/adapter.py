"""Classical baseline: OpenCV fast-marching inpainting (Telea 2004) behind contract v1.

    python adapter.py train    $INPAINT_JOB   # nothing to learn: reports zero steps
    python adapter.py predict  $INPAINT_JOB   # one PNG per input, known pixels untouched
    python adapter.py describe $INPAINT_JOB

Papers include such a baseline; it is a real row in every table. No torch in this image, so the
handlers are written with the torch-free helpers of inpaint_sdk and inpaint_handlers.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from inpaint_handlers import (
    JobConfig,
    describe_sizes,
    read_manifest,
    size_report,
    train_nothing,
    write_describe,
)
from inpaint_sdk import Events, Job, JobInvalid, StopFlag, predict_loop, run_and_exit, start_run

METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
MANIFEST = read_manifest(Path(__file__).resolve().parent)


@dataclass(frozen=True)
class Settings(JobConfig):
    """Defaults equal manifest.json's."""

    radius: int = 5
    method: str = "telea"
    image_size: int = 256
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise JobInvalid(
                f"hyperparameters.method: expected one of {sorted(METHODS)}, got {self.method!r}"
            )


def inpaint(rgb: np.ndarray, hole: np.ndarray, radius: int, method: str) -> np.ndarray:
    """uint8 HxWx3 with `hole` True where unknown → uint8 HxWx3 whose known pixels are `rgb`'s."""
    filled = cv2.inpaint(rgb, hole.astype(np.uint8) * 255, radius, METHODS[method])
    return np.where(hole[..., None], filled, rgb)


def train(job: Job, events: Events, stop: StopFlag) -> None:
    cfg = Settings.from_job(job)
    train_nothing(job, events, {"radius": cfg.radius, "method": cfg.method}, "classical.json")


def predict(job: Job, events: Events, stop: StopFlag) -> None:
    cfg = Settings.from_job(job)

    def infer(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        pairs = zip(rgb, hole, strict=True)
        return np.stack([inpaint(x, h, cfg.radius, cfg.method) for x, h in pairs])

    predict_loop(job, events, stop, "cpu", asdict(cfg), infer)


def describe(job: Job, events: Events, stop: StopFlag) -> None:
    """No network, so no FLOP count: cv2.inpaint is listed as uncounted at every size; latency
    of `batch_size` images per timed run, as for networks; no CUDA, so no peak memory."""
    cfg = Settings.from_job(job)
    start_run(events, job, "cpu", asdict(cfg))
    per_size = []
    for size in describe_sizes(job):
        rgb = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
        hole = np.zeros((size, size), bool)
        hole[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
        latency = None
        if job.get("measure_latency", False):
            runs, times = int(job.get("latency_runs", 20)), []
            for _ in range(runs):
                start = time.perf_counter()
                for _ in range(cfg.batch_size):
                    inpaint(rgb, hole, cfg.radius, cfg.method)
                times.append((time.perf_counter() - start) * 1000)
            latency = {"median": statistics.median(times), "runs": runs}
        per_size.append(size_report(size, 0, ["cv2.inpaint"], latency, None))
    write_describe(
        job,
        events,
        MANIFEST,
        parameters={"generator": 0, "discriminator": None, "other": {}},
        counter="none (not a network)",
        per_size=per_size,
        device="cpu",
    )


def main() -> None:
    run_and_exit({"train": train, "predict": predict, "describe": describe})


if __name__ == "__main__":
    main()
