"""A compact gated-convolution U-Net: every conv is gated (Yu et al., ICCV 2019, eq. 1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GatedConv(nn.Module):
    """features · sigmoid(gate): the gate learns where the hole's features can be trusted."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1):
        super().__init__()
        pad = dilation * (k - 1) // 2
        self.conv = nn.Conv2d(cin, 2 * cout, k, stride, pad, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat, gate = self.conv(x).chunk(2, dim=1)
        return F.elu(feat) * torch.sigmoid(gate)


class GatedUNet(nn.Module):
    """(masked image in [-1, 1] with holes 0, hole mask 1 = hole) → image in [-1, 1]."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.enc1 = GatedConv(4, w, 5)
        self.enc2 = GatedConv(w, 2 * w, 3, stride=2)
        self.enc3 = GatedConv(2 * w, 4 * w, 3, stride=2)
        self.enc4 = GatedConv(4 * w, 4 * w, 3, stride=2)
        self.mid = nn.Sequential(
            GatedConv(4 * w, 4 * w, 3, dilation=2), GatedConv(4 * w, 4 * w, 3, dilation=4)
        )
        self.dec3 = GatedConv(8 * w, 4 * w)
        self.dec2 = GatedConv(6 * w, 2 * w)
        self.dec1 = GatedConv(3 * w, w)
        self.out = nn.Conv2d(w, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(torch.cat([image, hole], dim=1))
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        x = self.mid(self.enc4(e3))
        x = self.dec3(torch.cat([F.interpolate(x, size=e3.shape[-2:]), e3], dim=1))
        x = self.dec2(torch.cat([F.interpolate(x, size=e2.shape[-2:]), e2], dim=1))
        x = self.dec1(torch.cat([F.interpolate(x, size=e1.shape[-2:]), e1], dim=1))
        return torch.tanh(self.out(x))
