"""`inpaint-bench validate`: passes the reference images, fails broken fixtures with a reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from runs import FAULTY, REPO

from harness.cli import cli
from harness.conformance import Conformance
from harness.conformance_data import smallest_legal
from harness.contract_rules import describe_problems, stream_problems
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


def test_a_copied_adapter_that_keeps_another_models_name_fails(tmp_path: Path) -> None:
    # the trap of issue 15: a copy whose describe.json still names the model it was copied from
    folder = tmp_path / "renamed"
    shutil.copytree(FAULTY, folder, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "name": "renamed"}))
    checks = validate(folder, tmp_path)
    assert checks["describe says what the contract says"] == (
        "fail",
        "model is 'faulty'; the contract says the manifest name 'renamed'",
    )


DESCRIBED = {
    "contract_version": "1",
    "model": "m",
    "parameters": {"generator": 1, "discriminator": None, "other": {}},
    "flops": {"image_size": 64, "forward_flops": 2, "counter": "c", "uncounted_ops": []},
    "latency_ms": None,
    "peak_memory_bytes": None,
    "device": "cpu",
}


def test_describe_problems_follow_the_contract_words() -> None:
    job = {"command": "describe", "image_size": 64, "measure_latency": False}
    assert describe_problems(DESCRIBED, job, "m") == []
    measured = {
        **DESCRIBED,
        "device": "cuda",
        "latency_ms": {"median": 1.0, "runs": 20},
        "peak_memory_bytes": 5,
    }
    assert describe_problems(measured, {**job, "measure_latency": True}, "m") == []
    assert describe_problems({**measured, "model": "x"}, {**job, "image_size": 32}, "m") == [
        "model is 'x'; the contract says the manifest name 'm'",
        "flops.image_size is 64, the job's is 32",
        "latency_ms must be null unless the job sets measure_latency",
        "peak_memory_bytes must be null unless the job sets measure_latency",
    ]


def per_size(size: int, flops: int, peak: int | None = None) -> dict:
    latency = {"median": 1.0, "runs": 20}
    return {
        "image_size": size,
        "forward_flops": flops,
        "uncounted_ops": [],
        "latency_ms": latency,
        "peak_memory_bytes": peak,
    }


def test_describe_problems_check_per_size_and_cpu_memory() -> None:
    job = {
        "command": "describe",
        "image_size": 64,
        "measure_latency": True,
        "reference_sizes": [256],
    }
    top = {**DESCRIBED, "latency_ms": {"median": 1.0, "runs": 20}}
    good = {**top, "per_size": [per_size(64, 2), per_size(256, 32)]}
    assert describe_problems(good, job, "m") == []
    assert describe_problems({**good, "per_size": [per_size(64, 2)]}, job, "m") == [
        "per_size measures sizes [64]; the job asks for [64, 256], in that order"
    ]
    swapped = {**good, "per_size": [per_size(64, 3), per_size(256, 32)]}
    assert describe_problems(swapped, job, "m") == [
        "per_size[0] differs from the top-level fields in ['forward_flops']"
    ]
    rss = {**top, "peak_memory_bytes": 5, "per_size": [per_size(64, 2, 5), per_size(256, 32)]}
    assert describe_problems(rss, job, "m") == [
        "peak_memory_bytes must be null on cpu (it is the CUDA peak)",
        "per_size[].peak_memory_bytes must be null on cpu (it is the CUDA peak)",
    ]
    # an old document (no per_size) for an old job (no reference_sizes) breaks nothing new
    assert describe_problems(top, {**job, "reference_sizes": []}, "m") == []


def start(**fields: object) -> dict:
    return {
        "event": "run_start",
        "command": "train",
        "job_id": "j",
        "resumed_from_step": 0,
        **fields,
    }


def stop(step: int, status: str = "completed") -> dict:
    return {"event": "run_stop", "status": status, "step": step, "images_seen": step * 2}


def progress(step: int) -> dict:
    return {"event": "progress", "step": step, "images_seen": step * 2}


TRAIN = {"command": "train", "job_id": "j", "resume": False, "max_steps": 3}


def test_a_contract_stream_has_no_problems() -> None:
    ckpt = {"event": "checkpoint", "step": 3, "images_seen": 6, "path": "m.pt"}
    events = [start(), {"event": "warning"}, progress(1), progress(3), ckpt, stop(3)]
    assert stream_problems(events, TRAIN) == []
    # resuming may start past 0; failing before run_start is a lone failed run_stop
    assert (
        stream_problems(
            [start(resumed_from_step=5), stop(6)], {**TRAIN, "resume": True, "max_steps": None}
        )
        == []
    )
    assert stream_problems([stop(0, "failed")], TRAIN) == []


@pytest.mark.parametrize(
    ("events", "job", "trains", "problem"),
    [
        (
            [{"event": "warning"}, start(), stop(1)],
            TRAIN,
            True,
            "the first event is warning, not run_start (warnings come after it)",
        ),
        ([start(), stop(1), stop(1)], TRAIN, True, "2 run_stop event(s); one, the last, is due"),
        (
            [start(), stop(1), progress(2)],
            TRAIN,
            True,
            "1 run_stop event(s); one, the last, is due",
        ),
        ([start(job_id="k"), stop(1)], TRAIN, True, "run_start.job_id is 'k', the job's is 'j'"),
        (
            [start(command="predict"), stop(1)],
            TRAIN,
            True,
            "run_start.command is 'predict', the job's is 'train'",
        ),
        (
            [start(resumed_from_step=2), stop(3)],
            TRAIN,
            True,
            "resumed_from_step is 2 on a fresh start",
        ),
        (
            [start(), progress(2), {**progress(1), "images_seen": 4}, stop(2)],
            TRAIN,
            True,
            "step goes back: [2, 1, 2]",
        ),
        (
            [
                start(),
                {"event": "checkpoint", "step": 1, "images_seen": 2, "path": "../m.pt"},
                stop(1),
            ],
            TRAIN,
            True,
            "checkpoint path '../m.pt' leaves the checkpoints mount",
        ),
        ([start(), stop(4)], TRAIN, True, "run_stop.step 4 is past max_steps 3"),
        (
            [start(), stop(1)],
            TRAIN,
            False,
            "a model that does not train stops at step 0 with 0 images_seen",
        ),
    ],
)
def test_stream_problems_name_each_broken_rule(
    events: list[dict], job: dict, trains: bool, problem: str
) -> None:
    assert stream_problems(events, job, trains) == [problem]


def claiming_snapshots(folder: Path) -> Path:
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "snapshots": True}))
    return folder


def test_snapshots_are_checked_where_the_manifest_claims_them(tmp_path: Path) -> None:
    plain = validate(FAULTY, tmp_path / "plain")
    assert plain["train keeps the snapshots it is asked for"] == (
        "skip",
        "the manifest does not claim snapshots",
    )
    claims = validate(claiming_snapshots(broken_fixture(tmp_path, "none")), tmp_path / "claims")
    assert claims["train keeps the snapshots it is asked for"] == ("pass", "")
    assert claims["predict reads the snapshot it is told"] == ("pass", "")
    assert {s for s, _ in claims.values()} == {"pass", "skip"}


def test_a_claim_without_snapshots_fails_naming_the_missing_one(tmp_path: Path) -> None:
    folder = claiming_snapshots(broken_fixture(tmp_path, "no_snapshots"))
    status, detail = validate(folder, tmp_path)["train keeps the snapshots it is asked for"]
    assert status == "fail" and "no checkpoint event with snapshot_s 0.5" in detail
