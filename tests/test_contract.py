"""Contract v1: the schemas' own rules, valid fixtures, named errors, and fuzzing of the parsers."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from harness import contract
from harness.contract import (
    MANIFEST_LABEL,
    MAX_EVENT_LINE_BYTES,
    ExitCode,
    Kind,
    batch_size_allowed,
    check_job_fits_manifest,
    load_json_document,
    manifest_from_labels,
    parse_event_line,
    read_events,
    validate_describe,
    validate_job,
    validate_manifest,
)
from harness.errors import ContractViolation, HarnessError

V1 = Path(__file__).resolve().parents[1] / "contracts" / "v1"
README = V1.parent / "README.md"
FIXTURES = Path(__file__).parent / "fixtures" / "contract"
SCHEMA_FILES = sorted(V1.glob("*.schema.json"))
JSON_TYPES = {"string", "integer", "number", "boolean", "null", "object", "array"}

Validator = Callable[[Any, str], dict[str, Any]]
VALIDATORS: dict[str, Validator] = {
    "manifest": validate_manifest,
    "job": validate_job,
    "describe": validate_describe,
}


def fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


def kind_of(fixture_name: str) -> str:
    return "job" if fixture_name.startswith("job") else fixture_name.split(".")[0].split("_")[0]


def schema(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((V1 / f"{name}.schema.json").read_text())
    return doc


def resolve(root: dict[str, Any], sub: dict[str, Any]) -> dict[str, Any]:
    """`sub` merged over its local `$ref` target, as a reader of the schema sees it."""
    ref = sub.get("$ref")
    if not ref:
        return sub
    target: Any = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**resolve(root, target), **{k: v for k, v in sub.items() if k != "$ref"}}


def subschemas(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object reachable without entering `if`/`then` (conditions, not definitions)."""
    if not isinstance(node, dict):
        return
    yield where, node
    for key in ("properties", "$defs"):
        for name, child in node.get(key, {}).items():
            yield from subschemas(child, f"{where}/{key}/{name}")
    for key in ("items", "additionalProperties", "propertyNames"):
        yield from subschemas(node.get(key), f"{where}/{key}")
    for i, child in enumerate(node.get("oneOf", []) + node.get("anyOf", [])):
        yield from subschemas(child, f"{where}/of/{i}")


def all_property_names(node: Any) -> set[str]:
    """Every property name defined anywhere in a schema, conditions included."""
    names: set[str] = set()
    if isinstance(node, dict):
        names |= set(node.get("properties", {}))
        for value in node.values():
            names |= all_property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= all_property_names(value)
    return names


def is_dispatcher(node: dict[str, Any]) -> bool:
    """The job and event roots: they route on one field to closed branches in `$defs`."""
    branches = node.get("allOf", [])
    return bool(branches) and all("$ref" in b.get("then", {}) for b in branches)


def violation(fn: Callable[..., Any], *args: Any) -> str:
    with pytest.raises(ContractViolation) as info:
        fn(*args)
    return info.value.message


# --- the schemas themselves ------------------------------------------------------------------


def test_there_are_four_schemas() -> None:
    assert [p.name for p in SCHEMA_FILES] == [
        "describe.schema.json",
        "event.schema.json",
        "job.schema.json",
        "manifest.schema.json",
    ]


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_is_valid_draft_2020_12(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(doc)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_object_is_closed_or_a_declared_map(path: Path) -> None:
    root = json.loads(path.read_text())
    for where, node in subschemas(root):
        types = node.get("type", [])
        if "object" not in (types if isinstance(types, list) else [types]) or is_dispatcher(node):
            continue
        assert "additionalProperties" in node, f"{path.name} {where}: open object"
        if "properties" in node:
            assert node["additionalProperties"] is False, f"{path.name} {where}: not closed"


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_optional_field_has_a_default_and_every_field_a_description(path: Path) -> None:
    root = json.loads(path.read_text())
    for where, node in subschemas(root):
        required = set(node.get("required", []))
        for name, prop in node.get("properties", {}).items():
            seen = resolve(root, prop)
            assert "description" in seen, f"{path.name} {where}/{name}: no description"
            if name not in required:
                assert "default" in seen, f"{path.name} {where}/{name}: optional, no default"
            types = seen.get("type", [])
            assert set([types] if isinstance(types, str) else types) <= JSON_TYPES


@pytest.mark.parametrize("name", ["manifest", "job", "describe"])
def test_top_level_documents_require_contract_version_1(name: str) -> None:
    root = schema(name)
    assert "contract_version" in root["required"]
    assert resolve(root, root["properties"]["contract_version"])["const"] == "1"


def test_event_stream_declares_its_version_in_run_start() -> None:
    run_start = schema("event")["$defs"]["run_start"]
    assert "contract_version" in run_start["required"]
    assert run_start["properties"]["contract_version"]["const"] == "1"


@pytest.mark.parametrize("name", ["job", "event"])
def test_dispatchers_route_every_value_to_a_closed_branch(name: str) -> None:
    root = schema(name)
    field = "command" if name == "job" else "event"
    routed = {b["if"]["properties"][field]["const"] for b in root["allOf"]}
    assert routed == set(root["properties"][field]["enum"])
    for branch in root["allOf"]:
        target = resolve(root, branch["then"])
        assert target["additionalProperties"] is False
        assert set(root["required"]) <= set(target["required"])


# --- README and constants ---------------------------------------------------------------------


def readme_code() -> str:
    """Everything in README.md that is code: fenced blocks and inline `spans`."""
    text = README.read_text()
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    return "\n".join(fenced + re.findall(r"`([^`\n]+)`", prose))


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_readme_mentions_every_property_as_code(path: Path) -> None:
    code = readme_code()
    names = all_property_names(json.loads(path.read_text()))
    missing = sorted(n for n in names if not re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", code))
    assert not missing, f"contracts/README.md does not mention {missing} from {path.name}"


def test_readme_mention_check_catches_a_missing_property() -> None:
    # The test above must be able to fail: a made-up property is not in the README.
    assert not re.search(r"(?<![\w])frobnicate_every_s(?![\w])", readme_code())


def readme_examples() -> list[tuple[str, str]]:
    """(kind, body) of every ```json <kind>``` or ```jsonl events``` block in README.md."""
    return re.findall(r"^```jsonl? (\w+)\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def test_readme_has_an_example_of_each_kind() -> None:
    assert sorted({kind for kind, _ in readme_examples()}) == sorted(k.value for k in Kind)


@pytest.mark.parametrize("index", range(4))
def test_readme_examples_are_valid(index: int) -> None:
    kind, body = readme_examples()[index]
    if kind == "events":
        events = [parse_event_line(line, f"README:{kind}") for line in body.splitlines()]
        assert (events[0]["event"], events[-1]["event"]) == ("run_start", "run_stop")
    else:
        assert VALIDATORS[kind](json.loads(body), f"README:{kind}")["contract_version"] == "1"


def test_constants_json_matches_the_module() -> None:
    constants = json.loads((V1 / "constants.json").read_text())
    assert constants["contract_version"] == contract.CONTRACT_VERSION
    assert constants["manifest"] == {"label": MANIFEST_LABEL, "path": contract.MANIFEST_PATH}
    assert constants["app_dir"] == contract.APP_DIR
    assert constants["events"]["max_line_bytes"] == MAX_EVENT_LINE_BYTES == 65536
    assert constants["exit_codes"] == {code.name.lower(): code.value for code in ExitCode}
    mounts = {m.name: (m.env, m.path, "ro" if m.read_only else "rw") for m in contract.MOUNTS}
    assert mounts == {k: (v["env"], v["path"], v["mode"]) for k, v in constants["mounts"].items()}


def test_contracts_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(V1, tmp_path / "v1")
    monkeypatch.setenv(contract.CONTRACTS_ENV, str(tmp_path / "v1"))
    assert contract.schema_path("job") == tmp_path / "v1" / "job.schema.json"
    assert contract.load_schema("job")["title"] == "Job"
    monkeypatch.setenv(contract.CONTRACTS_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(HarnessError, match=r"nowhere/job\.schema\.json: contract schema not"):
        contract.load_schema("job")


# --- valid documents --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("manifest.json", "manifest"),
        ("manifest_baseline.json", "manifest"),
        ("job_train.json", "job"),
        ("job_predict.json", "job"),
        ("job_describe.json", "job"),
        ("describe.json", "describe"),
    ],
)
def test_fixture_is_valid(name: str, kind: str) -> None:
    assert load_json_document(FIXTURES / name, kind) == fixture(name)


def test_event_fixture_is_valid() -> None:
    events = read_events(FIXTURES / "events.jsonl")
    assert [e["event"] for e in events] == [
        "run_start",
        "progress",
        "warning",
        "progress",
        "checkpoint",
        "run_stop",
    ]
    assert events[3]["losses"] == {"g_total": 3.42, "d": None}


# --- invalid documents name their field --------------------------------------------------------


def edit(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of `doc` with `dotted` set to `value`, or deleted if `value` is DELETE."""
    out = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    node = out
    for part in parents:
        node = node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return out


DELETE = object()

INVALID: list[tuple[str, str, Any, str]] = [
    # (fixture, field, new value, expected message fragment)
    ("manifest.json", "upstream.commit", "e05bc6b", "upstream.commit: expected a full"),
    ("manifest.json", "upstream.license", "MIT!", "upstream.license: expected an SPDX"),
    ("manifest.json", "upstream.url", "github.com/x", "upstream.url: expected an http"),
    ("manifest.json", "contract_version", "2", 'contract_version: expected "1", got "2"'),
    ("manifest.json", "gpu", True, "gpu: unknown field 'gpu'"),
    ("manifest.json", "entrypoint", DELETE, "entrypoint: required field is missing"),
    ("manifest.json", "entrypoint", [], "entrypoint: [] should be non-empty"),
    ("manifest.json", "name", "TFill", "name: expected a lowercase model name"),
    ("manifest.json", "commands", ["fit"], "commands[0]: expected one of train, predi"),
    ("manifest.json", "defaults.batch_size", "8", "defaults.batch_size: expected integ"),
    (
        "manifest.json",
        "input.batch.multiple_of",
        0,
        "input.batch.multiple_of: expected a number ≥ 1, got 0",
    ),
    (
        "manifest.json",
        "input.max_size",
        "big",
        'input.max_size: expected integer or null, got "big"',
    ),
    ("manifest.json", "input.batch", DELETE, "input.batch: required field is missing"),
    (
        "manifest.json",
        "defaults.hyperparameters.lr",
        {"g": 1},
        "defaults.hyperparameters.lr: expected string or number or boolean or null or array",
    ),
    ("manifest.json", "stochastic", "no", 'stochastic: expected boolean, got "no"'),
    ("manifest.json", "upstream", "lyndonzheng/TFill", "upstream: expected object or nu"),
    ("job_train.json", "batch_size", "four", 'batch_size: expected integer, got "four"'),
    ("job_train.json", "batch_size", 0, "batch_size: expected a number ≥ 1, got 0"),
    ("job_train.json", "budget_s", 0, "budget_s: expected a number > 0, got 0"),
    ("job_train.json", "data.val_images", "a/../../b", "data.val_images: expected null, or"),
    ("job_train.json", "data.train_masks", DELETE, "data.train_masks: required field is mi"),
    ("job_train.json", "output_dir", "x", "output_dir: unknown field 'output_dir'"),
    ("job_train.json", "device", "gpu", 'device: expected one of cpu, cuda, got "gpu"'),
    ("job_train.json", "seed", -1, "seed: expected a number ≥ 0, got -1"),
    ("job_train.json", "resume", "yes", 'resume: expected boolean, got "yes"'),
    (
        "job_train.json",
        "hyperparameters.bad name",
        1,
        "hyperparameters: expected a hyperparameter name: a letter or _, then letters, digits or _",
    ),
    ("job_predict.json", "data.inputs", "/inpaint/data/x", "data.inputs: expected a relativ"),
    ("job_predict.json", "data.inputs", "../test/gt", "data.inputs: expected a relative"),
    ("job_predict.json", "output_dir", "../escape", "output_dir: expected a relative path"),
    ("job_predict.json", "budget_s", 10, "budget_s: unknown field 'budget_s'"),
    ("job_predict.json", "job_id", "a/b", "job_id: expected a job id"),
    ("job_predict.json", "command", "evaluate", "command: expected one of train, predict, d"),
    ("job_predict.json", "command", DELETE, "command: required field is missing"),
    ("job_describe.json", "latency_runs", 0, "latency_runs: expected a number ≥ 1, got 0"),
    ("job_describe.json", "data", {}, "data: unknown field 'data'"),
    ("describe.json", "parameters.generator", -1, "parameters.generator: expected a nu"),
    ("describe.json", "flops.forward_flops", 1.5, "flops.forward_flops: expected integ"),
    ("describe.json", "latency_ms.runs", DELETE, "latency_ms.runs: required field is m"),
    ("describe.json", "flops.uncounted_ops", [""], "flops.uncounted_ops[0]: '' should"),
    ("describe.json", "fps", 30, "fps: unknown field 'fps'"),
    ("describe.json", "contract_version", 1, 'contract_version: expected "1", got 1'),
]


@pytest.mark.parametrize(
    ("name", "field", "value", "expected"), INVALID, ids=[f"{c[0]}:{c[1]}" for c in INVALID]
)
def test_invalid_document_names_the_field(name: str, field: str, value: Any, expected: str) -> None:
    message = violation(VALIDATORS[kind_of(name)], edit(fixture(name), field, value), "doc.json")
    assert f"doc.json: {expected}" in message


def test_wrong_contract_version_is_reported_once_by_the_job_dispatcher() -> None:
    message = violation(validate_job, edit(fixture("job_train.json"), "contract_version", "2"), "j")
    assert message == 'j: contract_version: expected "1", got "2"'


def test_unknown_field_lists_the_allowed_ones() -> None:
    message = violation(validate_job, edit(fixture("job_describe.json"), "warmup", 3), "j")
    assert message.startswith("j: warmup: unknown field 'warmup' (allowed: batch_size, command,")
    assert "latency_runs, measure_latency" in message


def test_a_non_object_document_is_refused() -> None:
    message = violation(validate_manifest, ["tfill"], "m")
    assert message == 'm: (top level): expected object, got ["tfill"]'


def test_messages_never_echo_large_values() -> None:
    big = "x" * 10_000
    doc = edit(edit(fixture("job_predict.json"), "job_id", big), "notes", big)
    message = violation(validate_job, doc, "j")
    assert "job_id: expected at most 128 characters, got 10000" in message
    assert "notes: unknown field" in message
    assert big not in message and len(message) < 1000


def test_every_problem_is_listed_up_to_a_limit() -> None:
    doc = fixture("job_train.json")
    doc["hyperparameters"] = {f"h{i:02d}": {"nested": i} for i in range(20)}
    doc["batch_size"] = "four"
    lines = violation(validate_job, doc, "j").splitlines()
    assert lines[0] == 'j: batch_size: expected integer, got "four"'
    assert lines[1].startswith("j: hyperparameters.h00: expected string or number or boolean")
    assert lines[-1] == "... and 9 more"  # 21 problems, 12 shown


# --- event lines --------------------------------------------------------------------------------


def line(**fields: Any) -> str:
    return json.dumps({"time": 1767225600.0, **fields})


PROGRESS = {"event": "progress", "step": 3, "images_seen": 12}

BAD_LINES: list[tuple[str | bytes, str]] = [
    ('{"event": "progress", "time": 1,', "invalid JSON: Expecting property name"),
    ("loss 0.5 at step 3", "invalid JSON: Expecting value at column 1"),
    ("[1, 2]", "expected a JSON object, got array"),
    ('"run_start"', "expected a JSON object, got string"),
    ("null", "expected a JSON object, got null"),
    ("", "empty line"),
    (b"\xff\xfe{}", "not UTF-8: bad byte at offset 0"),
    ("\udcff", "not UTF-8 text"),
    (line(event="epoch_end"), "event: expected one of run_start, progress, checkpoint, run_stop"),
    (line(event="progress", step=3), "images_seen: required field is missing"),
    (json.dumps({"event": "warning", "message": "m"}), "time: required field is missing"),
    (line(**PROGRESS, epoch=1), "epoch: unknown field 'epoch'"),
    (line(**PROGRESS, losses={"l1": "low"}), 'losses.l1: expected number or null, got "low"'),
    (line(**{**PROGRESS, "step": -1}), "step: expected a number ≥ 0, got -1"),
    (
        '{"event": "progress", "time": 1, "step": 1, "images_seen": 1, "lr": NaN}',
        "invalid JSON: NaN is not JSON",
    ),
    (
        '{"event": "warning", "time": 1, "message": "a", "message": "b"}',
        "invalid JSON: duplicate key 'message'",
    ),
    (
        line(event="checkpoint", step=1, images_seen=4, path="/inpaint/checkpoints/x.pt"),
        "path: expected a relative path inside the checkpoints mount",
    ),
    (
        line(event="run_stop", status="failed", reason="done", step=1, images_seen=4),
        'reason: expected one of error, got "done"',
    ),
    (
        line(event="run_stop", status="stopped", reason="budget", step=1, images_seen=4),
        'reason: expected one of sigterm, got "budget"',
    ),
    (
        line(
            event="run_start",
            contract_version="1",
            command="train",
            job_id="j",
            device="cuda",
            resumed_from_step=0,
        ),
        "config: required field is missing",
    ),
    (
        line(
            event="run_start",
            contract_version="2",
            command="train",
            job_id="j",
            device="cuda",
            config={},
            resumed_from_step=0,
        ),
        'contract_version: expected "1", got "2"',
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_LINES, ids=[str(c[1])[:40] for c in BAD_LINES])
def test_bad_event_line_names_the_problem(text: str | bytes, expected: str) -> None:
    assert f"stdout:7: {expected}" in violation(parse_event_line, text, "stdout:7")


def test_a_key_with_a_newline_cannot_forge_a_second_message() -> None:
    message = violation(parse_event_line, line(**PROGRESS, **{"x\ns: ok": 1}), "s")
    assert message.splitlines() == [
        "s: \"x\\ns: ok\": unknown field 'x\\ns: ok' (allowed: event, images_seen, losses, lr,"
        " step, time, total)"
    ]


def test_event_line_may_end_with_a_newline_as_str_or_bytes() -> None:
    text = line(**PROGRESS, losses={"l1": 0.5}) + "\r\n"
    assert parse_event_line(text, "s") == parse_event_line(text.encode(), "s")
    assert parse_event_line(text, "s")["losses"] == {"l1": 0.5}


def test_event_line_limit_is_64_kib_exactly() -> None:
    pad = MAX_EVENT_LINE_BYTES - len(line(event="warning", message=""))
    fits = line(event="warning", message="x" * pad)
    assert len(fits) == MAX_EVENT_LINE_BYTES
    assert parse_event_line(fits + "\n", "s")["event"] == "warning"
    over = line(event="warning", message="x" * (pad + 1))
    message = violation(parse_event_line, over, "s")
    assert message == f"s: line is {MAX_EVENT_LINE_BYTES + 1} bytes, over the 65536-byte limit"


def test_event_line_limit_counts_utf8_bytes_not_characters() -> None:
    text = json.dumps({"event": "warning", "time": 1, "message": "é" * 40_000}, ensure_ascii=False)
    assert len(text) < MAX_EVENT_LINE_BYTES < len(text.encode())
    assert "over the 65536-byte limit" in violation(parse_event_line, text, "s")


def test_read_events_reports_every_bad_line_with_its_number(tmp_path: Path) -> None:
    good = line(event="warning", message="ok")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([good, "Epoch 1/10", good, "[]", "", good]) + "\n")
    message = violation(read_events, path)
    assert f"{path}:2: invalid JSON" in message
    assert f"{path}:4: expected a JSON object, got array" in message
    assert f"{path}:5: empty line" in message
    assert f"{path}: 3 of 6 lines break contract v1" in message
    assert f"{path}:1:" not in message and f"{path}:6:" not in message


def test_read_events_caps_the_listing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("oops\n" * 80)
    lines = violation(read_events, path).splitlines()
    assert len(lines) == contract._MAX_BAD_LINES + 2
    assert lines[-2] == "... and 30 more bad lines"


# --- files and labels ---------------------------------------------------------------------------


def test_load_json_document_names_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    assert violation(load_json_document, path, "job") == f"{path}: file not found"


def test_load_json_document_gives_line_and_column_of_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('{\n  "name": "x",\n}\n')
    message = violation(load_json_document, path, "manifest")
    assert message.startswith(f"{path}:3:1: invalid JSON: Expecting property name")


def test_load_json_document_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "describe.json"
    path.write_text(json.dumps(edit(fixture("describe.json"), "device", "tpu")))
    message = violation(load_json_document, path, "describe")
    assert message == f'{path}: device: expected one of cpu, cuda, got "tpu"'


def test_load_json_document_refuses_event_streams() -> None:
    with pytest.raises(ValueError, match="read_events"):
        load_json_document(FIXTURES / "events.jsonl", "events")


def test_manifest_from_labels() -> None:
    manifest = fixture("manifest.json")
    assert manifest_from_labels({MANIFEST_LABEL: json.dumps(manifest)}, "img") == manifest
    assert violation(manifest_from_labels, {}, "img") == f"img: label {MANIFEST_LABEL}: missing"
    assert violation(manifest_from_labels, {MANIFEST_LABEL: "{"}, "img").startswith(
        f"img: label {MANIFEST_LABEL}: invalid JSON"
    )
    bad = json.dumps(edit(manifest, "trains", "yes"))
    assert violation(manifest_from_labels, {MANIFEST_LABEL: bad}, "img") == (
        f'img: label {MANIFEST_LABEL}: trains: expected boolean, got "yes"'
    )


# --- jobs against manifests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_any", "multiple_of", "batch", "ok"),
    [
        (None, 1, 7, True),
        (None, 4, 6, False),
        (None, 4, 8, True),
        (4, 4, 3, True),
        (4, 4, 4, True),
        (4, 4, 6, False),
        (4, 4, 12, True),
        (2, 8, 4, False),
    ],
)
def test_batch_size_allowed(max_any: int | None, multiple_of: int, batch: int, ok: bool) -> None:
    manifest = {"input": {"batch": {"max_any": max_any, "multiple_of": multiple_of}}}
    assert batch_size_allowed(manifest, batch) is ok


def test_a_job_within_the_manifest_passes() -> None:
    job = edit(fixture("job_train.json"), "hyperparameters", {"lr": 1, "attn_G": True})
    check_job_fits_manifest(job, fixture("manifest.json"), "tfill")
    check_job_fits_manifest(edit(job, "batch_size", 12), fixture("manifest.json"), "tfill")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("image_size", 96, "image_size: tfill needs a power of two, got 96"),
        ("image_size", 1024, "image_size: tfill takes 64 to 512 pixels, got 1024"),
        ("image_size", 72, "image_size: tfill needs a multiple of 16, got 72"),
        (
            "batch_size",
            6,
            "batch_size: tfill takes batches up to 4, or larger multiples of 4, got 6",
        ),
        (
            "hyperparameters",
            {"momentum": 0.9},
            "hyperparameters.momentum: unknown to tfill (known: ",
        ),
        ("hyperparameters", {"lr": "fast"}, "hyperparameters.lr: expected number like tfill's def"),
        ("hyperparameters", {"attn_G": 1}, "hyperparameters.attn_G: expected boolean like tfill's"),
        ("hyperparameters", {"betas": 0.9}, "hyperparameters.betas: expected array like tfill's"),
    ],
)
def test_a_job_outside_the_manifest_names_the_field(field: str, value: Any, expected: str) -> None:
    job = edit(fixture("job_train.json"), field, value)
    message = violation(check_job_fits_manifest, job, fixture("manifest.json"), "job.json")
    assert f"job.json: {expected}" in message


def test_a_command_the_image_lacks_is_refused() -> None:
    manifest = edit(fixture("manifest_baseline.json"), "commands", ["predict"])
    message = violation(check_job_fits_manifest, fixture("job_train.json"), manifest, "j")
    assert message.startswith("j: command: classical does not implement 'train' (it has: predict)")


def test_a_permissive_manifest_accepts_any_size_and_batch() -> None:
    job = edit(edit(fixture("job_predict.json"), "image_size", 100), "batch_size", 7)
    check_job_fits_manifest(job, fixture("manifest_baseline.json"), "j")


# --- fuzzing: nothing but ContractViolation ever escapes -----------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=16,
)
FIELD_NAMES = sorted(
    set().union(*(all_property_names(schema(n)) for n in ("manifest", "job", "event", "describe")))
)
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=12)
FIXTURE_NAMES = [
    "manifest.json",
    "job_train.json",
    "job_predict.json",
    "job_describe.json",
    "describe.json",
]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def patched(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return {**base, **patch}


@FUZZ
@given(st.one_of(st.text(), st.binary()))
def test_parse_event_line_on_any_text_raises_only_contract_violations(text: str | bytes) -> None:
    try:
        assert isinstance(parse_event_line(text, "stdout:1"), dict)
    except ContractViolation as error:
        assert error.message.startswith("stdout:1: ")


@FUZZ
@given(
    st.sampled_from(["run_start", "progress", "checkpoint", "run_stop", "warning", "x"]),
    st.dictionaries(keys, json_values, max_size=6),
)
def test_parse_event_line_on_any_json_raises_only_contract_violations(
    event: str, fields: dict[str, Any]
) -> None:
    text = json.dumps({"event": event, "time": 1.0, **fields})
    try:
        assert parse_event_line(text, "s")["event"] == event
    except ContractViolation as error:
        assert all(line.startswith(("s: ", "... and")) for line in error.message.splitlines())


@FUZZ
@given(st.sampled_from(sorted(VALIDATORS)), json_values)
def test_validators_on_any_json_raise_only_contract_violations(kind: str, doc: Any) -> None:
    try:
        VALIDATORS[kind](doc, "d")
    except ContractViolation as error:
        assert error.message.startswith("d: ")


@FUZZ
@given(st.sampled_from(FIXTURE_NAMES), st.dictionaries(keys, json_values, max_size=4))
def test_validators_on_patched_fixtures_raise_only_contract_violations(
    name: str, patch: dict[str, Any]
) -> None:
    doc = patched(fixture(name), patch)
    try:
        assert VALIDATORS[kind_of(name)](doc, "d") is doc
    except ContractViolation as error:
        # Each problem names a field of the patch (or the top level), never the whole document.
        assert all(len(line) < 600 for line in error.message.splitlines())
