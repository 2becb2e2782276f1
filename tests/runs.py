"""Tiny profiles and data trees for tests that really run model jobs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from datatree import build_tree, make_profile

from harness.config import ModelEntry, Profile, Runtime

REPO = Path(__file__).resolve().parents[1]
FAULTY = REPO / "tests" / "fixtures" / "images" / "faulty"


def faulty(name: str, fault: str = "none", budget_s: float = 1.0) -> ModelEntry:
    return ModelEntry(
        name=name,
        image=str(FAULTY),
        batch_size=1,
        train_budget_s=budget_s,
        hyperparameters={"fault": fault},
    )


def reference(name: str, budget_s: float = 2.0, batch_size: int = 4) -> ModelEntry:
    return ModelEntry(
        name=name, image=str(REPO / "images" / name), batch_size=batch_size, train_budget_s=budget_s
    )


def tiny_run_profile(
    root: Path,
    models: list[ModelEntry],
    size: int = 32,
    setup_cap_s: float = 120.0,
    grace_s: float = 2.0,
) -> Profile:
    """One source, one test set of four images, size²; data built under root/data."""
    profile = make_profile(
        root / "data",
        name="tiny",
        image_size=size,
        sources={"scenes": (6, 2)},
        masks=(6, 2, 4),
        test_sets={"faces_test": 4},
    )
    profile = dataclasses.replace(
        profile,
        models=tuple(models),
        runtime=Runtime(setup_cap_s=setup_cap_s, grace_s=grace_s),
    )
    if not profile.data_root.exists():
        build_tree(profile)
    return profile
