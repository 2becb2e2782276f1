"""Pure-PyTorch stand-ins for TFill's `model.stylegan_ops` fused operations.

TFill's `model/stylegan_ops/__init__.py` exports `FusedLeakyReLU`, `fused_leaky_relu` and
`upfirdn2d`; its `fused_act.py:9` and `upfirdn2d.py:8` compile NVIDIA CUDA kernels (Source Code
License-NC) with nvcc and ninja at import time, and have no CPU path. The discriminator
(`StyleDiscriminator` through `stylegan_ops/style_function.py`) is their only user.

This module is written from the operations' definitions, not from those files:

- fused bias + leaky ReLU: ``y = scale * leaky_relu(x + b[channel], negative_slope)`` with the
  bias broadcast over dimension 1 (the kernel's `(xi / step_b) % size_b` index);
- upfirdn2d: upsample by zero insertion, pad (a negative pad crops), convolve each channel with
  the 2-D FIR kernel (a true convolution, i.e. correlation with the flipped kernel), then keep
  every `down`-th sample.

Autograd differentiates both (twice as well, for gradient penalties), so no hand-written backward
is needed. `install(model_package)` registers them as `model.stylegan_ops` before TFill's
`model.networks` is imported, leaving `style_function.py` and the state-dict keys unchanged.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def fused_leaky_relu(
    input: torch.Tensor,
    bias: torch.Tensor | None,
    negative_slope: float = 0.2,
    scale: float = 2**0.5,
) -> torch.Tensor:
    """scale · leaky_relu(input + bias), the bias indexed by channel (dimension 1)."""
    if bias is not None and bias.numel():
        shape = [1, bias.numel()] + [1] * (input.ndim - 2)
        input = input + bias.view(shape)
    return F.leaky_relu(input, negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    """Same parameter (`bias`, zeros) and constructor as upstream's, so checkpoints match."""

    def __init__(self, channel: int, negative_slope: float = 0.2, scale: float = 2**0.5) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(input, self.bias, self.negative_slope, self.scale)


def upfirdn2d(
    input: torch.Tensor,
    kernel: torch.Tensor,
    up: int = 1,
    down: int = 1,
    pad: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """Upsample (zeros), FIR-filter, downsample an N×C×H×W tensor; same factors on both axes.

    Output side: (side·up + pad0 + pad1 − k) // down + 1, as upstream's `UpFirDn2d` computes.
    """
    n, c, h, w = input.shape
    pad0, pad1 = pad
    x = input
    if up > 1:
        # sample i lands at i·up; the up−1 positions after it stay zero
        spread = x.new_zeros(n, c, h, up, w, up)
        spread[:, :, :, 0, :, 0] = x
        x = spread.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(pad0, 0), max(pad1, 0), max(pad0, 0), max(pad1, 0)])
    if pad0 < 0 or pad1 < 0:
        x = x[
            :,
            :,
            max(-pad0, 0) : x.shape[2] - max(-pad1, 0),
            max(-pad0, 0) : x.shape[3] - max(-pad1, 0),
        ]
    kh, kw = kernel.shape
    # conv2d correlates; flipping the kernel makes it a convolution. One filter for every channel.
    weight = kernel.flip(0, 1).to(x.dtype).reshape(1, 1, kh, kw)
    out = F.conv2d(x.reshape(n * c, 1, x.shape[2], x.shape[3]), weight, stride=down)
    return out.reshape(n, c, out.shape[2], out.shape[3])


def install(model_package: types.ModuleType) -> types.ModuleType:
    """Register this module's ops as `<model_package>.stylegan_ops` (and its two op submodules).

    Call after `import model` and before `import model.networks`: `style_function.py` is then
    loaded from the checkout by its usual `from . import FusedLeakyReLU, ...`, while
    `fused_act.py`/`upfirdn2d.py` (the nvcc builds) are never executed.
    """
    name = f"{model_package.__name__}.stylegan_ops"
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "upfirdn2d", None) is upfirdn2d:
        return existing
    if existing is not None:
        raise RuntimeError(f"{name} was imported before the pure-PyTorch ops were installed")
    package = types.ModuleType(name, "pure-PyTorch stylegan_ops (images/tfill/stylegan_ops_torch)")
    package.__path__ = [str(Path(model_package.__path__[0]) / "stylegan_ops")]
    package.__package__ = name
    package.FusedLeakyReLU = FusedLeakyReLU  # type: ignore[attr-defined]
    package.fused_leaky_relu = fused_leaky_relu  # type: ignore[attr-defined]
    package.upfirdn2d = upfirdn2d  # type: ignore[attr-defined]
    sys.modules[name] = package
    # `import model.stylegan_ops.fused_act` would otherwise compile the CUDA kernels.
    sys.modules[f"{name}.fused_act"] = sys.modules[__name__]
    sys.modules[f"{name}.upfirdn2d"] = sys.modules[__name__]
    model_package.stylegan_ops = package  # type: ignore[attr-defined]
    return package
