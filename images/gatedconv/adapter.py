"""gatedconv: the reference learned model and the template for adding one, behind contract v1.

    python adapter.py train    $INPAINT_JOB   # train until budget, max_steps or SIGTERM; resumes
    python adapter.py predict  $INPAINT_JOB   # one composited PNG per input
    python adapter.py describe $INPAINT_JOB   # parameters, FLOPs, latency, peak memory

Read top to bottom: config, conventions, train, predict, describe, main. A new model copies this
file and replaces the model, the loss and `to_model_space`/`from_model_space`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from inpaint_sdk import (
    Budget,
    Events,
    Job,
    StopFlag,
    atomic_target,
    load_folder,
    predict_loop,
    read_hole,
    read_rgb,
    run_and_exit,
)
from inpaint_torch import (
    check_same,
    count_flops,
    count_parameters,
    load_checkpoint,
    measure_latency,
    peak_memory_bytes,
    pick_device,
    restore_rng,
    rng_state,
    save_checkpoint,
    seed_all,
    set_threads,
)
from model import GatedUNet

CHECKPOINT = "gatedconv.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Defaults equal manifest.json's; the job's `hyperparameters` override them by name."""

    width: int = 16
    lr: float = 1e-3
    hole_weight: float = 6.0
    valid_weight: float = 1.0
    image_size: int = 256
    batch_size: int = 8

    @classmethod
    def from_job(cls, job: Job) -> TrainConfig:
        hp = dict(job.get("hyperparameters", {}))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(hp) - known)
        if unknown:
            raise ValueError(
                f"hyperparameters: unknown field(s) {unknown} (allowed: {sorted(known)})"
            )
        return cls(**{**hp, "image_size": job["image_size"], "batch_size": job["batch_size"]})


# --- conventions: the only place value range and mask polarity change ------------------------


def to_model_space(rgb: np.ndarray, hole: np.ndarray, device: torch.device):
    """uint8 NxHxWx3 and bool NxHxW (True = hole) → image in [-1, 1] and float mask, 1 = hole."""
    image = torch.from_numpy(rgb).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    mask = torch.from_numpy(hole).to(device).float().unsqueeze(1)
    return image, mask


def from_model_space(pred: torch.Tensor, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """[-1, 1] prediction → uint8, with the input's known pixels pasted back exactly."""
    out = ((pred.clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return np.where(hole[..., None], out, rgb)


def forward(model: GatedUNet, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return model(image * (1.0 - mask), mask)


# --- train -----------------------------------------------------------------------------------


def train(job: Job, events: Events, stop: StopFlag) -> None:
    cfg = TrainConfig.from_job(job)
    device = pick_device(job["device"])
    set_threads()
    rng = seed_all(int(job["seed"]))
    train_images, train_masks = job.data_path("train_images"), job.data_path("train_masks")
    assert train_images is not None and train_masks is not None
    # Decoded once and kept in memory: the seed's 1,000 images at 256² are about 200 MB.
    images = load_folder(train_images, read_rgb)
    holes = load_folder(train_masks, read_hole)
    if images.shape[1:3] != (cfg.image_size, cfg.image_size):
        raise ValueError(
            f"{train_images}: images are {images.shape[1:3]}, job says {cfg.image_size}"
        )

    model = GatedUNet(cfg.width).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step = images_seen = 0
    trained_s = 0.0
    path = job.checkpoints / CHECKPOINT
    if job.get("resume", True) and path.is_file():
        saved = load_checkpoint(path)
        check_same(saved["config"], asdict(cfg), ["width", "image_size"])
        model.load_state_dict(saved["model"], strict=True)
        optimizer.load_state_dict(saved["optimizer"])
        step, images_seen, trained_s = saved["step"], saved["images_seen"], saved["trained_s"]
        restore_rng(saved["rng"], rng)

    def checkpoint() -> None:
        save_checkpoint(
            path,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "images_seen": images_seen,
                "config": asdict(cfg),
                "trained_s": trained_s + budget.elapsed(),
                "rng": rng_state(rng),
            },
        )
        events.emit("checkpoint", step=step, images_seen=images_seen, path=CHECKPOINT)

    events.emit(
        "run_start",
        contract_version="1",
        command="train",
        job_id=job["job_id"],
        device=device.type,
        config=asdict(cfg),
        resumed_from_step=step,
    )
    # The budget is total training time, so a resumed run only gets what is left of it.
    budget = Budget(float(job["budget_s"]) - trained_s)
    max_steps = job.get("max_steps")
    last_progress = last_checkpoint = time.monotonic()
    loss = torch.zeros(())
    while True:
        reason = (
            "sigterm"
            if stop
            else "budget"
            if budget.spent()
            else "max_steps"
            if max_steps is not None and step >= max_steps
            else None
        )
        if reason:
            break
        # one optimiser step on a random batch with random masks and flips
        pick = rng.integers(0, len(images), cfg.batch_size)
        pick_mask = rng.integers(0, len(holes), cfg.batch_size)
        image, mask = to_model_space(images[pick], holes[pick_mask], device)
        if rng.random() < 0.5:
            image = image.flip(-1)
        pred = forward(model, image, mask)
        l1 = (pred - image).abs()
        loss = cfg.hole_weight * (l1 * mask).mean() + cfg.valid_weight * (l1 * (1 - mask)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        images_seen += cfg.batch_size

        now = time.monotonic()
        if now - last_progress >= float(job.get("progress_every_s", 10)):
            # .item() syncs CUDA: only at the progress interval
            events.emit(
                "progress",
                step=step,
                images_seen=images_seen,
                losses={"total": loss.item()},
                lr=cfg.lr,
            )
            last_progress = now
        if now - last_checkpoint >= float(job.get("checkpoint_every_s", 600)):
            checkpoint()
            last_checkpoint = now

    events.emit(
        "progress", step=step, images_seen=images_seen, losses={"total": loss.item()}, lr=cfg.lr
    )
    checkpoint()
    events.emit(
        "run_stop",
        status="stopped" if reason == "sigterm" else "completed",
        reason=reason,
        step=step,
        images_seen=images_seen,
        message=None,
    )


# --- predict ---------------------------------------------------------------------------------


def load_model(job: Job, device: torch.device) -> GatedUNet:
    saved = load_checkpoint(job.checkpoints / CHECKPOINT)
    model = GatedUNet(saved["config"]["width"]).to(device)
    model.load_state_dict(saved["model"], strict=True)
    return model.eval()


def predict(job: Job, events: Events, stop: StopFlag) -> None:
    device = pick_device(job["device"])
    set_threads()
    model = load_model(job, device)

    def infer(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            pred = forward(model, *to_model_space(rgb, hole, device))
        return from_model_space(pred, rgb, hole)

    predict_loop(job, events, stop, device.type, {"batch_size": job["batch_size"]}, infer)


# --- describe --------------------------------------------------------------------------------


def describe(job: Job, events: Events, stop: StopFlag) -> None:
    cfg = TrainConfig.from_job(job)
    device = pick_device(job["device"])
    events.emit(
        "run_start",
        contract_version="1",
        command="describe",
        job_id=job["job_id"],
        device=device.type,
        config=asdict(cfg),
        resumed_from_step=0,
    )
    model = GatedUNet(cfg.width).to(device).eval()
    size = cfg.image_size
    image = torch.zeros(1, 3, size, size, device=device)
    mask = torch.zeros(1, 1, size, size, device=device)
    mask[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1

    flops, uncounted = count_flops(lambda: forward(model, image, mask))
    latency = (
        measure_latency(
            lambda: forward(model, image, mask), device, int(job.get("latency_runs", 10))
        )
        if job.get("measure_latency", True)
        else None
    )
    report = {
        "contract_version": "1",
        "model": "gatedconv",
        "parameters": {"generator": count_parameters(model), "discriminator": None, "other": {}},
        "flops": {
            "image_size": size,
            "forward_flops": flops,
            "counter": "torch.utils.flop_counter.FlopCounterMode",
            "uncounted_ops": uncounted,
        },
        "latency_ms": latency,
        "peak_memory_bytes": peak_memory_bytes(device),
        "device": device.type,
    }
    with atomic_target(job.outputs / "describe.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    events.emit("run_stop", status="completed", reason="done", step=0, images_seen=0, message=None)


def main() -> None:
    run_and_exit({"train": train, "predict": predict, "describe": describe})


if __name__ == "__main__":
    main()
