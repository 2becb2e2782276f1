"""aotgan: AOT-GAN (Zeng et al., TVCG 2022) from the authors' code, behind contract v1.

    python adapter.py train    $INPAINT_JOB   # train until budget, max_steps or SIGTERM; resumes
    python adapter.py predict  $INPAINT_JOB   # one composited PNG per input
    python adapter.py describe $INPAINT_JOB   # parameters, FLOPs, latency, peak memory

The generator, discriminator and losses are imported from the authors' checkout at
$INPAINT_UPSTREAM (default /inpaint/upstream: researchmm/AOT-GAN-for-Inpainting at 2cd1afd), never
copied. `train_step` is their training iteration (src/trainer/trainer.py:99-125) in their order;
their Trainer, data loader and option parser are not used (utils/option.py parses argv at import).
A step is one iteration: one Adam step of G and one of D on one batch; the SDK's inpaint_loop
runs everything around it. Of the authors' augmentations (data/dataset.py:24-38) the cheap ones
are kept: flips of images and of masks, and mask rotation by U(0, 45)° (nearest). Not kept:
RandomResizedCrop (the benchmark's images already are image_size²) and ColorJitter(0.05).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torchvision
from inpaint_loop import Context, JobConfig, TorchModel, handlers, main
from inpaint_sdk import Events as Events  # re-exported: in-process callers build jobs here
from inpaint_sdk import Job as Job
from inpaint_sdk import JobInvalid
from inpaint_sdk import StopFlag as StopFlag
from inpaint_torch import count_parameters, ensure_pretrained
from inpaint_upstream import checkout, importing_from
from torchvision.transforms.functional import InterpolationMode, rotate

# The checkout's top-level names under src/: generic enough that other code uses them too.
UPSTREAM_PACKAGES = ("model", "loss", "data", "trainer", "utils", "metric")
CHECKPOINT = "aotgan.pt"


@dataclass(frozen=True)
class TrainConfig(JobConfig):
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

    def __post_init__(self) -> None:
        size = self.image_size
        if size < 64 or size % 4:
            # two stride-2 convs, then ReflectionPad2d(8) at size/4 (model/aotgan.py:17-23,58)
            raise JobInvalid(f"image_size: {size} must be a multiple of 4 and at least 64")


# --- the authors' code ---------------------------------------------------------------------


def upstream_on_path(src: str | Path | None = None) -> AbstractContextManager[Path]:
    """The checkout's src/ first on sys.path while importing from it (then restored): its names
    (model, loss, ...) also belong to other code that may share the process."""
    root = checkout("src/model/aotgan.py", "AOT-GAN", src)
    return importing_from(root / "src", UPSTREAM_PACKAGES)


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
    optG = torch.optim.Adam(G.parameters(), lr=cfg.lrg, betas=(cfg.beta1, cfg.beta2))
    optD = torch.optim.Adam(D.parameters(), lr=cfg.lrd, betas=(cfg.beta1, cfg.beta2))
    return SimpleNamespace(
        G=G, D=D, optG=optG, optD=optD, rec=rec, adv=adv, adv_weight=cfg.adv_weight
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


# --- the model's pieces ----------------------------------------------------------------------


class AOTGAN(TorchModel):
    Config = TrainConfig
    checkpoint = CHECKPOINT
    shaping = ("block_num", "rates", "image_size")
    lr_field = "lrg"
    network_depends_on_size = False  # InpaintGenerator reads block_num and rates only

    def build(self, cfg: TrainConfig, saved, ctx: Context):
        torch.backends.cudnn.benchmark = True  # as upstream train.py:36-37
        up = import_upstream()
        ctx.note("loss_network", ensure_pretrained("vgg19", warn=ctx.warn))
        nets = build_nets(cfg, self.device, up)
        if saved is not None:
            nets.G.load_state_dict(saved["G"], strict=True)
            nets.D.load_state_dict(saved["D"], strict=True)
            nets.optG.load_state_dict(saved["optG"])
            nets.optD.load_state_dict(saved["optD"])
        return nets

    def state(self, nets) -> dict:
        return {k: getattr(nets, k).state_dict() for k in ("G", "D", "optG", "optD")}

    def step(self, nets, cfg: TrainConfig, rgb, hole, rng) -> dict[str, torch.Tensor]:
        rgb, hole = augment(rgb, hole, rng)
        return train_step(nets, *to_model_space(rgb, hole, self.device))

    def generator(self, cfg: TrainConfig, saved, ctx: Context):
        G = make_generator(asdict(cfg), import_upstream()).to(self.device)
        if saved is not None:
            G.load_state_dict(saved["G"], strict=True)
        return G.eval()  # as upstream test.py:27

    def forward(self, G, rgb, hole):
        image, mask = to_model_space(rgb, hole, self.device)
        return lambda: G(masked_input(image, mask), mask)

    from_model_space = staticmethod(from_model_space)  # the module's, above

    def parameters(self, cfg: TrainConfig, G) -> dict:
        # Style and Perceptual each hold their own frozen VGG19 (loss/loss.py:21,37): features
        with torch.device("meta"):  # shapes only, no weights
            vgg19 = count_parameters(torchvision.models.vgg19(weights=None).features)
            discriminator = count_parameters(import_upstream().Discriminator())
        return {
            "generator": count_parameters(G),
            "discriminator": discriminator,
            "other": {"vgg19_style_loss": vgg19, "vgg19_perceptual_loss": vgg19},
        }


MODEL = AOTGAN()
train, predict, describe = handlers(MODEL)

if __name__ == "__main__":
    main(MODEL)
