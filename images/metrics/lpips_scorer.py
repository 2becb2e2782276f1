"""LPIPS v0.1 for inpainting: the scorer, its trunk weights and the weights-missing statuses.

    scorer = LPIPSScorer("alex")                # WeightsMissing if the trunk is not on disk
    d = scorer(pred, gt)                        # uint8 N×H×W×3 batches → float64 (N,)

Convention (anchors §5): the lpips package's LPIPS v0.1, inputs scaled to [-1, 1], alexnet or
vgg16 trunk. torch and lpips are imported only when an LPIPSScorer is built, so the
weights-missing check (and importers that need only the statuses or WeightsMissing, as fid.py)
run without them. The numpy metrics and the METRICS registry are in metrics.py.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from metrics import _check_batch, check_images

# Torchvision backbones by lpips net name, with their full sha256. Same as
# contracts/sdk/inpaint_weights.py PRETRAINED (a test checks it); kept here so that the
# weights-missing check needs no torch. images/metrics/Dockerfile bakes these files.
LPIPS_BACKBONES: dict[str, tuple[str, str]] = {
    "alex": (
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
    ),
    "vgg": (
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    ),
}
# The smallest side each trunk takes: alexnet's conv1 (11/4) and two 3/2 max-pools; vgg16's four
# 2/2 max-pools before relu5_3.
LPIPS_MIN_SIZE = {"alex": 31, "vgg": 16}
LPIPS_EPS = 1e-10  # lpips.normalize_tensor's eps
WEIGHTS_MISSING = "n/a (weights missing)"
RANDOM_BACKBONE = "random (test only)"
PRETRAINED = "pretrained"


class WeightsMissing(RuntimeError):
    """The LPIPS backbone file is absent: report the column as `n/a (weights missing)`."""


class WeightsCorrupt(RuntimeError):
    """The LPIPS backbone file is there but is not the expected one (sha256 or keys)."""


def torch_home() -> Path:
    """$TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch (torch.hub's own rule)."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "torch"


def backbone_path(net: str, weights_dir: Path | None = None) -> Path:
    """Where torch.hub keeps the backbone: <weights_dir or TORCH_HOME>/hub/checkpoints/<file>."""
    url, _ = LPIPS_BACKBONES[net]
    root = Path(weights_dir) if weights_dir is not None else torch_home()
    return root / "hub" / "checkpoints" / url.rsplit("/", 1)[1]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class LPIPSFeatures:
    """Unit-normalised trunk activations of a batch, one N×C×h×w tensor per LPIPS layer."""

    layers: tuple[Any, ...]

    def __len__(self) -> int:
        return int(self.layers[0].shape[0])

    def __getitem__(self, index: slice | np.ndarray) -> LPIPSFeatures:
        """Rows by slice or integer index array (e.g. the images a variant still needs)."""
        return LPIPSFeatures(tuple(layer[index] for layer in self.layers))

    @classmethod
    def cat(cls, parts: list[LPIPSFeatures]) -> LPIPSFeatures:
        """Rows of several batches, in order (e.g. parts computed by different threads)."""
        if len(parts) == 1:
            return parts[0]
        import torch

        return cls(
            tuple(torch.cat(layer) for layer in zip(*(p.layers for p in parts), strict=True))
        )

    def to(self, device: Any) -> LPIPSFeatures:
        """Move (e.g. to "cpu" to keep ground-truth features across models)."""
        return LPIPSFeatures(tuple(layer.to(device) for layer in self.layers))


class LPIPSScorer:
    """LPIPS v0.1 distances (lpips package), with ground-truth features reusable across models.

    Inputs are uint8 N×H×W×3 in [0, 255], scaled to [−1, 1] as x/127.5 − 1 (lpips.im2tensor). The
    distance is Σ_layers mean_hw(w_l · (f̂_l(pred) − f̂_l(gt))²), f̂ the channel-normalised trunk
    activations and w_l the lpips linear layers (which ship in the lpips wheel). Spatial mean, no
    resizing; ≥ 0, lower is better. Batched by `batch_size` on `device` ("auto": CUDA if present).

        scorer = LPIPSScorer("alex")
        gt_features = scorer.features(gt)           # once per ground truth
        d = scorer.distance(pred, gt_features)      # per model / variant
        d = scorer(pred, gt)                        # the same in one call

    The trunk (alexnet/vgg16) comes from <weights_dir or TORCH_HOME>/hub/checkpoints, checked
    against its sha256 prefix; nothing is downloaded. Missing → `WeightsMissing`. Only with
    `allow_random_backbone=True` (tests) is a seeded random trunk used; `weights` then reads
    RANDOM_BACKBONE so every result can carry the flag.
    """

    def __init__(
        self,
        net: str = "alex",
        device: str = "auto",
        batch_size: int = 32,
        weights_dir: Path | None = None,
        *,
        allow_random_backbone: bool = False,
        seed: int = 0,
    ) -> None:
        if net not in LPIPS_BACKBONES:
            raise ValueError(f"net: expected one of {sorted(LPIPS_BACKBONES)}, got {net!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected ≥ 1, got {batch_size}")
        path = backbone_path(net, weights_dir)
        if path.is_file():
            digest = _sha256(path)
            if digest != LPIPS_BACKBONES[net][1]:
                raise WeightsCorrupt(
                    f"{path}: sha256 {digest[:12]}… is not the pinned "
                    f"{LPIPS_BACKBONES[net][1][:12]}…; rebuild the metrics image"
                )
            self.weights, self.provenance = PRETRAINED, f"{path.name} sha256 {digest}"
        elif allow_random_backbone:
            self.weights = self.provenance = RANDOM_BACKBONE
        else:
            raise WeightsMissing(
                f"{path}: LPIPS {net} backbone weights are missing; they are baked into the "
                "metrics image at build time (images/metrics/Dockerfile), or pass weights_dir"
            )
        import lpips
        import torch

        self._torch = torch
        self.net, self.batch_size = net, batch_size
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        # pnet_rand=True: lpips never asks torchvision to download; the trunk is loaded below.
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            torch.manual_seed(seed)  # the same random trunk in every process (tests)
            warnings.filterwarnings("ignore", message=".*deprecated since 0.13")  # pretrained=
            model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        if self.weights == PRETRAINED:
            load_backbone(model.net, torch.load(path, map_location="cpu", weights_only=True))
        model = model.eval().requires_grad_(False).to(self.device)
        self.model = model.to(memory_format=torch.channels_last)
        # Each NetLinLayer is (Dropout,) Conv2d(C, 1, 1, bias=False): its weights as a C vector.
        self._weights = [lin.model[-1].weight.flatten() for lin in model.lins]

    def _batches(self, images: np.ndarray) -> Iterator[tuple[int, Any]]:
        torch = self._torch
        if min(images.shape[1:3]) < LPIPS_MIN_SIZE[self.net]:
            raise ValueError(
                f"LPIPS {self.net} needs images of at least {LPIPS_MIN_SIZE[self.net]} px a side, "
                f"got {images.shape[1:3]}"
            )
        for start in range(0, len(images), self.batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + self.batch_size]))
            yield start, self.trunk(chunk)

    def trunk(self, chunk: Any) -> tuple[Any, ...]:
        """The trunk's five activations of a uint8 N×H×W×3 tensor (the un-normalised features).

        The batch stays channels-last (N×H×W×3 permuted), as the trunk's weights are: oneDNN's
        convolutions skip two layout conversions per layer that way.
        """
        x = chunk.to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return tuple(self.model.net.forward(self.model.scaling_layer(x)))

    def _normalize(self, feat: Any) -> Any:
        """lpips.normalize_tensor (x / (‖x‖₂ over channels + 1e-10)) in two passes, not five.

        vector_norm is one fused reduction where lpips squares, sums and takes the root in
        separate passes over the map (values ≤ 1e-9 apart from lpips' order).
        """
        norm = self._torch.linalg.vector_norm(feat, dim=1, keepdim=True)
        return feat / norm.add_(LPIPS_EPS)

    @contextmanager
    def _precise(self) -> Iterator[None]:
        # cuDNN convolutions default to TF32 on Ampere+; scores use IEEE fp32 on every card.
        if self.device.type != "cuda":
            yield
            return
        conv = self._torch.backends.cudnn.conv
        previous = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = previous

    def features(self, gt: np.ndarray) -> LPIPSFeatures:
        """The normalised trunk activations of `gt` (uint8 N×H×W×3), on the scorer's device."""
        _check_batch("gt", gt)
        torch = self._torch
        parts: list[list[Any]] = []
        with torch.inference_mode(), self._precise():
            for _, outs in self._batches(gt):
                parts.append([self._normalize(out) for out in outs])
        return LPIPSFeatures(tuple(torch.cat(layer) for layer in zip(*parts, strict=True)))

    def distance(self, pred: np.ndarray, gt_features: LPIPSFeatures) -> np.ndarray:
        """LPIPS of each `pred` image against the matching `gt_features` row; float64 (N,)."""
        _check_batch("pred", pred)
        if len(pred) != len(gt_features):
            raise ValueError(f"{len(pred)} predictions but {len(gt_features)} gt feature rows")
        torch = self._torch
        out = np.empty(len(pred), dtype=np.float64)
        with torch.inference_mode(), self._precise():
            for start, outs in self._batches(pred):
                total = 0  # summed in layer order, as lpips.LPIPS.forward does
                for k, feat in enumerate(outs):
                    ref = gt_features.layers[k][start : start + len(feat)].to(self.device)
                    # in place: the maps are too large for the cache, and each pass costs
                    diff = self._normalize(feat).sub_(ref).square_()
                    # lpips applies its 1×1 linear layer, then the spatial mean; both are linear,
                    # so the mean goes first: one pass over the map instead of two (≤ 1e-7 apart)
                    total = total + diff.mean([2, 3]) @ self._weights[k]
                out[start : start + len(feat)] = total.double().cpu().numpy()
        return out

    def __call__(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        check_images(pred, gt)
        return self.distance(pred, self.features(gt))


def load_backbone(net: Any, state: dict[str, Any]) -> None:
    """Copy torchvision `features.<i>.*` weights into lpips' trunk slices (`slice<k>.<i>.*`)."""
    mapped = {}
    for slice_name, block in net.named_children():
        for index, layer in block.named_children():
            for param, _ in layer.named_parameters():
                key = f"features.{index}.{param}"
                if key not in state:
                    raise WeightsCorrupt(f"backbone state dict has no {key}")
                mapped[f"{slice_name}.{index}.{param}"] = state[key]
    net.load_state_dict(mapped, strict=True)
