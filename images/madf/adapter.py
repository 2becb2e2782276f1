"""madf: MADF (Zhu et al., TIP 2021) from the authors' code, behind contract v1.

    python adapter.py train    $INPAINT_JOB   # train until budget, max_steps or SIGTERM; resumes
    python adapter.py predict  $INPAINT_JOB   # one composited PNG per input
    python adapter.py describe $INPAINT_JOB   # parameters, FLOPs, latency, peak memory

The network, the VGG16 loss features, the loss and the forward that feeds it are imported from the
authors' checkout at $INPAINT_UPSTREAM (default /inpaint/upstream; Pytorch-MADF 6fdbf44, GPL-3.0,
which is why only this image imports it). The loop replays train.py:119-148 with
`--use_incremental_supervision` (train.sh:1): one Adam step on the weighted loss sum per `step`.
Not reproduced: the authors' Resize(572)+RandomCrop(512) zoom (data arrive at image_size), their
data loader, DataParallel/.cuda() and the periodic eval.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from inpaint_sdk import (
    BadData,
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
    ensure_pretrained,
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
from PIL import Image

CHECKPOINT = "madf.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Defaults equal manifest.json's (the authors' train.py:50-66 with train.sh:1's flags)."""

    lr: float = 2e-4
    valid_weight: float = 1.0
    hole_weight: float = 6.0
    tv_weight: float = 0.1
    prc_weight: float = 0.05
    style_weight: float = 120.0
    use_incremental_supervision: bool = True
    n_refinement_D: int = 2
    mask_rotation_deg: float = 10.0
    image_size: int = 256
    batch_size: int = 4

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

    def args(self) -> argparse.Namespace:
        """The authors' `args`: MADFNet reads n_refinement_D, the loss the flag and *_weight."""
        return argparse.Namespace(**asdict(self))


@cache
def upstream() -> SimpleNamespace:
    """net.py, loss.py and data_parallel.py of the checkout, under private module names.

    Private names because `loss`/`net` are common top-level names (AOT-GAN has a `loss`
    package): importing them plainly would shadow another adapter's in the same process.
    """
    root = Path(os.environ.get("INPAINT_UPSTREAM", "/inpaint/upstream"))
    if not (root / "net.py").is_file():
        raise BadData(f"{root}: no Pytorch-MADF checkout (set INPAINT_UPSTREAM)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))  # net.py:6 does `from normalization import PN`
    modules = {}
    for name in ("net", "loss", "data_parallel"):
        spec = importlib.util.spec_from_file_location(f"madf_upstream_{name}", root / f"{name}.py")
        assert spec is not None and spec.loader is not None
        modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    # loss.py:40,56,72 print on every call; keep the logs small.
    modules["loss"].print = lambda *args, **kwargs: None
    return SimpleNamespace(**modules)


# --- conventions: the only place value range and mask polarity change ------------------------
# MADF: ImageNet-normalised images (train.py:80-85, opt.py:1-2), a 3-channel mask with
# 1 = known (dataset.py:49-50, loss.py:42 hole = 1 - mask) and input = gt * mask (dataset.py:51).
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def to_model_space(rgb: np.ndarray, hole: np.ndarray, device: torch.device):
    """uint8 NxHxWx3 and bool NxHxW (True = hole) → (masked input, mask, gt), each Nx3xHxW.

    gt is ToTensor + Normalize(MEAN, STD); mask is 1.0 = known, 0.0 = hole on 3 channels;
    masked = gt * mask, so holes hold 0 (the ImageNet-mean grey).
    """
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    # contiguous NCHW like ToTensor: a channels-last batch takes other conv kernels, whose
    # rounding Adam turns into different updates of the (noise-gradient) biases before BN
    gt = torch.from_numpy(rgb).to(device).permute(0, 3, 1, 2).contiguous().float()
    gt = (gt / 255.0 - mean) / std
    mask = torch.from_numpy(~hole).to(device).float().unsqueeze(1).expand(-1, 3, -1, -1)
    return gt * mask, mask.contiguous(), gt


def from_model_space(output: torch.Tensor, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Normalised Nx3xHxW output → uint8 NxHxWx3, the input's known pixels pasted back exactly.

    Hole pixels are what test.py:33-38 writes: unnormalize (util/image.py:5-9) and save_image's
    x*255+0.5, clamped to [0, 255]; known pixels come from `rgb`, in uint8 space.
    """
    mean = torch.tensor(MEAN, device=output.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=output.device).view(1, 3, 1, 1)
    out = ((output * std + mean) * 255 + 0.5).clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
    return np.where(hole[..., None], out, rgb)


def augment(rgb, hole, rng: np.random.Generator, degrees: float):
    """The authors' cheap augmentations: image flip (train.py:83); mask RandomRotation(10) with
    nearest resampling and fill 0 = hole, then flip (train.py:87), drawn from `rng`."""
    rgb = np.where(rng.random(len(rgb))[:, None, None, None] < 0.5, rgb[:, :, ::-1], rgb)
    known = []
    for h in hole:
        image = Image.fromarray(np.where(h, 0, 255).astype(np.uint8))
        angle = float(rng.uniform(-degrees, degrees))
        known.append(np.asarray(image.rotate(angle, Image.Resampling.NEAREST, fillcolor=0)) >= 128)
    hole = ~np.stack(known)
    return rgb, np.where(rng.random(len(hole))[:, None, None] < 0.5, hole[:, :, ::-1], hole)


def build_model(cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    return upstream().net.MADFNet(layer_size=7, args=cfg.args()).to(device)  # train.py:101


# --- train -----------------------------------------------------------------------------------


def train_step(full, criterion, optimizer, args, masked, mask, gt) -> dict[str, torch.Tensor]:
    """One optimiser step as train.py:124-148 takes it; the unweighted terms, detached."""
    outputs, feats, comp_feats, feat_gt = full(masked, mask, gt)
    losses = criterion(masked, mask, outputs, gt, comp_feats, feats, feat_gt)
    loss = sum(getattr(args, f"{key}_weight") * value for key, value in losses.items())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {key: value.detach() for key, value in losses.items()}


def train(job: Job, events: Events, stop: StopFlag) -> None:
    cfg = TrainConfig.from_job(job)
    device = pick_device(job["device"])
    set_threads()
    torch.backends.cudnn.benchmark = True  # train.py:70
    rng = seed_all(int(job["seed"]))
    train_images, train_masks = job.data_path("train_images"), job.data_path("train_masks")
    assert train_images is not None and train_masks is not None
    images = load_folder(train_images, read_rgb)  # decoded once, kept in memory
    holes = load_folder(train_masks, read_hole)
    if images.shape[1:3] != (cfg.image_size, cfg.image_size):
        raise BadData(f"{train_images}: images are {images.shape[1:3]}, job says {cfg.image_size}")

    # Before the VGG is built: offline weights, or (tests only) seeded random ones, said loudly.
    loss_network = ensure_pretrained("vgg16", warn=lambda m: events.emit("warning", message=m))
    up, args = upstream(), cfg.args()
    model = build_model(cfg, device)
    # FullModel (data_parallel.py:4) is the forward train.py:117,124 runs, minus the DataParallel
    # wrapper whose .cuda() (data_parallel.py:59,61) is MADF's only hard-coded CUDA: nothing to
    # patch on a CPU. InpaintingLoss never uses its extractor (loss.py:20-25), so none is built.
    full = up.data_parallel.FullModel(model, up.net.VGG16FeatureExtractor(), args).to(device)
    criterion = up.loss.InpaintingLoss(None, args)
    optimizer = torch.optim.Adam(  # train.py:106-107: default betas, no schedule
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr
    )
    step = images_seen = 0
    trained_s = 0.0
    path = job.checkpoints / CHECKPOINT
    if job.get("resume", True) and path.is_file():
        saved = load_checkpoint(path)
        check_same(saved["config"], asdict(cfg), ["n_refinement_D", "image_size"])
        model.load_state_dict(saved["model"], strict=True)
        optimizer.load_state_dict(saved["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr  # train.py:112-113: a resume restarts at args.lr
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
                "loss_network": loss_network,
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
        config={**asdict(cfg), "loss_network": loss_network},
        resumed_from_step=step,
    )
    budget = Budget(float(job["budget_s"]) - trained_s)  # total training time across resumes
    max_steps = job.get("max_steps")
    last_progress = last_checkpoint = time.monotonic()
    step_s = 0.0  # the last step's duration: a step that would overrun the budget is not begun
    losses: dict[str, torch.Tensor] = {}
    full.train()  # train.py:120
    while True:
        if stop:
            reason = "sigterm"
        elif budget.elapsed() + step_s >= budget.seconds:
            reason = "budget"
        elif max_steps is not None and step >= max_steps:
            reason = "max_steps"
        else:
            reason = None
        if reason:
            break
        started = time.monotonic()
        pick = rng.integers(0, len(images), cfg.batch_size)
        pick_mask = rng.integers(0, len(holes), cfg.batch_size)
        rgb, hole = augment(images[pick], holes[pick_mask], rng, cfg.mask_rotation_deg)
        losses = train_step(full, criterion, optimizer, args, *to_model_space(rgb, hole, device))
        step += 1
        images_seen += cfg.batch_size

        now = time.monotonic()
        step_s = now - started
        if now - last_progress >= float(job.get("progress_every_s", 10)):
            # .item() syncs CUDA: only at the progress interval
            values = {k: v.item() for k, v in losses.items()}
            events.emit("progress", step=step, images_seen=images_seen, losses=values, lr=cfg.lr)
            last_progress = now
        if now - last_checkpoint >= float(job.get("checkpoint_every_s", 600)):
            checkpoint()
            last_checkpoint = now

    values = {k: v.item() for k, v in losses.items()}
    events.emit("progress", step=step, images_seen=images_seen, losses=values, lr=cfg.lr)
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


def load_model(job: Job, device: torch.device) -> torch.nn.Module:
    saved = load_checkpoint(job.checkpoints / CHECKPOINT)
    cfg = TrainConfig(**saved["config"])
    model = build_model(cfg, device)
    model.load_state_dict(saved["model"], strict=True)
    model.eval()  # test.py:60; not chained: MADFNet.train returns None (net.py:265-269)
    return model


def predict(job: Job, events: Events, stop: StopFlag) -> None:
    device = pick_device(job["device"])
    set_threads()
    model = load_model(job, device)

    def infer(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        masked, mask, _ = to_model_space(rgb, hole, device)
        with torch.no_grad():
            output = model(masked, mask)[-1]  # test.py:33: the last refinement decoder
        return from_model_space(output, rgb, hole)

    predict_loop(job, events, stop, device.type, {"batch_size": job["batch_size"]}, infer)


# --- describe --------------------------------------------------------------------------------


def describe(job: Job, events: Events, stop: StopFlag) -> None:
    cfg = TrainConfig.from_job(job)
    device = pick_device(job["device"])
    set_threads()
    loss_network = ensure_pretrained("vgg16", warn=lambda m: events.emit("warning", message=m))
    events.emit(
        "run_start",
        contract_version="1",
        command="describe",
        job_id=job["job_id"],
        device=device.type,
        config={**asdict(cfg), "loss_network": loss_network},
        resumed_from_step=0,
    )
    model = build_model(cfg, device)
    model.eval()
    vgg = upstream().net.VGG16FeatureExtractor()
    size = cfg.image_size
    hole = np.zeros((1, size, size), dtype=bool)
    hole[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
    masked, mask, _ = to_model_space(np.zeros((1, size, size, 3), np.uint8), hole, device)
    flops, uncounted = count_flops(lambda: model(masked, mask))
    latency = None
    if job.get("measure_latency", False):
        batch = int(job["batch_size"])
        masked, mask = masked.repeat(batch, 1, 1, 1), mask.repeat(batch, 1, 1, 1)
        latency = measure_latency(
            lambda: model(masked, mask), device, int(job.get("latency_runs", 20))
        )
    report = {
        "contract_version": "1",
        "model": "madf",
        "parameters": {
            "generator": count_parameters(model),
            "discriminator": None,  # MADF trains without a GAN
            "other": {"vgg16_features_loss": count_parameters(vgg)},
        },
        "flops": {
            "image_size": size,
            "forward_flops": flops,
            "counter": "torch.utils.flop_counter.FlopCounterMode",
            "uncounted_ops": uncounted,
        },
        "latency_ms": latency,
        "peak_memory_bytes": peak_memory_bytes(device) if latency else None,
        "device": device.type,
    }
    with atomic_target(job.outputs / "describe.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    events.emit("run_stop", status="completed", reason="done", step=0, images_seen=0, message=None)


def main() -> None:
    run_and_exit({"train": train, "predict": predict, "describe": describe})


if __name__ == "__main__":
    main()
