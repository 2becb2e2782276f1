"""Scaling: `inpaint-bench data check` and the scorer against the number of images (100, 1k, 10k).

    .venv/bin/python benchmarks/scaling.py            # 100, 1,000 and 10,000 images
    .venv/bin/python benchmarks/scaling.py --quick    # 100 and 1,000

For each size N a synthetic data tree is written to a temporary folder: N test images with N
test masks (the part of a tree that grows with a benchmark's test sets) plus a few training and
validation files, 256² PNGs of about 95 KB like photographs (smooth colour fields, a gradient and
a little noise; 64 distinct images, repeated), masks from harness.data.masks (64 distinct,
repeated), the manifests as `data prepare` writes them. One prediction folder holds N composited
predictions (known pixels exact, as the reference model gives).

Each measured command runs as its own child process, so its peak RSS (getrusage via wait4) is
its own: `inpaint-bench data check` (the CLI, as a user runs it) and the scorer
(images/metrics/score.py score_pairs, metrics psnr, ssim, lpips) in the metrics venv. LPIPS runs
with a RANDOM backbone (allow_random_backbone=True): the same work as the real one, values
meaningless. Timings inside the scorer (score_pairs alone) leave out interpreter and torch start.

Targets: time per image at 10k within 1.3× of that at 1k, for both, judged on the net time
(data check: minus the CLI's start-up, `data check --help`; scoring: minus the LPIPS set-up),
which a fixed cost spread over more images cannot flatter; peak memory not growing
with N beyond the per-image rows (the growth per image is printed, bound: 16 KiB per image,
while one decoded 256² image is 192 KiB).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, report_targets, write_result

from harness.data.layout import AREA_BINS, area_bin, file_name
from harness.data.manifest import MaskRecord, write_mask_manifest
from harness.data.masks import generate_mask
from harness.data.pngs import HOLE, encode_png

SIZE = 256
HOLE_RANGE = (0.01, 0.6)
SMALL = {"train": 4, "val": 2}  # the fixed part of the tree: sources and train/val masks
DISTINCT = 64
ROW_BOUND = 16 * 1024  # bytes of peak RSS growth per image allowed (per-image rows)
LINEAR_BOUND = 1.3


class Pool:
    """The distinct files every tree is written from: encoded PNG bytes and their sha256."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.images: list[bytes] = []
        self.predictions: list[bytes] = []
        self.masks: list[tuple[bytes, float]] = []
        holes = [
            generate_mask(SIZE, AREA_BINS[i % len(AREA_BINS)], seed, i) for i in range(DISTINCT)
        ]
        for i in range(DISTINCT):
            truth = _picture(rng)
            other = _picture(rng)
            # the prediction pastes the truth's known pixels back, with the mask it will meet
            hole = holes[i]
            prediction = np.where(hole[..., None], other, truth)
            self.images.append(encode_png(truth))
            self.predictions.append(encode_png(prediction))
        for hole in holes:
            data = encode_png(hole.astype(np.uint8) * np.uint8(HOLE))
            self.masks.append((data, float(hole.mean())))
        self.digests = {id(b): hashlib.sha256(b).hexdigest() for b in self._all()}

    def _all(self) -> list[bytes]:
        return [*self.images, *self.predictions, *(m for m, _ in self.masks)]

    def sha(self, data: bytes) -> str:
        return self.digests[id(data)]


def _picture(rng: np.random.Generator) -> np.ndarray:
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    base = Image.fromarray(small).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    gradient = np.linspace(-40, 40, SIZE, dtype=np.float32)[None, :, None]
    noise = rng.integers(-3, 4, (SIZE, SIZE, 3))
    return np.clip(np.asarray(base, dtype=np.float32) + gradient + noise, 0, 255).astype(np.uint8)


def write_tree(root: Path, n: int, pool: Pool) -> Path:
    """A data tree for profile `scale` with n test images (and n test masks); returns the
    prediction folder, written next to it. Image i of the test set pairs with mask i: the
    prediction of image i was composited with that same mask."""
    files: dict[str, str] = {}

    def put(folder: Path, i: int, data: bytes) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / file_name(i)).write_bytes(data)

    for split, count in SMALL.items():
        for i in range(count):
            data = pool.images[i % DISTINCT]
            put(root / "sources" / "synth" / split, i, data)
            files[f"sources/synth/{split}/{file_name(i)}"] = pool.sha(data)
    for split, count in (*SMALL.items(), ("test", n)):
        folder = root / "masks" / split
        records = []
        for i in range(count):
            data, fraction = pool.masks[i % DISTINCT]
            put(folder, i, data)
            fraction = round(fraction, 6)
            records.append(MaskRecord(file_name(i), fraction, area_bin(fraction), pool.sha(data)))
            files[f"masks/{split}/{file_name(i)}"] = pool.sha(data)
        write_mask_manifest(folder, records)
    predictions = root.parent / "predictions"
    for i in range(n):
        data = pool.images[i % DISTINCT]
        put(root / "test" / "synth_test", i, data)
        files[f"test/synth_test/{file_name(i)}"] = pool.sha(data)
        put(predictions, i, pool.predictions[i % DISTINCT])
    (root / "manifest.json").write_text(json.dumps({"files": files}, indent=1, sort_keys=True))
    return predictions


def write_config(path: Path, root: Path, n: int) -> None:
    """benchmark.yaml with one more profile, `scale`, over the tree at `root`."""
    doc = yaml.safe_load((REPO / "benchmark.yaml").read_text())
    doc["profiles"] = {
        "scale": {
            "data_root": str(root),
            "image_size": SIZE,
            "train_budget": "30s",
            "models": ["classical"],
            "sources": {"synth": dict(SMALL)},
            "masks": {**SMALL, "test": n, "hole_range": list(HOLE_RANGE)},
            "test_sets": {"synth_test": n},
        }
    }
    # image folders are found relative to the config's folder
    for model in doc["models"].values():
        model["image"] = str(REPO / model["image"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


# A child's ru_maxrss starts from its parent's peak at fork (Linux keeps the hiwater mark across
# exec), and this process holds torch once machine() has run: a small interpreter in between
# starts each measured command, and reports that command's own rusage.
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    json.dump({"wall_s": wall, "maxrss_kib": usage.ru_maxrss}, out)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `argv` to its end: wall seconds, its own peak RSS (getrusage via wait4), its stdout."""
    with tempfile.TemporaryDirectory() as tmp:
        usage_file = Path(tmp) / "usage.json"
        result = subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(usage_file), *argv],
            capture_output=True,
            env=env,
            cwd=REPO,
        )
        if result.returncode != 0:
            raise SystemExit(
                f"{argv[:3]}… exited {result.returncode}:\n{result.stderr.decode()[-3000:]}"
            )
        usage = json.loads(usage_file.read_text())
    return {
        "wall_s": usage["wall_s"],
        "peak_rss_bytes": usage["maxrss_kib"] * 1024,
        "stdout": result.stdout.decode(),
    }


SCORE = """
import json, sys, time
from pathlib import Path
from score import score_pairs
gt, pred, masks, out = map(Path, sys.argv[1:5])
start = time.perf_counter()
result = score_pairs(gt, pred, masks, out, metrics=["psnr", "ssim", "lpips"], device="cpu",
                     allow_random_backbone=True)
seconds = time.perf_counter() - start
weights = result.metadata["lpips"]["weights"]
print(json.dumps({"score_s": seconds, "rows": len(result.rows), "lpips_weights": weights,
                  "timings_s": result.metadata.get("timings_s", {})}))
"""


def metrics_python() -> Path:
    from harness.runners.local import _PlainFolder, venv_for

    return venv_for(_PlainFolder(REPO / "images" / "metrics")) / "bin" / "python"  # type: ignore[arg-type]


def one_size(
    n: int, pool: Pool, work: Path, python: Path, startup_s: float, parts: tuple[str, ...]
) -> dict[str, Any]:
    base = work / f"n{n}"
    root = base / "data"
    start = time.perf_counter()
    predictions = write_tree(root, n, pool)
    config = base / "benchmark.yaml"
    write_config(config, root, n)
    # The tree's writeback (1.9 GB at 10k) would otherwise run during the measured commands.
    os.sync()
    r: dict[str, Any] = {"images": n, "write_tree_s": round(time.perf_counter() - start, 2)}
    if "check" in parts:
        inpaint_bench = REPO / ".venv" / "bin" / "inpaint-bench"
        check = measured(
            [str(inpaint_bench), "data", "check", "--config", str(config), "--profile", "scale"],
            {**os.environ, "CI": "true"},
        )
        r |= {
            "check_files": n * 2 + 2 * sum(SMALL.values()),
            "data_check_wall_s": round(check["wall_s"], 3),
            "data_check_per_image_ms": round(1000 * check["wall_s"] / n, 3),
            "data_check_net_per_image_ms": round(1000 * (check["wall_s"] - startup_s) / n, 3),
            "data_check_peak_rss_mib": round(check["peak_rss_bytes"] / 2**20, 1),
            "_data_check_rss": check["peak_rss_bytes"],
        }
        print(
            f"  N={n:>6}: data check {r['data_check_wall_s']:8.2f} s"
            f" ({r['data_check_per_image_ms']:.3f} ms/image, net"
            f" {r['data_check_net_per_image_ms']:.3f};"
            f" peak {r['data_check_peak_rss_mib']:.1f} MiB)",
            flush=True,
        )
    if "score" in parts:
        sdk = [str(REPO / "images/metrics"), str(REPO / "contracts/sdk")]
        out = base / "scores.csv"
        gt, masks = root / "test" / "synth_test", root / "masks" / "test"
        score = measured(
            [str(python), "-c", SCORE, str(gt), str(predictions), str(masks), str(out)],
            {**os.environ, "PYTHONPATH": os.pathsep.join(sdk)},
        )
        inside = json.loads(score["stdout"].strip().splitlines()[-1])
        setup = inside["timings_s"].get("setup_lpips", 0.0)
        r |= {
            "score_wall_s": round(score["wall_s"], 3),
            "score_in_function_s": round(inside["score_s"], 3),
            "score_per_image_ms": round(1000 * inside["score_s"] / n, 3),
            "score_wall_per_image_ms": round(1000 * score["wall_s"] / n, 3),
            "score_net_per_image_ms": round(1000 * (inside["score_s"] - setup) / n, 3),
            "score_peak_rss_mib": round(score["peak_rss_bytes"] / 2**20, 1),
            "score_rows": inside["rows"],
            "score_csv_bytes": out.stat().st_size,
            "lpips_weights": inside["lpips_weights"],
            "score_timings_s": inside["timings_s"],
            "_score_rss": score["peak_rss_bytes"],
        }
        print(
            f"  N={n:>6}: score {r['score_in_function_s']:8.2f} s in score_pairs,"
            f" {r['score_wall_s']:.2f} s wall ({r['score_per_image_ms']:.2f} ms/image, net"
            f" {r['score_net_per_image_ms']:.2f}; peak {r['score_peak_rss_mib']:.1f} MiB)",
            flush=True,
        )
    shutil.rmtree(base)
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 images only")
    parser.add_argument(
        "--only", choices=["check", "score"], help="measure one of the two (own result file)"
    )
    parser.add_argument("--work", type=Path, help="where the trees go (default: a temp folder)")
    args = parser.parse_args()
    sizes = [100, 1000] if args.quick else [100, 1000, 10000]
    parts = (args.only,) if args.only else ("check", "score")
    python = metrics_python()
    load_before = os.getloadavg()
    pool = Pool()
    results: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="scaling-", dir=args.work))
    print(f"Scaling ({machine().get('cpu', '?')}); LPIPS with a RANDOM backbone (same work)")
    # The CLI's fixed cost (interpreter, imports): taken off for the net time per image.
    help_argv = [str(REPO / ".venv" / "bin" / "inpaint-bench"), "data", "check", "--help"]
    startup = min(measured(help_argv)["wall_s"] for _ in range(3))
    print(f"  inpaint-bench start-up (data check --help, best of 3): {startup:.3f} s")
    try:
        for n in sizes:
            results.append(one_size(n, pool, work, python, startup, parts))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    by_n = {r["images"]: r for r in results}
    m: dict[str, Any] = {
        "sizes": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
        "lpips_backbone": "random (allow_random_backbone=True): same work, values meaningless",
        "predictions": "composited (known pixels exact)",
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "data_check_startup_s": round(startup, 3),
    }
    print(f"  load average before/after: {m['load_before']} / {m['load_after']}")
    targets: dict[str, bool] = {}
    big, ref = (10000, 1000) if 10000 in by_n else (1000, 100)
    a, b = by_n[big], by_n[ref]
    label = "10k vs 1k" if big == 10000 else "1k vs 100 (--quick)"
    m["compared"] = f"{big} vs {ref} images"
    m["ratios"], m["rss_growth_bytes_per_image"] = {}, {}
    for what, key in (("data check", "data_check"), ("scoring", "score")):
        if key.split("_")[-1] not in parts:
            continue
        for per in ("per_image", "net_per_image"):
            ratio = a[f"{key}_{per}_ms"] / b[f"{key}_{per}_ms"]
            m["ratios"][f"{key}_{per}"] = round(ratio, 3)
            print(f"  {what}: time {per.replace('_', ' ')}, {big} vs {ref} images: ×{ratio:.3f}")
        grown = (a[f"_{key}_rss"] - b[f"_{key}_rss"]) / (big - ref)
        m["rss_growth_bytes_per_image"][key] = round(grown)
        print(f"  {what}: peak RSS grows {grown / 1024:.2f} KiB per image, {big} vs {ref}")
        # judged on the net time (fixed start-up taken off), which a fixed cost cannot flatter
        net = m["ratios"][f"{key}_net_per_image"]
        targets[f"{what}: net time per image {label} ≤ {LINEAR_BOUND}×"] = net <= LINEAR_BOUND
        targets[f"{what}: peak RSS growth ≤ {ROW_BOUND // 1024} KiB per image ({label})"] = (
            grown <= ROW_BOUND
        )
    report_targets(targets)
    name = "scaling" + (f"_{args.only}" if args.only else "") + ("_quick" if args.quick else "")
    path = write_result(name, m, targets)
    print(f"  wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
