"""The describe job asks for the run's image size and the 256 px reference, each once, and only
sizes the model's manifest allows; the job validates against contract v1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from datatree import make_profile

from harness.config import ModelEntry
from harness.contract import validate_job
from harness.jobs import REFERENCE_SIZE, describe_job, write_job

REPO = Path(__file__).resolve().parents[1]


def manifest(model: str) -> dict[str, Any]:
    return dict(json.loads((REPO / "images" / model / "manifest.json").read_text()))


def job_for(tmp_path: Path, model: str, size: int, **overrides: Any) -> dict[str, Any]:
    entry = ModelEntry(name=model, image=f"images/{model}", batch_size=4, train_budget_s=60.0)
    profile = make_profile(tmp_path, image_size=size)
    doc = describe_job("j", profile, entry, "cpu", {**manifest(model), **overrides})
    write_job(tmp_path / "job.json", doc)  # validates against contract v1 before writing
    return doc


@pytest.mark.parametrize("model", ["madf", "aotgan", "tfill", "gatedconv", "classical"])
def test_a_run_at_128_px_is_described_at_128_and_at_256(tmp_path: Path, model: str) -> None:
    doc = job_for(tmp_path, model, 128)
    assert REFERENCE_SIZE == 256
    assert (doc["image_size"], doc["reference_sizes"]) == (128, [256])
    assert (doc["batch_size"], doc["measure_latency"]) == (1, True)
    validate_job(json.loads((tmp_path / "job.json").read_text()), "job.json")


def test_a_run_at_256_px_is_described_once(tmp_path: Path) -> None:
    doc = job_for(tmp_path, "aotgan", 256)
    assert (doc["image_size"], doc["reference_sizes"]) == (256, [])


def test_a_reference_size_the_manifest_rules_out_is_not_asked_for(tmp_path: Path) -> None:
    limits = {**manifest("gatedconv")["input"], "max_size": 128}
    doc = job_for(tmp_path, "gatedconv", 64, input=limits)
    assert (doc["image_size"], doc["reference_sizes"]) == (64, [])


def test_an_old_describe_job_without_reference_sizes_is_still_valid() -> None:
    old = json.loads((REPO / "tests" / "fixtures" / "contract" / "job_describe.json").read_text())
    assert "reference_sizes" not in old
    assert validate_job(old, "job_describe.json")["image_size"] == 256
