"""P3 adapter step rate: each model image's training iteration against the authors' own.

    INPAINT_UPSTREAM_MADF=… INPAINT_UPSTREAM_AOTGAN=… INPAINT_UPSTREAM_TFILL=… \\
    python benchmarks/p3_step_rate.py [--device cpu|cuda] [--size N] [--batch B] [--steps K]

Ours: the adapter's whole iteration as its train() runs it: a batch drawn from the images
decoded once into memory, its augmentation, the move to the model's space and train_step.
Theirs: the authors' step code as the fidelity tests build it (tests/models/test_*.py: their
Trainer for AOT-GAN, their train.py loop for MADF, their TC model for TFill), fed the way their
datasets feed it: each batch's PNGs decoded from disk and put through their transforms every
step. Both at equal batch and size, on the same device, timed in alternating blocks after
warm-up steps; the rate is the median over the timed steps. Loss networks (VGG) get seeded random
weights on both sides (no download here): the cost is the real one, the losses are not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import REPO, report_targets, write_result

sys.path[:0] = [str(REPO / "tests" / "models"), str(REPO / "tests"), str(REPO)]
os.environ["INPAINT_RANDOM_LOSS_WEIGHTS"] = "1"
os.environ.setdefault("TORCH_HOME", tempfile.mkdtemp(prefix="ib-perf-torch-"))

CPU_SIZES = {"madf": 128, "aotgan": 64, "tfill": 64}  # each model's smallest legal size
TARGET = 1.0


def write_images(root: Path, n: int, size: int) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """n photo crops and n masks as PNGs under root; also returned decoded (the adapters' way)."""
    from PIL import Image
    from skimage import data as photos

    from harness.data.masks import generate_mask
    from harness.data.pngs import write_png

    rng = np.random.default_rng(0)
    source = photos.astronaut()
    rgb, hole, names = [], [], []
    for i in range(n):
        y, x = rng.integers(0, 512 - 256, 2)
        crop = np.asarray(Image.fromarray(source[y : y + 256, x : x + 256]).resize((size, size)))
        mask = generate_mask(size, (0.01, 0.6), 0, i)
        write_png(root / "images" / f"{i:04d}.png", crop)
        write_png(root / "masks" / f"{i:04d}.png", np.where(mask, 255, 0).astype(np.uint8))
        rgb.append(crop)
        hole.append(mask)
        names.append(Path(f"{i:04d}.png"))
    return np.stack(rgb), np.stack(hole), names


class TheirData:
    """Their datasets' way: every batch's files opened and decoded from disk at each step."""

    def __init__(self, root: Path, names: list[Path], batch: int) -> None:
        self.root, self.names, self.batch = root, names, batch
        self.rng = np.random.default_rng(1)

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        from PIL import Image

        pick = self.rng.integers(0, len(self.names), self.batch)
        rgb = [
            np.asarray(Image.open(self.root / "images" / self.names[i]).convert("RGB"))
            for i in pick
        ]
        hole = [
            np.asarray(Image.open(self.root / "masks" / self.names[i]).convert("L")) > 127
            for i in pick
        ]
        return np.stack(rgb), np.stack(hole)


def aotgan(src: Path, data, their_data: TheirData, cfg: dict, device, work: Path):
    import pytest
    from adapters import load_adapter
    from test_aotgan import authors_trainer

    aot = load_adapter("aotgan")
    aot.ensure_pretrained("vgg19", warn=print)
    images, holes = data
    rng = np.random.default_rng(0)
    nets = aot.build_nets(
        aot.TrainConfig(image_size=cfg["size"], batch_size=cfg["batch"]),
        device,
        aot.import_upstream(src),
    )

    def ours() -> None:  # adapter train(): one iteration
        pick = rng.integers(0, len(images), cfg["batch"])
        pick_mask = rng.integers(0, len(holes), cfg["batch"])
        rgb, hole = aot.augment(images[pick], holes[pick_mask], rng)
        aot.train_step(nets, *aot.to_model_space(rgb, hole, device))

    def loader():
        cpu = aot.torch.device("cpu")
        while True:  # their InpaintingData: decode, ToTensor·2−1, mask ToTensor; on the CPU
            image, mask = aot.to_model_space(*their_data(), cpu)
            yield image, mask, ["x.png"] * len(image)

    with pytest.MonkeyPatch.context() as patch:
        trainer, _ = authors_trainer(aot, src, [], work, patch, device)
    trainer.dataloader = loader()

    def theirs() -> None:  # their Trainer.train(), one iteration
        trainer.args.iterations = trainer.iteration + 1
        with aot.cuda_calls_on(device):
            trainer.train()

    return ours, theirs


def madf(src: Path, data, their_data: TheirData, cfg: dict, device, work: Path):
    os.environ["INPAINT_UPSTREAM"] = str(src)
    import torch
    from adapters import load_adapter
    from test_madf import authors_loop

    adapter = load_adapter("madf")
    adapter.ensure_pretrained("vgg16", warn=print)
    images, holes = data
    rng = np.random.default_rng(0)
    config = adapter.TrainConfig(image_size=cfg["size"], batch_size=cfg["batch"])
    up, args = adapter.upstream(), config.args()
    model = adapter.build_model(config, device)
    full = up.data_parallel.FullModel(model, up.net.VGG16FeatureExtractor(), args).to(device)
    criterion = up.loss.InpaintingLoss(None, args)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    their_step, _ = authors_loop(up, model.state_dict(), adapter, device)

    def ours() -> None:
        pick = rng.integers(0, len(images), cfg["batch"])
        pick_mask = rng.integers(0, len(holes), cfg["batch"])
        rgb, hole = adapter.augment(images[pick], holes[pick_mask], rng, config.mask_rotation_deg)
        adapter.train_step(
            full, criterion, optimizer, args, *adapter.to_model_space(rgb, hole, device)
        )

    return ours, lambda: their_step(*their_data())


def tfill(src: Path, data, their_data: TheirData, cfg: dict, device, work: Path):
    import torch
    from adapters import load_adapter
    from test_tfill import authors_batch, authors_opt, authors_packages

    adapter = load_adapter("tfill")
    adapter.sdk_torch.ensure_pretrained("vgg16", warn=print)
    images, holes = data
    rng = np.random.default_rng(0)
    config = adapter.TrainConfig(image_size=cfg["size"], batch_size=cfg["batch"])
    model = adapter.build(config, adapter.upstream(src), device, "coarse", train=True)
    gpu_ids = "0" if device.type == "cuda" else "-1"
    with authors_packages(src, adapter.stylegan_ops_torch) as model_pkg:
        opt = authors_opt(src, cfg["batch"], cfg["size"], gpu_ids)
        torch.manual_seed(0)
        theirs_model = model_pkg.create_model(opt)
        theirs_model.setup(opt)
        theirs_model.parallelize()

    def ours() -> None:
        rgb = images[rng.integers(0, len(images), cfg["batch"])]
        hole = holes[rng.integers(0, len(holes), cfg["batch"])]
        adapter.train_step(model, adapter.to_model_space(rgb, hole, config.working_size, device))

    def theirs() -> None:
        theirs_model.set_input(authors_batch(*their_data()))
        theirs_model.optimize_parameters()

    return ours, theirs


MODELS = {"aotgan": aotgan, "madf": madf, "tfill": tfill}


def timed(step: Callable[[], None], device, n: int) -> list[float]:
    import torch

    out = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - start)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--size", type=int, help="default: each model's smallest (CPU), 256 (GPU)")
    parser.add_argument("--batch", type=int, help="default: 2 (CPU), 8 (GPU)")
    parser.add_argument("--steps", type=int, help="timed steps per side (default 6 CPU, 30 GPU)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--images", type=int, default=64, help="training images on disk")
    args = parser.parse_args()
    import torch

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = cuda  # as the adapters' train() and the authors' scripts
    batch = args.batch or (8 if cuda else 2)
    steps = args.steps or (30 if cuda else 6)
    measurements: dict[str, dict] = {}
    targets: dict[str, bool] = {}
    for name in args.models:
        env = "INPAINT_UPSTREAM_" + name.upper()
        if not os.environ.get(env):
            print(f"  {name}: skipped (set {env} to the authors' checkout)")
            measurements[name] = {"skipped": f"{env} not set"}
            continue
        size = args.size or (256 if cuda else CPU_SIZES[name])
        work = Path(tempfile.mkdtemp(prefix=f"ib-perf-p3-{name}-"))
        data = write_images(work, args.images, size)
        their_data = TheirData(work, data[2], batch)
        cfg = {"size": size, "batch": batch}
        torch.manual_seed(0)
        try:
            ours, theirs = MODELS[name](
                Path(os.environ[env]), data[:2], their_data, cfg, device, work
            )
            timed(ours, device, args.warmup)
            timed(theirs, device, args.warmup)
            our_times: list[float] = []
            their_times: list[float] = []
            for _ in range(2):  # alternate, so drift in the machine's load hits both sides
                our_times += timed(ours, device, steps // 2)
                their_times += timed(theirs, device, steps // 2)
        except Exception as error:  # one model's failure must not lose the others' numbers
            traceback.print_exc()
            measurements[name] = {"error": f"{type(error).__name__}: {error}"}
            targets[f"{name}: measured"] = False
            continue
        ours_s, theirs_s = statistics.median(our_times), statistics.median(their_times)
        ratio = theirs_s / ours_s
        print(f"  {name:6s} {size}px batch {batch} on {args.device}: ours {1 / ours_s:6.2f} it/s, "
              f"authors' {1 / theirs_s:6.2f} it/s → {ratio:.2f}×")  # fmt: skip
        measurements[name] = {
            "size": size,
            "batch": batch,
            "steps_each": len(our_times),
            "ours_s_per_step": our_times,
            "theirs_s_per_step": their_times,
            "ours_it_per_s": 1 / ours_s,
            "theirs_it_per_s": 1 / theirs_s,
            "ratio": ratio,
        }
        targets[f"{name}: adapter ≥ {TARGET}× the authors' step rate ({ratio:.2f}×)"] = (
            ratio >= TARGET
        )
        del ours, theirs
        if cuda:
            torch.cuda.empty_cache()
    report_targets(targets)
    measurements["load_after"] = os.getloadavg()
    measurements["loss_networks"] = "seeded random VGG weights (same cost; losses not real)"
    name = "p3_step_rate" + ("_cuda" if cuda else "")
    print(f"  → {write_result(name, measurements, targets)}")
    return 0 if targets and all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
