"""gatedconv: the reference learned model and the template for adding one, behind contract v1.

    python adapter.py train    $INPAINT_JOB   # train until budget, max_steps or SIGTERM; resumes
    python adapter.py predict  $INPAINT_JOB   # one composited PNG per input
    python adapter.py describe $INPAINT_JOB   # parameters, FLOPs, latency, peak memory

This file is only the model: its config, conventions, networks, one training step and the predict
forward. The SDK's `inpaint_loop` runs the commands (config, seeding, data, resume, checkpoints,
budget and SIGTERM, events, describe.json). A new model copies this file and replaces the pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from inpaint_loop import Context, JobConfig, TorchModel, handlers, main
from inpaint_torch import count_parameters
from model import GatedUNet


@dataclass(frozen=True)
class TrainConfig(JobConfig):
    """Defaults equal manifest.json's; the job's `hyperparameters` override them by name."""

    width: int = 16
    lr: float = 1e-3
    hole_weight: float = 6.0
    valid_weight: float = 1.0
    image_size: int = 256
    batch_size: int = 8


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


# --- the model's pieces ----------------------------------------------------------------------


class GatedConv(TorchModel):
    Config = TrainConfig
    checkpoint = "gatedconv.pt"
    shaping = ("width", "image_size")  # a resumed run must have the same network
    stop_before_overrun = False  # steps of milliseconds: train to the end of the budget

    def build(self, cfg: TrainConfig, saved, ctx: Context):
        model = GatedUNet(cfg.width).to(self.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        if saved is not None:
            model.load_state_dict(saved["model"], strict=True)
            optimizer.load_state_dict(saved["optimizer"])
        return model, optimizer

    def state(self, nets) -> dict:
        model, optimizer = nets
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict()}

    def step(self, nets, cfg: TrainConfig, rgb, hole, rng) -> dict[str, torch.Tensor]:
        model, optimizer = nets
        image, mask = to_model_space(rgb, hole, self.device)
        if rng.random() < 0.5:
            image = image.flip(-1)
        l1 = (forward(model, image, mask) - image).abs()
        loss = cfg.hole_weight * (l1 * mask).mean() + cfg.valid_weight * (l1 * (1 - mask)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"total": loss.detach()}

    def generator(self, cfg: TrainConfig, saved, ctx: Context):
        model = GatedUNet(cfg.width).to(self.device)
        if saved is not None:
            model.load_state_dict(saved["model"], strict=True)
        return model.eval()

    def forward(self, model, rgb, hole):
        image, mask = to_model_space(rgb, hole, self.device)
        return lambda: forward(model, image, mask)

    from_model_space = staticmethod(from_model_space)  # the module's, above

    def parameters(self, cfg: TrainConfig, model) -> dict:
        return {"generator": count_parameters(model), "discriminator": None, "other": {}}


MODEL = GatedConv()
train, predict, describe = handlers(MODEL)

if __name__ == "__main__":
    main(MODEL)
