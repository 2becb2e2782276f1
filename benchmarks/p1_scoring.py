"""P1 scoring throughput: our scorer against the seed report's method and the LPIPS trunk floor.

    python benchmarks/p1_scoring.py [--images 120] [--models 5] [--rounds 3] [--device cpu|cuda]
                                    [--burn N] [--quick]

One test set (photo crops at 256², seeded masks of every area bin) predicted by five synthetic
"models" (each writes composites, as the contract asks), scored three ways, each in a fresh
process, alternated for several rounds (the order rotates each round); the ratios are taken
from the medians, so that they do not depend on what else the machine did during one of them.
The load average before each process is recorded; `--burn N` starts N busy processes of its own
for the whole run (a known extra load, e.g. `--burn 2` on an otherwise quiet machine).

- seed: the seed report's method: per pair, PIL decodes both images, skimage PSNR and SSIM, one
  lpips forward of the pair, spread over a thread pool of all CPUs;
- ours: images/metrics/score.py `score_sets` (ground truth decoded and its LPIPS features taken
  once for all models; psnr, ssim and lpips, the seed's three);
- floor: the LPIPS trunk's forwards alone (one per prediction, one per ground truth), on tensors
  already in memory, through the same call (`LPIPSScorer.trunk`) as ours, the faster of two ways
  on the CPU (batches on torch's threads, or one-thread tasks as ours): what no scorer that
  computes LPIPS can go under.

Each process imports torch and readies the device first (`import_s`, reported, not timed:
every method pays it alike); the clock then runs from building the LPIPS network to the last
value. The three must agree (PSNR/SSIM ≤ 1e-6, LPIPS ≤ 1e-5). The trunk has seeded random
weights (no download here), which costs what the real one costs; the scores are NOT real LPIPS.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
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


def seed_method(root: Path, folders: list[Path], device: str, batch: int) -> dict[str, tuple]:
    """The seed report's loop: PIL, skimage PSNR + SSIM and lpips per pair, in a thread pool."""
    import lpips
    import lpips_scorer
    import torch
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    scorer = lpips_scorer.LPIPSScorer(
        "alex", device, batch, root / "no-weights", allow_random_backbone=True
    )

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
    return {f"{p.parent.name}/{p.name}": v for p, v in zip(paths, values, strict=True)}


def floor(root: Path, folders: list[Path], device: str, batch: int) -> dict[str, float]:
    """Wall and CPU seconds of the trunk's forwards alone: each prediction and ground truth once.

    On the CPU two ways, the faster one being the floor: batches of `batch` on torch's threads
    (`threads_*`), and each batch split over a thread pool of one-thread tasks, as ours runs it
    (`tasks_*`).
    """
    import lpips_scorer
    import torch
    from inpaint_sdk import read_rgb

    scorer = lpips_scorer.LPIPSScorer(
        "alex", device, batch, root / "no-weights", allow_random_backbone=True
    )
    batches = []
    for folder in [root / "gt", *folders]:
        images = np.stack([read_rgb(p) for p in sorted(folder.glob("*.png"))])
        for start in range(0, len(images), scorer.batch_size):
            batches.append(torch.from_numpy(images[start : start + scorer.batch_size]))

    def forward(part) -> None:
        with torch.inference_mode(), scorer._precise():
            scorer.trunk(part)

    forward(batches[0])  # warm-up
    sync(scorer.device)
    with Stopwatch() as watch:
        for batch_images in batches:
            forward(batch_images)
        sync(scorer.device)
    out = {"threads_s": watch.seconds, "threads_cpu_s": watch.cpu_seconds}
    if scorer.device.type == "cpu":
        workers = len(os.sched_getaffinity(0))
        parts = [p for b in batches for p in torch.tensor_split(b, workers)]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(forward, parts[:workers]))  # warm-up at this batch size
            with Stopwatch() as watch:
                list(pool.map(forward, parts))
        torch.set_num_threads(threads)
        out |= {"tasks_s": watch.seconds, "tasks_cpu_s": watch.cpu_seconds}
    way = "tasks" if out.get("tasks_s", math.inf) < out["threads_s"] else "threads"
    return {**out, "seconds": out[f"{way}_s"], "cpu_s": out[f"{way}_cpu_s"], "floor_way": way}


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def ours(root: Path, folders: list[Path], device: str, batch: int) -> dict[str, tuple]:
    import score

    out = root / "scores"
    sets = [score.PredictionSet(f, out / f"{f.name}.csv") for f in folders]
    results = score.score_sets(
        root / "gt",
        root / "masks",
        sets,
        metrics=["psnr", "ssim", "lpips"],
        lpips_batch_size=batch,
        device=device,
        weights_dir=root / "no-weights",
        allow_random_backbone=True,
    )
    values = {}
    for folder in folders:
        with open(out / f"{folder.name}.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["variant"] == "raw":
                    key = f"{folder.name}/{row['image']}"
                    values[key] = (float(row["psnr"]), float(row["ssim"]), float(row["lpips"]))
    values["timings_s"] = results[0].metadata["timings_s"]  # type: ignore[assignment]
    return values


def child(args: argparse.Namespace) -> int:
    """One method in this process; prints {"seconds", "cpu_s", "import_s"}, writes its values."""
    started = time.perf_counter()
    import torch

    torch.zeros(1, device=args.device)  # the CUDA context, when there is one: not timed
    if args.device == "cuda":
        torch.cuda.synchronize()
    import_s = time.perf_counter() - started
    folders = [args.root / f"pred{k}" for k in range(args.models)]
    if args.child == "floor":
        result = floor(args.root, folders, args.device, args.batch)
    else:
        method = seed_method if args.child == "seed" else ours
        with Stopwatch() as watch:
            values = method(args.root, folders, args.device, args.batch)
        result = {"seconds": watch.seconds, "cpu_s": watch.cpu_seconds}
        (args.root / f"values-{args.child}.json").write_text(json.dumps(values))
    print(json.dumps({**result, "import_s": import_s}))
    return 0


def run_child(method: str, args: argparse.Namespace, root: Path, models: int) -> dict:
    command = [sys.executable, "-W", "ignore", __file__, "--child", method, "--root", str(root)]
    command += ["--device", args.device, "--batch", str(args.batch), "--models", str(models)]
    load = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"p1_scoring: the {method} process failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load_1min_before": load}


def burners(count: int) -> list[subprocess.Popen]:
    """`count` busy processes of our own: a known load, stopped (by pid) when the run ends."""
    loop = "while True: pass"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=120)
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="seed/ours/floor alternations")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ib-perf-p1")
    parser.add_argument("--batch", type=int, default=32, help="LPIPS batch (ours and floor)")
    parser.add_argument("--burn", type=int, default=0, help="busy processes beside the run")
    parser.add_argument("--quick", action="store_true", help="30 images, 2 rounds: to try out")
    parser.add_argument("--child", choices=["seed", "ours", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    images = 30 if args.quick else args.images
    rounds = 2 if args.quick else args.rounds
    root = args.work / f"{images}x{args.models}"
    (root / "no-weights").mkdir(parents=True, exist_ok=True)  # empty: the seeded random trunk
    with Stopwatch() as made:
        folders = make_test_set(root, images, args.models)
    pairs = images * len(folders)
    print(
        f"P1 scoring: {images} images × {len(folders)} models = {pairs} pairs at {SIZE}² on "
        f"{args.device}, {rounds} rounds, {args.burn} busy processes of ours beside "
        f"(test set ready in {made.seconds:.1f} s; LPIPS trunk random)"
    )
    methods = ["seed", "ours", "floor"]
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    burning = burners(args.burn)
    try:
        for r in range(rounds):
            for method in methods[r % 3 :] + methods[: r % 3]:  # rotate: no method always first
                runs[method].append(run_child(method, args, root, len(folders)))
                last = runs[method][-1]
                print(f"  round {r + 1} {method:5s} {last['seconds']:7.2f} s, CPU "
                      f"{last['cpu_s']:7.2f} s (load {last['load_1min_before']:.2f})",
                      flush=True)  # fmt: skip
    finally:
        for process in burning:
            process.kill()
            process.wait()
    median = {m: statistics.median(x["seconds"] for x in runs[m]) for m in methods}
    seconds = {m: [x["seconds"] for x in runs[m]] for m in methods}
    cpu = {m: statistics.median(x["cpu_s"] for x in runs[m]) for m in methods}
    per_round = {  # each round's own ratios: the same load for both sides of each
        "ours_vs_seed": [s / o for s, o in zip(seconds["seed"], seconds["ours"], strict=True)],
        "ours_over_floor": [o / f for o, f in zip(seconds["ours"], seconds["floor"], strict=True)],
    }
    seed_values = json.loads((root / "values-seed.json").read_text())
    our_values = json.loads((root / "values-ours.json").read_text())
    timings = our_values.pop("timings_s")
    diffs = np.array([np.abs(np.subtract(our_values[k], seed_values[k])) for k in seed_values])
    worst = {m: float(diffs[:, i].max()) for i, m in enumerate(("psnr", "ssim", "lpips"))}
    vs_seed = median["seed"] / median["ours"]
    vs_floor = median["ours"] / median["floor"]
    loads = [x["load_1min_before"] for m in methods for x in runs[m]]
    for name in methods:
        print(f"  {name:5s} median {median[name]:7.2f} s  {pairs / median[name]:7.1f} pairs/s")
    print(f"  ours vs seed: {vs_seed:.2f}× faster; ours / floor: {vs_floor:.2f}× (medians); "
          f"load average 1 min {min(loads):.2f}–{max(loads):.2f}")  # fmt: skip
    cpu_vs_seed, cpu_vs_floor = cpu["seed"] / cpu["ours"], cpu["ours"] / cpu["floor"]
    print(f"  CPU seconds (all threads; less load-sensitive): seed/ours {cpu_vs_seed:.2f}×, "
          f"ours/floor {cpu_vs_floor:.2f}×")  # fmt: skip
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
        "rounds": rounds,
        "burn_processes": args.burn,
        "runs": runs,
        "median_seconds": median,
        "median_cpu_seconds": cpu,
        "cpu_ours_vs_seed": cpu_vs_seed,
        "cpu_ours_over_floor": cpu_vs_floor,
        "pairs_per_s": {m: pairs / median[m] for m in methods},
        "ours_vs_seed": vs_seed,
        "ours_over_floor": vs_floor,
        "per_round": per_round,
        "load_1min_range": [min(loads), max(loads)],
        "ours_timings_s_last_round": timings,
        "max_abs_diff": worst,
        "lpips_trunk": "seeded random (same cost as the real one; values not real LPIPS)",
    }
    name = "p1_scoring" + ("_cuda" if args.device == "cuda" else "")
    name += f"_burn{args.burn}" if args.burn else ""
    name += "_quick" if args.quick else ""
    print(f"  → {write_result(name, measurements, targets)}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
