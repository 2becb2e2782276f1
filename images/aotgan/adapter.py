"""aotgan: AOT-GAN (Zeng et al., TVCG 2022) from the authors' code, behind contract v1.

    python adapter.py train    $INPAINT_JOB   # train until budget, max_steps or SIGTERM; resumes
    python adapter.py predict  $INPAINT_JOB   # one composited PNG per input
    python adapter.py describe $INPAINT_JOB   # parameters, FLOPs, latency, peak memory

The generator, discriminator and losses are imported from the authors' checkout at
$INPAINT_UPSTREAM (default /inpaint/upstream: researchmm/AOT-GAN-for-Inpainting at 2cd1afd), never
copied. `train_step` is their training iteration (src/trainer/trainer.py:99-125) in their order;
their Trainer, data loader and option parser are not used (utils/option.py parses argv at import).
A step is one iteration: one Adam step of G and one of D on one batch.

Data is decoded once and kept in memory; masks are paired with images at random from the job's
seed. Of the authors' augmentations (data/dataset.py:24-38) the cheap ones are kept: horizontal
flips of images and of masks, and mask rotation by U(0, 45)° (nearest). Not kept: RandomResizedCrop
(the benchmark's images already are image_size²) and ColorJitter(0.05).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torchvision
from inpaint_sdk import (
    BadData,
    Budget,
    Events,
    Job,
    JobInvalid,
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
from torchvision.transforms.functional import InterpolationMode, rotate

CHECKPOINT = "aotgan.pt"
# The checkout's top-level names under src/: generic enough that other code uses them too.
UPSTREAM_PACKAGES = ("model", "loss", "data", "trainer", "utils", "metric")


@dataclass(frozen=True)
class TrainConfig:
    """Defaults equal manifest.json's. The hyperparameters are upstream's (utils/option.py:15-36),
    which trains at 512 px, batch 8."""

    block_num: int = 8  # AOT blocks in the middle of G (option.py:16)
    rates: tuple[int, ...] = (1, 2, 4, 8)  # dilation rates, CLI "1+2+4+8" (option.py:17,63)
    lrg: float = 1e-4  # Adam for G and D (option.py:24-30)
    lrd: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    l1_weight: float = 1.0  # --rec_loss "1*L1+250*Style+0.1*Perceptual" (option.py:34)
    style_weight: float = 250.0
    perceptual_weight: float = 0.1
    adv_weight: float = 0.01  # smgan, the soft-mask PatchGAN (option.py:18,35)
    image_size: int = 256
    batch_size: int = 4

    @classmethod
    def from_job(cls, job: Job) -> TrainConfig:
        hp = dict(job.get("hyperparameters", {}))
        known = {f.name for f in fields(cls)} - {"image_size", "batch_size"}
        unknown = sorted(set(hp) - known)
        if unknown:
            raise JobInvalid(
                f"hyperparameters: unknown field(s) {unknown} (allowed: {sorted(known)})"
            )
        size = int(job["image_size"])
        if size < 64 or size % 4:
            # two stride-2 convs, then ReflectionPad2d(8) at size/4 (model/aotgan.py:17-23,58)
            raise JobInvalid(f"image_size: {size} must be a multiple of 4 and at least 64")
        if "rates" in hp:
            hp["rates"] = tuple(int(r) for r in hp["rates"])
        return cls(**hp, image_size=size, batch_size=int(job["batch_size"]))


# --- the authors' code ---------------------------------------------------------------------


@contextmanager
def upstream_on_path(src: str | Path | None = None) -> Iterator[Path]:
    """The checkout's src/ first on sys.path while importing from it; sys.path and sys.modules
    are restored after, because its names (model, loss, ...) also belong to other code that may
    share the process (MADF's loss.py, TFill's model/, gatedconv's model.py in one pytest run)."""
    root = Path(src or os.environ.get("INPAINT_UPSTREAM", "/inpaint/upstream"))
    if not (root / "src" / "model" / "aotgan.py").is_file():
        raise BadData(
            f"{root}: no src/model/aotgan.py; set INPAINT_UPSTREAM to an AOT-GAN checkout"
        )

    def ours(name: str) -> bool:
        return name.partition(".")[0] in UPSTREAM_PACKAGES

    hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if ours(name)}
    sys.path.insert(0, str(root / "src"))
    for name in UPSTREAM_PACKAGES:
        folder = root / "src" / name
        if folder.is_dir() and not (folder / "__init__.py").is_file():
            # a namespace package (no __init__.py, like model/ and loss/) loses to any module of
            # its name further down sys.path (PEP 420): bind it to src/ explicitly
            spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = [str(folder)]
            sys.modules[name] = importlib.util.module_from_spec(spec)
    try:
        yield root / "src"
    finally:
        sys.path.remove(str(root / "src"))
        for name in [n for n in sys.modules if ours(n)]:
            del sys.modules[name]
        sys.modules.update(hidden)


def import_upstream(src: str | Path | None = None) -> SimpleNamespace:
    with upstream_on_path(src):
        from loss import loss as aot_loss  # L1, Style, Perceptual (VGG19), smgan: loss/loss.py
        from model.aotgan import Discriminator, InpaintGenerator  # model/aotgan.py:9,82
    return SimpleNamespace(
        InpaintGenerator=InpaintGenerator, Discriminator=Discriminator, loss=aot_loss
    )


@contextmanager
def cuda_calls_on(device: torch.device) -> Iterator[None]:
    """Upstream's loss code calls .cuda() (loss/common.py:17-18, loss/loss.py:21,37,97-99), which
    raises without a GPU. On a CPU job Tensor.cuda and Module.cuda return self while that code
    runs; on a CUDA job nothing changes (.cuda() is then the job's device, as in upstream)."""
    if device.type != "cpu":
        yield
        return
    saved = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = torch.nn.Module.cuda = lambda self, *args, **kwargs: self  # type: ignore
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = saved  # type: ignore


def make_generator(cfg: dict[str, Any], up: SimpleNamespace) -> torch.nn.Module:
    # InpaintGenerator reads only args.block_num and args.rates (model/aotgan.py:23)
    args = SimpleNamespace(block_num=cfg["block_num"], rates=list(cfg["rates"]))
    return up.InpaintGenerator(args)


def build_nets(cfg: TrainConfig, device: torch.device, up: SimpleNamespace) -> SimpleNamespace:
    """Losses, G, D and their Adams, made in upstream's order (trainer.py:24-34), so that one
    seed gives upstream's initial weights. Call inpaint_torch.ensure_pretrained("vgg19") first."""
    with cuda_calls_on(device):
        rec = {  # trainer.py:24 and option.py:34, in the --rec_loss order
            "L1": (cfg.l1_weight, up.loss.L1()),
            "Style": (cfg.style_weight, up.loss.Style()),
            "Perceptual": (cfg.perceptual_weight, up.loss.Perceptual()),
        }
        adv = up.loss.smgan()
    G = make_generator(asdict(cfg), up).to(device)
    D = up.Discriminator().to(device)
    betas = (cfg.beta1, cfg.beta2)
    return SimpleNamespace(
        G=G,
        D=D,
        optG=torch.optim.Adam(G.parameters(), lr=cfg.lrg, betas=betas),
        optD=torch.optim.Adam(D.parameters(), lr=cfg.lrd, betas=betas),
        rec=rec,
        adv=adv,
        adv_weight=cfg.adv_weight,
    )


# --- conventions: the only place value range and mask polarity change ------------------------


def to_model_space(rgb: np.ndarray, hole: np.ndarray, device: torch.device):
    """uint8 NxHxWx3 and bool NxHxW (True = hole) → image Nx3xHxW in [-1, 1] and mask Nx1xHxW,
    1 = hole: upstream reads images as ToTensor()*2-1 and L-mode masks as ToTensor(), white = 1 =
    hole (data/dataset.py:58-59, test.py:39-41)."""
    image = torch.from_numpy(rgb).to(device).permute(0, 3, 1, 2).float() / 255.0 * 2.0 - 1.0
    mask = torch.from_numpy(hole).to(device).float().unsqueeze(1)
    return image, mask


def from_model_space(pred: torch.Tensor, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """[-1, 1] → uint8, clamped as upstream test.py:13-14 (which truncates; we round), with the
    input's known pixels pasted back in uint8, so they are bit-exact (upstream's composite is in
    float: trainer.py:107, test.py:49)."""
    out = ((pred.clamp(-1, 1) + 1.0) / 2.0 * 255.0).round().byte().permute(0, 2, 3, 1)
    return np.where(hole[..., None], out.cpu().numpy(), rgb)


def masked_input(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # holes filled white (+1), the known pixels kept (trainer.py:99, test.py:44)
    return image * (1 - mask).float() + mask


# --- train -----------------------------------------------------------------------------------


def train_step(nets: SimpleNamespace, image: torch.Tensor, mask: torch.Tensor):
    """One upstream iteration (trainer.py:99-125), in its order: both zero_grad, the summed G
    losses backward (its adversarial part also reaches D, which is never frozen), the D loss
    backward, then G's and D's Adam steps. Returns the losses as upstream logs them (weighted)."""
    with cuda_calls_on(image.device):  # smgan calls .cuda() every step (loss.py:97-99)
        pred = nets.G(masked_input(image, mask), mask)
        comp = (1 - mask) * image + mask * pred
        # the reconstruction losses see the raw prediction, the discriminator the composite
        losses = {name: weight * fn(pred, image) for name, (weight, fn) in nets.rec.items()}
        dis_loss, gen_loss = nets.adv(nets.D, comp, image, mask)
        losses["advg"] = gen_loss * nets.adv_weight
        nets.optG.zero_grad(set_to_none=True)
        nets.optD.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        losses["advd"] = dis_loss
        dis_loss.backward()
        nets.optG.step()
        nets.optD.step()
    return losses


def augment(rgb: np.ndarray, hole: np.ndarray, rng: np.random.Generator):
    """Independent horizontal flips of images and masks, masks turned by U(0, 45)° with nearest
    interpolation, the corners filled known (data/dataset.py:27,35-36)."""
    rgb, hole = rgb.copy(), hole.copy()
    for i in range(len(rgb)):
        if rng.random() < 0.5:
            rgb[i] = rgb[i, :, ::-1].copy()
        if rng.random() < 0.5:
            hole[i] = hole[i, :, ::-1].copy()
        angle = float(rng.uniform(0.0, 45.0))
        turned = rotate(torch.from_numpy(hole[i])[None].byte(), angle, InterpolationMode.NEAREST)
        # an all-known batch makes smgan's G loss 0/0 = NaN (loss.py:102): keep such a mask upright
        if turned.any():
            hole[i] = turned[0].bool().numpy()
    return rgb, hole


def train(job: Job, events: Events, stop: StopFlag) -> None:
    cfg = TrainConfig.from_job(job)
    device = pick_device(job["device"])
    set_threads()
    torch.backends.cudnn.benchmark = True  # as upstream train.py:36-37
    rng = seed_all(int(job["seed"]))
    train_images, train_masks = job.data_path("train_images"), job.data_path("train_masks")
    assert train_images is not None and train_masks is not None
    images = load_folder(train_images, read_rgb)
    holes = load_folder(train_masks, read_hole)
    for folder, array in ((train_images, images), (train_masks, holes)):
        if array.shape[1:3] != (cfg.image_size, cfg.image_size):
            raise BadData(f"{folder}: files are {array.shape[1:3]}, job says {cfg.image_size}")

    up = import_upstream()
    loss_network = ensure_pretrained("vgg19", warn=lambda m: events.emit("warning", message=m))
    nets = build_nets(cfg, device, up)
    step = images_seen = 0
    trained_s = 0.0
    path = job.checkpoints / CHECKPOINT
    if job.get("resume", True) and path.is_file():
        saved = load_checkpoint(path)
        check_same(saved["config"], asdict(cfg), ["block_num", "rates", "image_size"])
        nets.G.load_state_dict(saved["G"], strict=True)
        nets.D.load_state_dict(saved["D"], strict=True)
        nets.optG.load_state_dict(saved["optG"])
        nets.optD.load_state_dict(saved["optD"])
        step, images_seen, trained_s = saved["step"], saved["images_seen"], saved["trained_s"]
        restore_rng(saved["rng"], rng)

    def checkpoint() -> None:
        save_checkpoint(
            path,
            {
                **{k: getattr(nets, k).state_dict() for k in ("G", "D", "optG", "optD")},
                "step": step,
                "images_seen": images_seen,
                "config": asdict(cfg),
                "trained_s": trained_s + budget.elapsed(),
                "rng": rng_state(rng),
            },
        )
        events.emit("checkpoint", step=step, images_seen=images_seen, path=CHECKPOINT)

    def progress() -> None:
        # .item() syncs CUDA: only at the progress interval; events carry no NaN (null instead)
        values = {k: v.item() for k, v in losses.items()}
        finite = {k: v if math.isfinite(v) else None for k, v in values.items()}
        events.emit("progress", step=step, images_seen=images_seen, losses=finite, lr=cfg.lrg)

    events.emit(
        "run_start",
        contract_version="1",
        command="train",
        job_id=job["job_id"],
        device=device.type,
        config={**asdict(cfg), "loss_network": loss_network},
        resumed_from_step=step,
    )
    # The budget is total training time, so a resumed run only gets what is left of it.
    budget = Budget(float(job["budget_s"]) - trained_s)
    max_steps = job.get("max_steps")
    last_progress = last_checkpoint = last_step = time.monotonic()
    step_s = 0.0  # the last iteration's wall time
    losses: dict[str, torch.Tensor] = {}
    while True:
        if stop:
            reason = "sigterm"
        elif budget.elapsed() + step_s >= budget.seconds:
            reason = "budget"  # stop before the budget ends, not one step after it
        elif max_steps is not None and step >= max_steps:
            reason = "max_steps"
        else:
            reason = None
        if reason:
            break
        # one iteration on a random batch with random masks
        pick = rng.integers(0, len(images), cfg.batch_size)
        pick_mask = rng.integers(0, len(holes), cfg.batch_size)
        rgb, hole = augment(images[pick], holes[pick_mask], rng)
        losses = train_step(nets, *to_model_space(rgb, hole, device))
        step += 1
        images_seen += cfg.batch_size

        now = time.monotonic()
        step_s, last_step = now - last_step, now
        if now - last_progress >= float(job.get("progress_every_s", 10)):
            progress()
            last_progress = now
        if now - last_checkpoint >= float(job.get("checkpoint_every_s", 600)):
            checkpoint()
            last_checkpoint = now

    progress()
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


def load_generator(job: Job, device: torch.device) -> torch.nn.Module:
    saved = load_checkpoint(job.checkpoints / CHECKPOINT)
    G = make_generator(saved["config"], import_upstream()).to(device)
    G.load_state_dict(saved["G"], strict=True)
    return G.eval()  # as upstream test.py:27


def predict(job: Job, events: Events, stop: StopFlag) -> None:
    device = pick_device(job["device"])
    set_threads()
    G = load_generator(job, device)

    def infer(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        image, mask = to_model_space(rgb, hole, device)
        with torch.no_grad():
            pred = G(masked_input(image, mask), mask)
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
    up = import_upstream()
    G = make_generator(asdict(cfg), up).to(device).eval()
    size = cfg.image_size
    image = torch.zeros(1, 3, size, size, device=device)
    mask = torch.zeros(1, 1, size, size, device=device)
    mask[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    flops, uncounted = count_flops(lambda: G(masked_input(image, mask), mask))
    latency = peak = None
    if job.get("measure_latency", False):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        n = int(job["batch_size"])
        images, masks = image.expand(n, -1, -1, -1), mask.expand(n, -1, -1, -1)
        runs = int(job.get("latency_runs", 20))
        latency = measure_latency(lambda: G(masked_input(images, masks), masks), device, runs)
        peak = peak_memory_bytes(device) if device.type == "cuda" else None  # contract: CUDA only
    # Style and Perceptual each hold their own frozen VGG19 (loss/loss.py:21,37): its features
    with torch.device("meta"):  # shapes only, no weights
        vgg19 = count_parameters(torchvision.models.vgg19(weights=None).features)
    report = {
        "contract_version": "1",
        "model": "aotgan",
        "parameters": {
            "generator": count_parameters(G),
            "discriminator": count_parameters(up.Discriminator()),
            "other": {"vgg19_style_loss": vgg19, "vgg19_perceptual_loss": vgg19},
        },
        "flops": {
            "image_size": size,
            "forward_flops": flops,
            "counter": "torch.utils.flop_counter.FlopCounterMode",
            "uncounted_ops": uncounted,
        },
        "latency_ms": latency,
        "peak_memory_bytes": peak,
        "device": device.type,
    }
    with atomic_target(job.outputs / "describe.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    events.emit("run_stop", status="completed", reason="done", step=0, images_seen=0, message=None)


def main() -> None:
    run_and_exit({"train": train, "predict": predict, "describe": describe})


if __name__ == "__main__":
    main()
