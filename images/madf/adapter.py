"""madf: MADF (Zhu et al., TIP 2021) from the authors' code, behind contract v1.

    python adapter.py train    $INPAINT_JOB   # train until budget, max_steps or SIGTERM; resumes
    python adapter.py predict  $INPAINT_JOB   # one composited PNG per input
    python adapter.py describe $INPAINT_JOB   # parameters, FLOPs, latency, peak memory

The network, the VGG16 loss features, the loss and the forward that feeds it are imported from the
authors' checkout at $INPAINT_UPSTREAM (default /inpaint/upstream; Pytorch-MADF 6fdbf44, GPL-3.0,
which is why only this image imports it). `MADF.step` replays train.py:119-148
with `--use_incremental_supervision` (train.sh:1): one Adam step on the weighted loss sum; the SDK's
inpaint_loop runs everything around it.
Not reproduced: the authors' Resize(572)+RandomCrop(512) zoom (data arrive at image_size), their
data loader, DataParallel/.cuda() and the periodic eval.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from inpaint_loop import Context, JobConfig, TorchModel, handlers, main
from inpaint_sdk import BadData
from inpaint_torch import count_parameters, ensure_pretrained
from PIL import Image


@dataclass(frozen=True)
class TrainConfig(JobConfig):
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


def build_model(cfg: TrainConfig, device: torch.device, loading: bool = False) -> torch.nn.Module:
    """MADFNet (train.py:101); `loading`: a checkpoint's strict load will replace every
    parameter and buffer, so its 85M weights are allocated, not initialised (seconds on a CPU)."""
    if not loading:
        return upstream().net.MADFNet(layer_size=7, args=cfg.args()).to(device)
    with torch.device("meta"):
        model = upstream().net.MADFNet(layer_size=7, args=cfg.args())
    return model.to_empty(device=device)


# --- the model's pieces ----------------------------------------------------------------------


def train_step(full, criterion, optimizer, args, masked, mask, gt) -> dict[str, torch.Tensor]:
    """One optimiser step as train.py:124-148 takes it; the unweighted terms, detached."""
    outputs, feats, comp_feats, feat_gt = full(masked, mask, gt)
    losses = criterion(masked, mask, outputs, gt, comp_feats, feats, feat_gt)
    loss = sum(getattr(args, f"{key}_weight") * value for key, value in losses.items())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {key: value.detach() for key, value in losses.items()}


def loss_weights(ctx: Context) -> str:
    """Offline VGG16 weights, or (tests only) seeded random ones, said loudly: before any VGG."""
    return ctx.note("loss_network", ensure_pretrained("vgg16", warn=ctx.warn))


class MADF(TorchModel):
    Config = TrainConfig
    checkpoint = "madf.pt"
    shaping = ("n_refinement_D", "image_size")
    network_depends_on_size = False  # MADFNet reads n_refinement_D only (net.py:145)

    def build(self, cfg: TrainConfig, saved, ctx: Context):
        torch.backends.cudnn.benchmark = True  # train.py:70
        loss_weights(ctx)
        up, args = upstream(), cfg.args()
        model = build_model(cfg, self.device, loading=saved is not None)
        # FullModel (data_parallel.py:4) is the forward train.py:117,124 runs, minus the
        # DataParallel wrapper whose .cuda() (data_parallel.py:59,61) is MADF's only hard-coded
        # CUDA: nothing to patch on a CPU. InpaintingLoss never uses its extractor
        # (loss.py:20-25), so none is built.
        full = up.data_parallel.FullModel(model, up.net.VGG16FeatureExtractor(), args)
        full = full.to(self.device)
        optimizer = torch.optim.Adam(  # train.py:106-107: default betas, no schedule
            [p for p in model.parameters() if p.requires_grad], lr=cfg.lr
        )
        if saved is not None:
            model.load_state_dict(saved["model"], strict=True)
            optimizer.load_state_dict(saved["optimizer"])
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr  # train.py:112-113: a resume restarts at args.lr
        full.train()  # train.py:120
        criterion = up.loss.InpaintingLoss(None, args)
        return SimpleNamespace(model=model, full=full, criterion=criterion, optimizer=optimizer)

    def state(self, nets) -> dict:
        return {"model": nets.model.state_dict(), "optimizer": nets.optimizer.state_dict()}

    def step(self, nets, cfg: TrainConfig, rgb, hole, rng) -> dict[str, torch.Tensor]:
        rgb, hole = augment(rgb, hole, rng, cfg.mask_rotation_deg)
        batch = to_model_space(rgb, hole, self.device)
        return train_step(nets.full, nets.criterion, nets.optimizer, cfg.args(), *batch)

    def generator(self, cfg: TrainConfig, saved, ctx: Context):
        if saved is None:  # describe: `other` counts the loss VGG, which needs its weights
            loss_weights(ctx)
        model = build_model(cfg, self.device, loading=saved is not None)
        if saved is not None:
            model.load_state_dict(saved["model"], strict=True)
        model.eval()  # test.py:60; not chained: MADFNet.train returns None (net.py:265-269)
        return model

    def forward(self, model, rgb, hole):
        masked, mask, _ = to_model_space(rgb, hole, self.device)
        return lambda: model(masked, mask)[-1]  # test.py:33: the last refinement decoder

    from_model_space = staticmethod(from_model_space)  # the module's, above

    def parameters(self, cfg: TrainConfig, model) -> dict:
        with torch.device("meta"):  # shapes only: no 138M-parameter VGG16 initialised to count
            vgg = upstream().net.VGG16FeatureExtractor()
        return {
            "generator": count_parameters(model),
            "discriminator": None,  # MADF trains without a GAN
            "other": {"vgg16_features_loss": count_parameters(vgg)},
        }


MODEL = MADF()
train, predict, describe = handlers(MODEL)

if __name__ == "__main__":
    main(MODEL)
