"""`inpaint-bench validate`: passes the reference images, fails broken fixtures with a reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from runs import FAULTY, REPO

from harness.cli import cli
from harness.conformance import Conformance, smallest_legal
from harness.progress import SilentReporter
from harness.runners.local import LocalRunner


def broken_fixture(tmp_path: Path, fault: str) -> Path:
    """A copy of the faulty fixture whose default behaviour is `fault`."""
    folder = tmp_path / f"fixture-{fault}"
    shutil.copytree(FAULTY, folder, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["defaults"]["hyperparameters"]["fault"] = fault
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def validate(target: Path, tmp_path: Path) -> dict[str, tuple[str, str]]:
    reporter = SilentReporter(quiet=True)
    report = Conformance(
        str(target), LocalRunner(reporter=reporter), tmp_path / "work", reporter
    ).run()
    return {c.name: (c.status, c.detail) for c in report.checks}


@pytest.mark.parametrize("model", ["classical", "gatedconv"])
def test_reference_images_pass(model: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "validate",
            str(REPO / "images" / model),
            "--runner",
            "local",
            "--work-dir",
            str(tmp_path),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "PASS: " in result.output and "FAIL" not in result.output
    assert "SKIP  works with no network" in result.output


def test_healthy_fixture_passes_every_check(tmp_path: Path) -> None:
    checks = validate(FAULTY, tmp_path)
    assert {s for s, _ in checks.values()} == {"pass", "skip"}
    assert checks["resumes from its checkpoint"][0] == "pass"


@pytest.mark.parametrize(
    ("fault", "check", "detail"),
    [
        ("wrong_polarity", "known pixels equal the input exactly", "known pixels moved by up to"),
        ("wrong_polarity", "fills the holes (mask polarity: 255 = hole)", "over holes = 0.00"),
        (
            "missing_outputs",
            "one valid PNG per input, same name and size",
            "1 prediction(s) missing",
        ),
        ("no_checkpoint", "train writes a checkpoint", "no checkpoint event with a file"),
        ("stochastic", "two predicts give identical outputs", ""),
        ("malformed_events", "train emits valid events and stops", "invalid JSON"),
    ],
)
def test_broken_fixtures_fail_with_the_reason(
    tmp_path: Path, fault: str, check: str, detail: str
) -> None:
    checks = validate(broken_fixture(tmp_path, fault), tmp_path)
    status, found = checks[check]
    assert status == "fail", checks
    assert detail in found


def test_validate_cli_exits_1_on_failure(tmp_path: Path) -> None:
    folder = broken_fixture(tmp_path, "missing_outputs")
    result = CliRunner().invoke(cli, ["validate", str(folder), "--runner", "local"])
    assert result.exit_code == 1
    assert "FAIL  one valid PNG per input" in result.output


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            {
                "size_multiple": 128,
                "min_size": 128,
                "max_size": None,
                "power_of_two": False,
                "batch": {"max_any": None, "multiple_of": 1},
            },
            (128, 1),
        ),
        (
            {
                "size_multiple": 4,
                "min_size": 64,
                "max_size": None,
                "power_of_two": False,
                "batch": {"max_any": 4, "multiple_of": 4},
            },
            (64, 1),
        ),
        (
            {
                "size_multiple": 1,
                "min_size": 40,
                "max_size": 512,
                "power_of_two": True,
                "batch": {"max_any": None, "multiple_of": 4},
            },
            (64, 4),
        ),
    ],
)
def test_smallest_legal_size_and_batch(rules: dict, expected: tuple[int, int]) -> None:
    assert smallest_legal({"input": rules}) == expected
