"""tfill: TFill (Zheng et al., CVPR 2022), `--model tc`, from the authors' code, behind contract v1.

    python adapter.py train    $INPAINT_JOB   # train until budget, max_steps or SIGTERM; resumes
    python adapter.py predict  $INPAINT_JOB   # one composited PNG per input
    python adapter.py describe $INPAINT_JOB   # parameters, FLOPs, latency, peak memory

The authors' `TC` model (model/tc_model.py) is built from an argparse.Namespace made here, not by
their option parser (it prints, makes folders, and train.py wants visdom and dominate), and is
driven as their train.py:36-37 does: `set_input(batch)`, `optimize_parameters()`. Their data
loader is not used (its train path feeds 0-255 masks of the file's polarity,
dataloader/data_loader.py:93-118). StyleGAN's fused CUDA ops (nvcc + ninja, NVIDIA NC licence)
are replaced by pure PyTorch (stylegan_ops_torch.py) before TFill's networks are imported.

A step is one optimiser step: one D and one G update on `batch_size` images. TFill's own
`--n_iter` counts images (train.py:34 `total_iters += batch_size`). The coarse stage (E, T, G and
a StyleGAN2 D at `fixed_size`) is trained by default. `refine_fraction` > 0 gives that share of
the run (of max_steps if set, else of budget_s) to the authors' second stage (scripts/train.sh
rerun with `--coarse_or_refine refine --continue_train`: E/T/G/D frozen, G_Ref and D_Ref trained
at image_size); predict then returns the refined output. The learning rate is constant: the
'linear' policy (base_function.py:408-410) only decays after n_iter = 2e7 images.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import SimpleNamespace

import inpaint_sdk as sdk
import inpaint_torch as sdk_torch
import numpy as np
import stylegan_ops_torch
import torch
from inpaint_sdk import BadData, Events, Job, JobInvalid, StopFlag
from PIL import Image

CHECKPOINT = "tfill.pt"
COARSE_NETS, REFINE_NETS = ("E", "T", "G", "D"), ("G_Ref", "D_Ref")


@dataclass(frozen=True)
class TrainConfig:
    """Defaults equal manifest.json's: the authors' options (train_options.py:15-18,
    tc_model.py:20-23, base_options.py:29) with the student config (no --attn_G --add_noise)."""

    lr: float = 1e-4  # E+T+G; D gets 4 × lr (tc_model.py:58)
    beta1: float = 0.5
    beta2: float = 0.9
    lambda_rec: float = 10.0
    lambda_g: float = 1.0
    lambda_lp: float = 10.0
    lambda_gradient: float = 0.0
    gan_mode: str = "nonsaturating"
    fixed_size: int = 256  # the coarse stage's working size, capped at image_size
    attn_G: bool = False
    add_noise: bool = False
    refine_fraction: float = 0.0
    image_size: int = 256
    batch_size: int = 8

    @classmethod
    def from_job(cls, job: Job) -> TrainConfig:
        hp = dict(job.get("hyperparameters", {}))
        known = {f.name for f in fields(cls)} - {"image_size", "batch_size"}
        if unknown := sorted(set(hp) - known):
            raise JobInvalid(f"hyperparameters: unknown {unknown} (allowed: {sorted(known)})")
        cfg = cls(**{**hp, "image_size": job["image_size"], "batch_size": job["batch_size"]})
        for name in ("image_size", "fixed_size"):
            size = getattr(cfg, name)
            if not 64 <= size <= 512 or size & (size - 1):
                raise JobInvalid(f"{name}: {size} must be a power of two in [64, 512]")
        if cfg.batch_size > 4 and cfg.batch_size % 4:  # stddev groups of 4 (networks.py:171)
            raise JobInvalid(
                f"batch_size: {cfg.batch_size} must be ≤ 4 or a multiple of 4 (TFill's StyleGAN D)"
            )
        if not 0.0 <= cfg.refine_fraction < 1.0:
            raise JobInvalid(f"refine_fraction: {cfg.refine_fraction} must be in [0, 1)")
        return cfg

    @property
    def working_size(self) -> int:
        return min(self.fixed_size, self.image_size)

    def resolved(self) -> dict:
        return {**asdict(self), "working_size": self.working_size}


# --- conventions: the only place value range and mask polarity change ------------------------


def to_model_space(rgb: np.ndarray, hole: np.ndarray, fixed: int, device: torch.device) -> dict:
    """uint8 NxHxWx3 + bool NxHxW (True = hole) → the batch `TC.set_input` takes.

    Images in [0, 1] (ToTensor, data_loader.py:61); set_input maps them to [-1, 1] itself
    (tc_model.py:76-77). `img` is the fixed-size copy, a PIL bicubic resize (data_loader.py:25-28).
    Mask B×1×H×W, 1 = known, 0 = hole: `img_m = mask * img_org` (tc_model.py:81), as the test
    loader's `np.array(mask) < 128` (data_loader.py:116) makes from white-hole files.
    """
    small = rgb
    if rgb.shape[1] != fixed:
        small = np.stack([np.asarray(Image.fromarray(x).resize((fixed, fixed), 3)) for x in rgb])

    def tensor(a: np.ndarray) -> torch.Tensor:
        # contiguous NCHW as ToTensor gives: a channels-last view would pick other conv kernels
        nchw = np.ascontiguousarray(a.transpose(0, 3, 1, 2))
        return torch.from_numpy(nchw).to(device).float().div(255)

    known = torch.from_numpy(~hole).to(device).float().unsqueeze(1)
    return {
        "img_org": tensor(rgb),
        "img": tensor(small),
        "mask": known,
        "img_path": [""] * len(rgb),
    }


def from_model_space(out: torch.Tensor, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """[-1, 1] output at image size → uint8, with the input's known pixels pasted back exactly."""
    pred = ((out.clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return np.where(hole[..., None], pred, rgb)


# --- the authors' model ----------------------------------------------------------------------

# What TrainOptions().parse() gives for `--model tc` (base_options.py:15-75, train_options.py:9-18,
# tc_model.py:16-23), restricted to the fields TFill's model code reads.
AUTHORS_OPT = dict(
    name="tfill", model="tc", checkpoints_dir="/tmp", which_iter=0, epoch="latest", img_nc=3,
    ngf=32, ndf=32, num_res_blocks=2, netD="style", netG="diff", netE="diff", kernel_G=3,
    kernel_E=1, attn_E=False, attn_D=False, n_layers_D=3, n_layers_G=4, norm="pixel",
    activation="leakyrelu", init_type="kaiming", init_gain=0.02, netT="original", embed_dim=512,
    dropout=0.0, kernel_T=1, n_encoders=12, n_decoders=0, embed_type="learned", use_pos_G=False,
    word_size=16, down_layers=4, mid_layers=6, iter_count=0, n_iter=20000000, n_iter_decay=0,
    lr_policy="linear", continue_train=False, nsampling=1,
)  # fmt: skip
FROM_CONFIG = ("lr", "beta1", "beta2", "lambda_rec", "lambda_g", "lambda_lp", "lambda_gradient",
               "gan_mode", "attn_G", "add_noise")  # fmt: skip


def upstream(root: str | Path | None = None) -> SimpleNamespace:
    """TFill's model code from the checkout ($INPAINT_UPSTREAM), with pure-PyTorch stylegan_ops."""
    root = Path(root or os.environ.get("INPAINT_UPSTREAM", "/inpaint/upstream")).resolve()
    if not (root / "model" / "tc_model.py").is_file():
        raise RuntimeError(f"INPAINT_UPSTREAM={root}: not a TFill checkout (no model/tc_model.py)")
    # `model` and `util` are generic top-level names that another checkout may hold in a test
    # process: import TFill's afresh, then put back whatever was there.
    mine = ("model", "util")
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] in mine}
    sys.path.insert(0, str(root))
    try:
        import model

        stylegan_ops_torch.install(model)  # before model.networks imports model.stylegan_ops
        from model import losses, networks, tc_model
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k.split(".")[0] in mine]:
            del sys.modules[k]
        sys.modules.update(saved)
    return SimpleNamespace(root=root, TC=tc_model.TC, networks=networks, losses=losses)


def build(cfg: TrainConfig, up: SimpleNamespace, device: torch.device, stage: str, train: bool):
    """TC(opt), its nets moved to `device` before any forward (PartialConv2d caches tensors,
    base_function.py:572-592). No `.cuda()` is reached: only save/load_networks call it."""
    opt = argparse.Namespace(
        **AUTHORS_OPT,
        **{k: getattr(cfg, k) for k in FROM_CONFIG},
        lipip_path=str(up.root / "model" / "lpips" / "vgg.pth"),
        gpu_ids=[0] if device.type == "cuda" else [],  # sets BaseModel.device (base_model.py:16)
        isTrain=train,
        coarse_or_refine=stage,  # the parser's default is 'refine' (tc_model.py:16)
        fixed_size=cfg.working_size,
        fine_size=cfg.image_size,
    )
    model = up.TC(opt)
    for name in nets_of(stage):
        getattr(model, "net" + name).to(device)
    return model


def nets_of(stage: str) -> tuple[str, ...]:
    return COARSE_NETS + (REFINE_NETS if stage == "refine" else ())


def optimizers_of(model, stage: str) -> dict:
    names = (
        ("optimizerGRef", "optimizerDRef") if stage == "refine" else ("optimizerG", "optimizerD")
    )
    return {n: getattr(model, n) for n in names}


def train_step(model, batch: dict) -> None:
    """The authors' step: forward, D update, G update with D frozen (tc_model.py:179-195)."""
    model.set_input(batch)
    model.optimize_parameters()


def complete(model, batch: dict) -> torch.Tensor:
    """tc_model.forward (l.104-116) → the composited output, refined when that stage exists."""
    model.set_input(batch)
    model.forward()
    return model.img_ref_out if model.opt.coarse_or_refine == "refine" else model.img_out


def losses_of(model) -> dict:
    """TC's loss_names (tc_model.py:32) as numbers; null for unset or non-finite ones."""
    values = [(n, getattr(model, "loss_" + n, math.nan)) for n in model.loss_names]
    values = [(n, float(v.detach() if torch.is_tensor(v) else v)) for n, v in values]
    return {n: v if math.isfinite(v) else None for n, v in values}


def start(events: Events, job: Job, device: torch.device, config: dict, step: int = 0) -> None:
    events.emit(
        "run_start", contract_version="1", command=job.command, job_id=job["job_id"],
        device=device.type, config=config, resumed_from_step=step,
    )  # fmt: skip


def finish(events: Events, reason: str, step: int, images_seen: int) -> None:
    status = "stopped" if reason == "sigterm" else "completed"
    events.emit(
        "run_stop", status=status, reason=reason, step=step, images_seen=images_seen, message=None
    )


# --- train -----------------------------------------------------------------------------------


def train(job: Job, events: Events, stop: StopFlag) -> None:
    cfg = TrainConfig.from_job(job)
    device = sdk_torch.pick_device(job["device"])
    sdk_torch.set_threads()
    rng = sdk_torch.seed_all(int(job["seed"]))
    train_images, train_masks = job.data_path("train_images"), job.data_path("train_masks")
    assert train_images is not None and train_masks is not None
    images = sdk.load_folder(train_images, sdk.read_rgb)  # decoded once, kept in memory
    holes = sdk.load_folder(train_masks, sdk.read_hole)
    for folder, found in ((train_images, images), (train_masks, holes)):
        if found.shape[1:3] != (cfg.image_size, cfg.image_size):
            raise BadData(f"{folder}: files are {found.shape[1:3]}, job says {cfg.image_size}")

    up = upstream()
    loss_network = sdk_torch.ensure_pretrained(
        "vgg16", warn=lambda m: events.emit("warning", message=m)
    )  # before TC builds LPIPSLoss → models.vgg16(pretrained=True) (losses.py:264)
    path = job.checkpoints / CHECKPOINT
    saved = sdk_torch.load_checkpoint(path) if job.get("resume", True) and path.is_file() else None
    stage = saved["stage"] if saved else "coarse"
    model = build(cfg, up, device, stage, train=True)
    step = images_seen = 0
    trained_s = 0.0
    if saved:
        shaping = ["image_size", "working_size", "attn_G", "add_noise"]
        sdk_torch.check_same(saved["config"], cfg.resolved(), shaping)
        for name in nets_of(stage):
            getattr(model, "net" + name).load_state_dict(saved["nets"][name], strict=True)
        for name, optimizer in optimizers_of(model, stage).items():
            optimizer.load_state_dict(saved["optimizers"][name])
        step, images_seen, trained_s = saved["step"], saved["images_seen"], saved["trained_s"]
        sdk_torch.restore_rng(saved["rng"], rng)

    def checkpoint() -> None:
        payload = {
            "stage": stage,
            "nets": {n: getattr(model, "net" + n).state_dict() for n in nets_of(stage)},
            "optimizers": {n: o.state_dict() for n, o in optimizers_of(model, stage).items()},
            "step": step,
            "images_seen": images_seen,
            "config": cfg.resolved(),
            "trained_s": trained_s + budget.elapsed(),
            "rng": sdk_torch.rng_state(rng),
        }
        sdk_torch.save_checkpoint(path, payload)
        events.emit("checkpoint", step=step, images_seen=images_seen, path=CHECKPOINT)

    config = {**cfg.resolved(), "stage": stage, "loss_network": loss_network}
    start(events, job, device, config, step)
    # The budget is total training time, so a resumed run only gets what is left of it.
    budget = sdk.Budget(float(job["budget_s"]) - trained_s)
    max_steps = job.get("max_steps")
    coarse_share = 1.0 - cfg.refine_fraction
    last_progress = last_checkpoint = time.monotonic()
    step_s = 0.0  # the last step's duration: a step of seconds must not start past the budget
    while True:
        reason = "sigterm" if stop else None
        if reason is None and budget.elapsed() + step_s >= budget.seconds:
            reason = "budget"
        if reason is None and max_steps is not None and step >= max_steps:
            reason = "max_steps"
        if reason:
            break
        spent = step / max_steps if max_steps else (trained_s + budget.elapsed()) / job["budget_s"]
        if stage == "coarse" and cfg.refine_fraction > 0 and spent >= coarse_share:
            # The authors' second run: a new TC in refine mode loads E/T/G/D (--continue_train)
            # and trains only G_Ref and D_Ref (tc_model.py:39-44,61-65,182).
            coarse, stage = model, "refine"
            model = build(cfg, up, device, stage, train=True)
            for name in COARSE_NETS:
                src = getattr(coarse, "net" + name).state_dict()
                getattr(model, "net" + name).load_state_dict(src, strict=True)
            del coarse
            print(f"step {step}: coarse stage done, training the refine stage", file=sys.stderr)
        # one optimiser step on a random batch, random masks, per-image horizontal flips
        started = time.monotonic()
        rgb = images[rng.integers(0, len(images), cfg.batch_size)]
        hole = holes[rng.integers(0, len(holes), cfg.batch_size)]
        flip, flip_mask = rng.random((2, cfg.batch_size)) < 0.5
        rgb = np.where(flip[:, None, None, None], rgb[:, :, ::-1], rgb)  # data_loader.py:230
        hole = np.where(flip_mask[:, None, None], hole[:, :, ::-1], hole)  # data_loader.py:97
        train_step(model, to_model_space(rgb, hole, cfg.working_size, device))
        step += 1
        images_seen += cfg.batch_size

        now = time.monotonic()
        step_s = now - started
        if now - last_progress >= float(job.get("progress_every_s", 10)):
            # float() of the losses syncs CUDA: only at the progress interval
            losses = losses_of(model)
            events.emit("progress", step=step, images_seen=images_seen, losses=losses, lr=cfg.lr)
            last_progress = now
        if now - last_checkpoint >= float(job.get("checkpoint_every_s", 600)):
            checkpoint()
            last_checkpoint = now

    losses = losses_of(model) if step else {}
    events.emit("progress", step=step, images_seen=images_seen, losses=losses, lr=cfg.lr)
    checkpoint()
    finish(events, reason, step, images_seen)


# --- predict ---------------------------------------------------------------------------------


def load_model(job: Job, device: torch.device):
    saved = sdk_torch.load_checkpoint(job.checkpoints / CHECKPOINT)
    cfg = TrainConfig(**{k: v for k, v in saved["config"].items() if k != "working_size"})
    if cfg.image_size != job["image_size"]:
        raise BadData(f"checkpoint is for image_size {cfg.image_size}, job {job['image_size']}")
    model = build(cfg, upstream(), device, saved["stage"], train=False)
    for name in nets_of(saved["stage"]):
        getattr(model, "net" + name).load_state_dict(saved["nets"][name], strict=True)
    model.eval()  # as test.py:29
    return model, cfg


def predict(job: Job, events: Events, stop: StopFlag) -> None:
    device = sdk_torch.pick_device(job["device"])
    sdk_torch.set_threads()
    sdk_torch.seed_all(int(job["seed"]))  # with add_noise, G draws noise: seeded, repeatable
    model, cfg = load_model(job, device)
    config = {
        **cfg.resolved(),
        "batch_size": job["batch_size"],
        "stage": model.opt.coarse_or_refine,
    }

    def infer(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        if rgb.shape[1:3] != (cfg.image_size,) * 2 or hole.shape != rgb.shape[:3]:
            raise BadData(f"inputs and masks must be {cfg.image_size}² px, got {rgb.shape[1:3]}")
        with torch.no_grad():
            result = complete(model, to_model_space(rgb, hole, cfg.working_size, device))
        return from_model_space(result, rgb, hole)

    sdk.predict_loop(job, events, stop, device.type, config, infer)


# --- describe --------------------------------------------------------------------------------


def describe(job: Job, events: Events, stop: StopFlag) -> None:
    cfg = TrainConfig.from_job(job)
    device = sdk_torch.pick_device(job["device"])
    start(events, job, device, cfg.resolved())
    stage = "refine" if cfg.refine_fraction > 0 else "coarse"
    model = build(cfg, upstream(), device, stage, train=False)
    model.eval()
    size, n = cfg.image_size, int(job["batch_size"])
    hole = np.zeros((n, size, size), dtype=bool)
    hole[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
    batch = to_model_space(np.zeros((n, size, size, 3), np.uint8), hole, cfg.working_size, device)
    one = {k: v[:1] for k, v in batch.items()}
    flops, uncounted = sdk_torch.count_flops(lambda: complete(model, one))
    latency = None
    if job.get("measure_latency", False):
        runs = int(job.get("latency_runs", 20))
        latency = sdk_torch.measure_latency(lambda: complete(model, batch), device, runs)
    count = {n: sdk_torch.count_parameters(getattr(model, "net" + n)) for n in nets_of(stage)}
    import torchvision  # LPIPSLoss, frozen: VGG16 features + 1×1 heads (losses.py:170-187)

    vgg = sdk_torch.count_parameters(torchvision.models.vgg16(weights=None).features)
    report = {
        "contract_version": "1",
        "model": "tfill",
        "parameters": {
            "generator": sum(count[n] for n in ("E", "T", "G", "G_Ref") if n in count),
            "discriminator": sum(count[n] for n in ("D", "D_Ref") if n in count),
            "other": {"lpips_vgg16": vgg + 64 + 128 + 256 + 512 + 512},
        },
        "flops": {
            "image_size": size,
            "forward_flops": flops,
            "counter": "torch.utils.flop_counter.FlopCounterMode",
            "uncounted_ops": uncounted,
        },
        "latency_ms": latency,
        "peak_memory_bytes": sdk_torch.peak_memory_bytes(device) if latency else None,
        "device": device.type,
    }
    with sdk.atomic_target(job.outputs / "describe.json") as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    finish(events, "done", 0, 0)


def main() -> None:
    sdk.run_and_exit({"train": train, "predict": predict, "describe": describe})


if __name__ == "__main__":
    main()
