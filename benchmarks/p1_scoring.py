"""P1 scoring throughput: our scorer against the seed report's method and the LPIPS trunk floor.

    python benchmarks/p1_scoring.py [--images 300] [--models 5] [--device cpu|cuda] [--quick]

One test set (photo crops at 256², seeded masks of every area bin) predicted by five synthetic
"models" (each writes composites, as the contract asks), scored three ways in one run:

- seed: the seed report's method: per pair, PIL decodes both images, skimage PSNR and SSIM, one
  lpips forward of the pair, spread over a thread pool of all CPUs;
- ours: images/metrics/score.py `score_sets` (ground truth decoded and its LPIPS features taken
  once for all models; psnr, ssim and lpips, the seed's three);
- floor: the LPIPS trunk's forwards alone (one per prediction, one per ground truth), on tensors
  already in memory, in the same batches and through the same call (`LPIPSScorer.trunk`) as
  ours: what no scorer that computes LPIPS can go under.

The three must agree (PSNR/SSIM ≤ 1e-6, LPIPS ≤ 1e-5). The trunk has seeded random weights (no
download here), which costs what the real one costs; the scores are NOT real LPIPS values.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import REPO, Stopwatch, report_targets, write_result

sys.path[:0] = [str(REPO / "images" / "metrics"), str(REPO / "contracts" / "sdk"), str(REPO)]

SIZE = 256
TARGET_VS_SEED = 2.5
TARGET_VS_FLOOR = 1.3


def make_test_set(root: Path, images: int, models: int, seed: int = 0) -> list[Path]:
    """gt/, masks/ and pred<k>/ under root; returns the prediction folders. Reused if present."""
    from PIL import Image, ImageFilter
    from skimage import data as photos

    from harness.data.masks import generate_mask
    from harness.data.pngs import write_png

    folders = [root / f"pred{k}" for k in range(models)]
    done = root / f".done-{images}-{models}"
    if done.is_file():
        return folders
    sources = [photos.astronaut(), photos.coffee(), photos.chelsea(), photos.rocket()]
    rng = np.random.default_rng(seed)
    for i in range(images):
        photo = sources[i % len(sources)]
        y = int(rng.integers(0, photo.shape[0] - SIZE + 1))
        x = int(rng.integers(0, photo.shape[1] - SIZE + 1))
        gt = np.ascontiguousarray(photo[y : y + SIZE, x : x + SIZE, :3])
        if rng.random() < 0.5:
            gt = np.ascontiguousarray(gt[:, ::-1])
        hole = generate_mask(SIZE, (0.01, 0.6), seed, i)
        name = f"{i:06d}.png"
        write_png(root / "gt" / name, gt)
        write_png(root / "masks" / name, np.where(hole, 255, 0).astype(np.uint8))
        blurred = np.asarray(Image.fromarray(gt).filter(ImageFilter.GaussianBlur(4)))
        fills = [
            blurred,
            np.broadcast_to(gt[~hole].mean(axis=0).astype(np.uint8), gt.shape),
            np.clip(gt + rng.normal(0, 12, gt.shape), 0, 255).astype(np.uint8),
            np.roll(gt, 9, axis=1),
            255 - blurred,
        ]
        for k, folder in enumerate(folders):
            write_png(folder / name, np.where(hole[..., None], fills[k % len(fills)], gt))
    done.touch()
    return folders


def seed_method(
    root: Path, folders: list[Path], scorer, device: str
) -> dict[tuple[str, str], tuple]:
    """The seed report's loop: PIL, skimage PSNR + SSIM and lpips per pair, in a thread pool."""
    import lpips
    import torch
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    def one(pred_path: Path) -> tuple:
        pred = np.asarray(Image.open(pred_path).convert("RGB"))
        gt = np.asarray(Image.open(root / "gt" / pred_path.name).convert("RGB"))
        psnr = peak_signal_noise_ratio(gt, pred, data_range=255)
        ssim = structural_similarity(pred, gt, channel_axis=-1, data_range=255)
        # IEEE fp32 as ours (cuDNN would use TF32 on a GPU): the same numbers, the same cost
        with torch.no_grad(), scorer._precise():
            d = scorer.model(lpips.im2tensor(pred).to(device), lpips.im2tensor(gt).to(device))
        return psnr, ssim, float(d.item())

    paths = [p for folder in folders for p in sorted(folder.glob("*.png"))]
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        values = list(pool.map(one, paths))
    return {(p.parent.name, p.name): v for p, v in zip(paths, values, strict=True)}


def floor(root: Path, folders: list[Path], scorer) -> float:
    """Seconds for the trunk's forwards alone: every prediction and every ground truth once."""
    import torch
    from inpaint_sdk import read_rgb

    batches = []
    for folder in [root / "gt", *folders]:
        images = np.stack([read_rgb(p) for p in sorted(folder.glob("*.png"))])
        for start in range(0, len(images), scorer.batch_size):
            batches.append(torch.from_numpy(images[start : start + scorer.batch_size]))
    with torch.inference_mode(), scorer._precise():
        scorer.trunk(batches[0])  # warm-up
        sync(scorer.device)
        with Stopwatch() as watch:
            for batch in batches:
                scorer.trunk(batch)
            sync(scorer.device)
    return watch.seconds


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def ours(
    root: Path, folders: list[Path], device: str, weights: Path, batch: int
) -> dict[tuple[str, str], tuple]:
    import score

    out = root / "scores"
    sets = [score.PredictionSet(f, out / f"{f.name}.csv") for f in folders]
    score.score_sets(
        root / "gt",
        root / "masks",
        sets,
        metrics=["psnr", "ssim", "lpips"],
        lpips_batch_size=batch,
        device=device,
        weights_dir=weights,
        allow_random_backbone=True,
    )
    values = {}
    for folder in folders:
        with open(out / f"{folder.name}.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["variant"] == "raw":
                    key = (folder.name, row["image"])
                    values[key] = (float(row["psnr"]), float(row["ssim"]), float(row["lpips"]))
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ib-perf-p1")
    parser.add_argument("--batch", type=int, default=32, help="LPIPS batch (ours and floor)")
    parser.add_argument("--quick", action="store_true", help="60 images: to try things out")
    args = parser.parse_args()
    images = 60 if args.quick else args.images
    import metrics
    import torch

    root = args.work / f"{images}x{args.models}"
    weights = root / "no-weights"  # empty: the seeded random trunk (plumbing, not real LPIPS)
    weights.mkdir(parents=True, exist_ok=True)
    with Stopwatch() as made:
        folders = make_test_set(root, images, args.models)
    pairs = images * len(folders)
    print(
        f"P1 scoring: {images} images × {len(folders)} models = {pairs} pairs at {SIZE}² on "
        f"{args.device} (test set ready in {made.seconds:.1f} s; LPIPS trunk random)"
    )
    scorer = metrics.LPIPSScorer(
        "alex", args.device, args.batch, weights, allow_random_backbone=True
    )
    floor(root, folders[:1], scorer)  # warm the caches and torch's kernels once for all three
    with Stopwatch() as seed_watch:
        seed_values = seed_method(root, folders, scorer, args.device)
    with Stopwatch() as our_watch:
        our_values = ours(root, folders, args.device, weights, args.batch)
    floor_s = floor(root, folders, scorer)
    diffs = np.array([np.abs(np.subtract(our_values[k], seed_values[k])) for k in seed_values])
    worst = {m: float(diffs[:, i].max()) for i, m in enumerate(("psnr", "ssim", "lpips"))}
    rates = {
        "seed_pairs_per_s": pairs / seed_watch.seconds,
        "ours_pairs_per_s": pairs / our_watch.seconds,
        "floor_pairs_per_s": pairs / floor_s,
    }
    vs_seed = seed_watch.seconds / our_watch.seconds
    vs_floor = our_watch.seconds / floor_s
    for name, seconds in (("seed", seed_watch.seconds), ("ours", our_watch.seconds)):
        print(f"  {name:5s} {seconds:7.2f} s  {pairs / seconds:7.1f} pairs/s")
    print(f"  floor {floor_s:7.2f} s  {pairs / floor_s:7.1f} pairs/s (trunk forwards alone)")
    print(f"  ours vs seed: {vs_seed:.2f}× faster; ours / floor: {vs_floor:.2f}×")
    print(f"  largest |ours − seed|: psnr {worst['psnr']:.2g}, ssim {worst['ssim']:.2g}, "
          f"lpips {worst['lpips']:.2g}")  # fmt: skip
    targets = {
        f"ours ≥ {TARGET_VS_SEED}× the seed's method ({vs_seed:.2f}×)": vs_seed >= TARGET_VS_SEED,
        f"ours within {TARGET_VS_FLOOR}× of the trunk floor ({vs_floor:.2f}×)": vs_floor
        <= TARGET_VS_FLOOR,
        "values equal: PSNR/SSIM ≤ 1e-6, LPIPS ≤ 1e-5": worst["psnr"] <= 1e-6
        and worst["ssim"] <= 1e-6
        and worst["lpips"] <= 1e-5,
    }
    report_targets(targets)
    measurements = {
        "images": images,
        "models": len(folders),
        "pairs": pairs,
        "size": SIZE,
        "device": args.device,
        "lpips_batch": args.batch,
        "torch_threads": torch.get_num_threads(),
        "seconds": {"seed": seed_watch.seconds, "ours": our_watch.seconds, "floor": floor_s},
        **rates,
        "ours_vs_seed": vs_seed,
        "ours_over_floor": vs_floor,
        "max_abs_diff": worst,
        "lpips_trunk": "seeded random (same cost as the real one; values not real LPIPS)",
        "load_before": os.getloadavg(),
    }
    name = (
        "p1_scoring" + ("_cuda" if args.device == "cuda" else "") + ("_quick" if args.quick else "")
    )
    print(f"  → {write_result(name, measurements, targets)}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
