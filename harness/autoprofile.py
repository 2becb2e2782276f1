"""Pick the profile `make bench` runs: `seed` when its data is in place and a GPU answers."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from harness.config import Benchmark
from harness.data.layout import DataLayout


@dataclass(frozen=True)
class Choice:
    profile: str
    reason: str


def gpu_count() -> int:
    """NVIDIA GPUs that `nvidia-smi -L` lists (0 when the tool is absent or fails)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def data_missing(bench: Benchmark, profile: str) -> list[str]:
    """Folders of the profile's data tree that are absent or hold fewer PNGs than it asks for.

    A quick presence test for choosing a profile; `inpaint-bench data check` does the full check.
    """
    prof = bench.profile(profile)
    layout = DataLayout(prof.data_root)
    wanted = {layout.mask_dir("train"): prof.masks.train, layout.mask_dir("test"): prof.masks.test}
    for source, (train, _val) in prof.sources.items():
        wanted[layout.source_dir(source, "train")] = train
    for test_set, count in prof.test_sets.items():
        wanted[layout.test_dir(test_set)] = count
    return [
        f"{folder} ({count} PNGs needed)"
        for folder, count in wanted.items()
        if not folder.is_dir() or sum(1 for _ in folder.glob("*.png")) < count
    ]


def choose_profile(bench: Benchmark, requested: str, gpus: int | None = None) -> Choice:
    """Resolve `auto` to `seed` or `sample`, with the reason in words; other names pass through."""
    if requested != "auto":
        return Choice(requested, "asked for with --profile")
    gpus = gpu_count() if gpus is None else gpus
    if "seed" not in bench.profile_names:
        return Choice("sample", "benchmark.yaml has no `seed` profile")
    missing = data_missing(bench, "seed")
    if missing:
        return Choice(
            "sample",
            f"the seed data is not in place ({missing[0]}"
            f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''});"
            " see README 'Data' to prepare it",
        )
    if gpus == 0:
        return Choice("sample", "no NVIDIA GPU answers `nvidia-smi -L`")
    return Choice("seed", f"the seed data is in place and {gpus} GPU(s) answer")
