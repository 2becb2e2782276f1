"""Report statistics cost: a seed-profile run's score tables, one training seed against several.

    python benchmarks/report_stats.py [--images 300] [--seeds 3] [--quick]

Per-image scores of the `seed` profile's shape (3 models, 2 sources, 6 test sets of `--images`
images, PSNR, SSIM and LPIPS, composite and raw) are made up in memory, with model gamma worse on
every image, and the main, raw and area-bin tables (means, intervals, paired tests, Holm) are
built once with one seed and once with `--seeds` seeds. Reported: seconds for each and their
ratio; checked: the several-seed tables carry a min–max and gamma's † (Holm p < 0.05) in every
main-table row, so the timing is of tables that did the work.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from common import REPO, Stopwatch, report_targets, write_result

sys.path.insert(0, str(REPO))

from harness.data.layout import area_bin
from harness.report.comparisons import ALPHA
from harness.report.rundata import RunData
from harness.report.score_tables import area_bin_table, main_table, raw_table

MODELS = ("alpha", "beta", "gamma")
SOURCES = ("place2", "celeba")
TEST_SETS = tuple(f"set{i}_test" for i in range(6))
CENTRES = {"psnr": (26.0, 2.0), "ssim": (0.8, 0.05), "lpips": (0.2, 0.05)}
TARGET_SECONDS = 120.0  # a seed-profile report's score tables, three seeds, on a 2-core machine


def scores(images: int, seeds: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    fractions = rng.uniform(0.02, 0.58, images)
    frames = []
    for source in SOURCES:
        for test_set in TEST_SETS:
            for metric, (centre, spread) in CENTRES.items():
                truth = rng.normal(centre, spread, images)  # how hard each image is
                for model in MODELS:
                    worse = -1 if metric != "lpips" else 1
                    shift = 0.5 * spread * worse if model == "gamma" else 0.0
                    for seed in range(seeds):
                        noise = rng.normal(0.0, 0.2 * spread, images)
                        value = truth + shift + noise + 0.1 * spread * seed
                        for variant in ("composite", "raw"):
                            frames.append(
                                pd.DataFrame(
                                    {
                                        "source": source,
                                        "model": model,
                                        "test_set": test_set,
                                        "image": [f"{i:06d}.png" for i in range(images)],
                                        "variant": variant,
                                        "hole_fraction": fractions,
                                        "bin": [area_bin(float(f)) for f in fractions],
                                        "metric": metric,
                                        "value": value,
                                        "seed": seed,
                                        "snapshot_s": math.nan,
                                    }
                                )
                            )
    return pd.concat(frames, ignore_index=True)


def build(run: RunData) -> tuple[float, list[pd.DataFrame]]:
    with Stopwatch() as watch:
        mains = [main_table(run, s) for s in SOURCES]
        _ = [raw_table(run, s) for s in SOURCES] + [area_bin_table(run, s) for s in SOURCES]
    return watch.seconds, mains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="60 images per test set")
    args = parser.parse_args()
    images = 60 if args.quick else args.images
    info = {"seed": 0, "models": list(MODELS)}
    folder = Path(".")
    load_before = [round(x, 2) for x in os.getloadavg()]
    one = RunData(folder, info, [], scores(images, 1), {})
    several = RunData(folder, info, [], scores(images, args.seeds), {})
    one_s, _ = build(one)
    several_s, mains = build(several)
    table = pd.concat(mains)
    gamma = table[(table["model"] == "gamma") & table["p_holm"].notna()]
    m = {
        "images_per_test_set": images,
        "seeds": args.seeds,
        "rows_one_seed": len(one.scores),
        "rows_several_seeds": len(several.scores),
        "seconds_one_seed": round(one_s, 2),
        "seconds_several_seeds": round(several_s, 2),
        "ratio": round(several_s / one_s, 2),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(
        f"score tables, {images} images per test set: one seed {one_s:.1f} s, "
        f"{args.seeds} seeds {several_s:.1f} s ({several_s / one_s:.1f}×)"
    )
    targets = {
        f"{args.seeds}-seed score tables under {TARGET_SECONDS:.0f} s": several_s < TARGET_SECONDS,
        "every main-table cell has its seeds' min–max": bool(
            (table.loc[table["n"] > 0, "seeds"] == args.seeds).all()
        ),
        "gamma is marked worse in every main-table row": len(gamma) > 0
        and bool((gamma["p_holm"] < ALPHA).all()),
    }
    print(f"  load average before/after: {m['load_before']} / {m['load_after']}")
    report_targets(targets)
    print(write_result("report_stats_quick" if args.quick else "report_stats", m, targets))


if __name__ == "__main__":
    main()
