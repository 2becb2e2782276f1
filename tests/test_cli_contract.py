"""`contract check` and `contract schema`: what they print, and errors that name file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from harness.cli import cli
from harness.contract import load_schema

FIXTURES = Path(__file__).parent / "fixtures" / "contract"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["contract", *args], catch_exceptions=False)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("manifest", "manifest.json"),
        ("manifest", "manifest_baseline.json"),
        ("job", "job_train.json"),
        ("job", "job_predict.json"),
        ("job", "job_describe.json"),
        ("describe", "describe.json"),
    ],
)
def test_check_accepts_a_valid_document(kind: str, name: str) -> None:
    result = invoke("check", kind, str(FIXTURES / name))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{FIXTURES / name}: valid {kind} (contract v1)\n"


def test_check_counts_valid_events() -> None:
    result = invoke("check", "events", str(FIXTURES / "events.jsonl"))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{FIXTURES / 'events.jsonl'}: 6 valid events (contract v1)\n"


def test_check_names_the_field_of_a_bad_manifest(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "manifest.json").read_text())
    doc["upstream"]["commit"] = "main"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(doc))
    result = invoke("check", "manifest", str(path))
    assert result.exit_code == 1
    assert f"{path}: upstream.commit: expected a full 40-character lowercase hex commit" in (
        result.stderr
    )
    assert "hint: see contracts/README.md" in result.stderr
    assert result.stdout == ""


def test_check_names_the_field_of_a_bad_job(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "job_predict.json").read_text())
    doc["data"]["inputs"] = "../test/gt"
    path = tmp_path / "job.json"
    path.write_text(json.dumps(doc))
    result = invoke("check", "job", str(path))
    assert result.exit_code == 1
    assert f"{path}: data.inputs: expected a relative path inside its mount" in result.stderr


def test_check_reports_each_bad_event_line_by_number(tmp_path: Path) -> None:
    lines = (FIXTURES / "events.jsonl").read_text().splitlines()
    lines[1] = "step 40 loss 3.91"
    lines[4] = lines[4].replace('"path": "last.pt"', '"path": "/abs/last.pt"')
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = invoke("check", "events", str(path))
    assert result.exit_code == 1
    assert f"{path}:2: invalid JSON" in result.stderr
    assert f"{path}:5: path: expected a relative path inside the checkpoints mount" in (
        result.stderr
    )
    assert f"{path}: 2 of 6 lines break contract v1" in result.stderr


def test_check_gives_line_and_column_of_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "describe.json"
    path.write_text('{"contract_version": "1",\n "model": tfill}\n')
    result = invoke("check", "describe", str(path))
    assert result.exit_code == 1
    assert f"{path}:2:11: invalid JSON: Expecting value" in result.stderr


def test_check_names_a_missing_file(tmp_path: Path) -> None:
    result = invoke("check", "job", str(tmp_path / "nope.json"))
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope.json'}: file not found" in result.stderr


def test_check_refuses_an_unknown_kind() -> None:
    result = invoke("check", "model", str(FIXTURES / "manifest.json"))
    assert result.exit_code == 2
    assert "'model' is not one of 'manifest', 'job', 'events', 'describe'" in result.stderr


@pytest.mark.parametrize("kind", ["manifest", "job", "events", "describe"])
def test_schema_prints_the_schema(kind: str) -> None:
    result = invoke("schema", kind)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == load_schema(kind)


def test_schema_names_a_missing_contracts_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INPAINT_BENCH_CONTRACTS", str(tmp_path))
    result = invoke("schema", "job")
    assert result.exit_code == 1
    assert f"{tmp_path / 'job.schema.json'}: contract schema not found" in result.stderr
    assert "INPAINT_BENCH_CONTRACTS" in result.stderr


@pytest.mark.parametrize("command", [["--help"], ["check", "--help"], ["schema", "--help"]])
def test_help_ends_with_an_example(command: list[str]) -> None:
    result = invoke(*command)
    assert result.exit_code == 0, result.output
    assert "inpaint-bench contract" in result.stdout
