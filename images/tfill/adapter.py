"""tfill: TFill (Zheng et al., CVPR 2022), `--model tc`, from the authors' code, behind contract v1.

    python adapter.py train    $INPAINT_JOB   # train until budget, max_steps or SIGTERM; resumes
    python adapter.py predict  $INPAINT_JOB   # one composited PNG per input
    python adapter.py describe $INPAINT_JOB   # parameters, FLOPs, latency, peak memory

The authors' `TC` (model/tc_model.py), built from a Namespace made here (their option parser
prints and makes folders), driven as train.py:36-37 does: `set_input`, `optimize_parameters` (one
D and one G update a step); StyleGAN's fused CUDA ops (NVIDIA NC licence) replaced by pure PyTorch
(stylegan_ops_torch.py). `refine_fraction` > 0 gives that share of the run (of max_steps, else of
budget_s) to their second stage (`--coarse_or_refine refine --continue_train`), whose output
predict then returns. The LR is constant: the 'linear' policy (base_function.py:408-410) decays
after 2e7 images. Their data loader is not used (it feeds 0-255 masks, data_loader.py:93-118).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import inpaint_sdk as sdk
import inpaint_torch as sdk_torch
import numpy as np
import stylegan_ops_torch
import torch
import torchvision
from inpaint_loop import Context, JobConfig, TorchModel, handlers, main
from inpaint_sdk import JobInvalid
from inpaint_torch import states_of
from inpaint_upstream import checkout, importing_from
from PIL import Image

CHECKPOINT = "tfill.pt"
Events, Job = sdk.Events, sdk.Job  # for in-process callers (tests) building jobs
COARSE_NETS, REFINE_NETS = ("E", "T", "G", "D"), ("G_Ref", "D_Ref")


@dataclass(frozen=True)
class TrainConfig(JobConfig):
    """Defaults equal manifest.json's: the authors' (train_options.py:15-18, tc_model.py:20-23)."""

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

    def __post_init__(self) -> None:
        for name in ("image_size", "fixed_size"):
            size = getattr(self, name)
            if not 64 <= size <= 512 or size & (size - 1):
                raise JobInvalid(f"{name}: {size} must be a power of two in [64, 512]")
        if self.batch_size > 4 and self.batch_size % 4:  # stddev groups of 4 (networks.py:171)
            raise JobInvalid(f"batch_size: {self.batch_size} must be ≤ 4 or a multiple of 4")
        if not 0.0 <= self.refine_fraction < 1.0:
            raise JobInvalid(f"refine_fraction: {self.refine_fraction} must be in [0, 1)")

    @property
    def working_size(self) -> int:
        return min(self.fixed_size, self.image_size)


# --- conventions: the only place value range and mask polarity change ------------------------


def to_model_space(rgb: np.ndarray, hole: np.ndarray, fixed: int, device: torch.device) -> dict:
    """uint8 NxHxWx3 + bool NxHxW (True = hole) → `TC.set_input`'s batch: images in [0, 1]
    (ToTensor, data_loader.py:61; set_input maps them to [-1, 1]), `img` a PIL bicubic fixed-size
    copy (data_loader.py:25-28), mask B×1×H×W, 1 = known: `img_m = mask * img_org` (tc_model:81),
    as the test loader's `np.array(mask) < 128` (data_loader.py:116) makes from white holes."""
    small = rgb
    if rgb.shape[1] != fixed:
        small = np.stack([np.asarray(Image.fromarray(x).resize((fixed, fixed), 3)) for x in rgb])

    def tensor(a: np.ndarray) -> torch.Tensor:
        # contiguous NCHW as ToTensor gives: a channels-last view would pick other conv kernels
        nchw = np.ascontiguousarray(a.transpose(0, 3, 1, 2))
        return torch.from_numpy(nchw).to(device).float().div(255)

    known = torch.from_numpy(~hole).to(device).float().unsqueeze(1)
    return dict(img_org=tensor(rgb), img=tensor(small), mask=known, img_path=[""] * len(rgb))


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
    root = checkout("model/tc_model.py", "TFill", root).resolve()
    with importing_from(root, ("model", "util")):  # generic names: sys.modules restored
        import model

        stylegan_ops_torch.install(model)  # before model.networks imports model.stylegan_ops
        from model import losses, networks, tc_model
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
    for net in nets_of(model).values():
        net.to(device)
    return model


def nets_of(model) -> dict[str, torch.nn.Module]:
    """TC's networks by name: E, T, G, D, and G_Ref, D_Ref in the refine stage."""
    refine = model.opt.coarse_or_refine == "refine"
    return {n: getattr(model, "net" + n) for n in COARSE_NETS + (REFINE_NETS if refine else ())}


def optimizers_of(model) -> dict:
    names = ("GRef", "DRef") if model.opt.coarse_or_refine == "refine" else ("G", "D")
    return {"optimizer" + n: getattr(model, "optimizer" + n) for n in names}


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
    values = {n: getattr(model, "loss_" + n, math.nan) for n in model.loss_names}
    values = {n: float(v.detach() if torch.is_tensor(v) else v) for n, v in values.items()}
    return {n: v if math.isfinite(v) else None for n, v in values.items()}


# --- the model's pieces ----------------------------------------------------------------------


class TFill(TorchModel):
    Config = TrainConfig
    checkpoint = CHECKPOINT
    shaping = ("image_size", "working_size", "attn_G", "add_noise")
    from_model_space = staticmethod(from_model_space)  # the module's, above

    def build(self, cfg: TrainConfig, saved, ctx: Context):
        # before TC builds LPIPSLoss → models.vgg16(pretrained=True) (losses.py:264)
        ctx.note("loss_network", sdk_torch.ensure_pretrained("vgg16", warn=ctx.warn))
        stage = ctx.note("stage", saved["stage"] if saved else "coarse")
        model = build(cfg, upstream(), self.device, stage, train=True)
        if saved:
            sdk_torch.load_states(nets_of(model), saved["nets"])
            sdk_torch.load_states(optimizers_of(model), saved["optimizers"])
        return model

    def state(self, model) -> dict:
        return {"nets": states_of(nets_of(model)), "optimizers": states_of(optimizers_of(model))}

    def advance(self, model, cfg: TrainConfig, done: float, ctx: Context):
        if model.opt.coarse_or_refine == "refine" or done < 1.0 - cfg.refine_fraction:
            return model
        # their second run: a refine TC loads E/T/G/D, trains G_Ref, D_Ref (tc_model.py:39-65,182)
        refine = build(cfg, upstream(), self.device, ctx.note("stage", "refine"), train=True)
        for name, state in states_of(nets_of(model)).items():
            getattr(refine, "net" + name).load_state_dict(state, strict=True)
        print("coarse stage done, training the refine stage", file=sys.stderr)
        return refine

    def step(self, model, cfg: TrainConfig, rgb, hole, rng) -> dict:
        flip, flip_mask = rng.random((2, cfg.batch_size)) < 0.5  # data_loader.py:230, 97
        rgb = np.where(flip[:, None, None, None], rgb[:, :, ::-1], rgb)
        hole = np.where(flip_mask[:, None, None], hole[:, :, ::-1], hole)
        train_step(model, to_model_space(rgb, hole, cfg.working_size, self.device))
        return {n: getattr(model, "loss_" + n, math.nan) for n in model.loss_names}  # tc_model:32

    def generator(self, cfg: TrainConfig, saved, ctx: Context):
        stage = saved["stage"] if saved else "refine" if cfg.refine_fraction > 0 else "coarse"
        model = build(cfg, upstream(), self.device, ctx.note("stage", stage), train=False)
        if saved:
            sdk_torch.load_states(nets_of(model), saved["nets"])
        model.eval()  # as test.py:29
        return model

    def forward(self, model, rgb, hole):
        if rgb.shape[1] != model.opt.fine_size:  # TC is built for one size (fine_size)
            raise sdk.BadData(f"checkpoint is {model.opt.fine_size} px, inputs {rgb.shape[1]} px")
        batch = to_model_space(rgb, hole, model.opt.fixed_size, self.device)
        return lambda: complete(model, batch)

    def parameters(self, cfg: TrainConfig, model) -> dict:
        count = {n: sdk_torch.count_parameters(net) for n, net in nets_of(model).items()}
        # LPIPSLoss, frozen: VGG16 features + 1×1 heads (losses.py:170-187)
        with torch.device("meta"):  # shapes only, no weights
            vgg = sdk_torch.count_parameters(torchvision.models.vgg16(weights=None).features)
        return {
            "generator": sum(count[n] for n in ("E", "T", "G", "G_Ref") if n in count),
            "discriminator": sum(count[n] for n in ("D", "D_Ref") if n in count),
            "other": {"lpips_vgg16": vgg + 64 + 128 + 256 + 512 + 512},
        }


MODEL = TFill()
train, predict, describe = handlers(MODEL)

if __name__ == "__main__":
    main(MODEL)
