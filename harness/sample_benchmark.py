"""A copy of the repository's benchmark.yaml cut down to its `sample` profile and a few models,
for the benchmarks and tests that run the harness end to end on the bundled sample set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from harness.images import REPO


def write_sample_benchmark(
    root: Path,
    models: Sequence[str],
    metrics: Sequence[str],
    *,
    data_root: Path | None = None,
    train_budget: str | None = None,
) -> Path:
    """root/benchmark.yaml: benchmark.yaml's `sample` profile (the only profile left) with only
    `models` (and their overrides) and `metrics`, its data under `data_root` (default
    root/data/sample: build it with `inpaint-bench data sample`) and, where given, another
    `train_budget`. Model image paths are made absolute, as the copy lives outside the repo."""
    doc = yaml.safe_load((REPO / "benchmark.yaml").read_text())
    profile = doc["profiles"]["sample"]
    profile["data_root"] = str(root / "data" / "sample" if data_root is None else data_root)
    profile["models"] = list(models)
    if train_budget is not None:
        profile["train_budget"] = train_budget
    overrides = profile.get("model_overrides", {})
    profile["model_overrides"] = {m: o for m, o in overrides.items() if m in models}
    doc["metrics"] = list(metrics)
    for model in doc["models"].values():
        model["image"] = str(REPO / model["image"])
    doc["profiles"] = {"sample": profile}
    path = root / "benchmark.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
