"""Build small, valid data trees and profiles in tmp_path for the data tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness.config import MaskCounts, Profile, Runtime
from harness.data.layout import MASK_SPLITS, DataLayout, file_name
from harness.data.manifest import mask_record, write_data_manifest, write_mask_manifest
from harness.data.pngs import write_png

SIZE = 32


def make_profile(
    root: Path,
    *,
    name: str = "fixture",
    image_size: int = SIZE,
    sources: dict[str, tuple[int, int]] | None = None,
    masks: tuple[int, int, int] = (3, 2, 3),
    test_sets: dict[str, int] | None = None,
    hole_range: tuple[float, float] = (0.01, 0.6),
) -> Profile:
    """Return a tiny profile whose data_root is `root`."""
    return Profile(
        name=name,
        data_root=root,
        image_size=image_size,
        seed=0,
        metrics=("psnr",),
        models=(),
        sources=sources if sources is not None else {"scenes": (3, 2), "faces": (2, 1)},
        masks=MaskCounts(*masks, hole_range=hole_range),
        test_sets=test_sets if test_sets is not None else {"scenes_test": 3, "faces_test": 3},
        runtime=Runtime(),
    )


def band_mask(size: int, fraction: float) -> np.ndarray:
    """bool size x size, True (hole) on the top round(size * fraction) rows."""
    hole = np.zeros((size, size), dtype=bool)
    hole[: round(size * fraction)] = True
    return hole


def build_tree(profile: Profile, manifest: bool = True) -> Path:
    """Write a complete, valid data tree for `profile` (random RGB images, band masks)."""
    rng = np.random.default_rng(0)
    layout = DataLayout(profile.data_root)
    size = profile.image_size

    def images(folder: Path, count: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            write_png(folder / file_name(i), rng.integers(0, 256, (size, size, 3), np.uint8))

    for source, counts in profile.sources.items():
        images(layout.source_dir(source, "train"), counts[0])
        images(layout.source_dir(source, "val"), counts[1])
    for test_set, count in profile.test_sets.items():
        images(layout.test_dir(test_set), count)
    for split in MASK_SPLITS:
        folder = layout.mask_dir(split)
        folder.mkdir(parents=True, exist_ok=True)
        records = []
        for i in range(getattr(profile.masks, split)):
            hole = band_mask(size, 0.15 + 0.1 * (i % 4))
            write_png(folder / file_name(i), np.where(hole, 255, 0).astype(np.uint8))
            records.append(mask_record(folder / file_name(i), hole))
        write_mask_manifest(folder, records)
    if manifest:
        write_data_manifest(profile.data_root)
    return profile.data_root


def write_tiny_benchmark(
    root: Path,
    models: dict[str, dict[str, Any]],
    *,
    train: tuple[int, int],
    test: int,
    budget: str = "1s",
    runtime: dict[str, Any] | None = None,
    image_size: int = SIZE,
    build: bool = True,
) -> Path:
    """root/benchmark.yaml with one profile `tiny` (source `scenes`, test set `faces_test`) over a
    tree built in root/data: `train` = (train, val) images and masks, `test` images and masks."""
    profile = make_profile(
        root / "data",
        name="tiny",
        image_size=image_size,
        sources={"scenes": train},
        masks=(*train, test),
        test_sets={"faces_test": test},
    )
    if build:
        build_tree(profile)
    doc = {
        "benchmark_version": 1,
        "seed": 0,
        "metrics": ["psnr"],
        "models": models,
        "runtime": runtime if runtime is not None else {"grace": "5s", "setup_cap": "2m"},
        "profiles": {
            "tiny": {
                "data_root": str(root / "data"),
                "image_size": image_size,
                "train_budget": budget,
                "models": list(models),
                "sources": {"scenes": {"train": train[0], "val": train[1]}},
                "masks": {"train": train[0], "val": train[1], "test": test},
                "test_sets": {"faces_test": test},
            }
        },
    }
    path = root / "benchmark.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def tiny_run_args(config: Path, run_dir: Path, runner: str = "local") -> list[str]:
    """`inpaint-bench` arguments that run write_tiny_benchmark's profile into run_dir."""
    run_in = ["--run-dir", str(run_dir)]
    return ["run", "--config", str(config), "--profile", "tiny", "--runner", runner, *run_in]
