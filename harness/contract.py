"""Contract v1, harness side: its constants, and checks of manifests, jobs, events, describe.json.

The schemas live in `contracts/v1/` (see contracts/README.md). Every error names the document (a
file, an image label, `stdout:12`) and the field, and never echoes a whole document. This module
imports only the stdlib, jsonschema and harness.errors/schemas, so that the dependency-free copy
for the image side can follow it line by line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from functools import cache
from pathlib import Path
from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from harness.errors import ContractViolation, HarnessError
from harness.schemas import MAX_REPORTED, schema_errors

CONTRACT_VERSION = "1"
CONTRACTS_ENV = "INPAINT_BENCH_CONTRACTS"
MANIFEST_LABEL = "dev.inpaint-bench.manifest"
MANIFEST_PATH = "/inpaint/manifest.json"
APP_DIR = "/inpaint/app"
MAX_EVENT_LINE_BYTES = 64 * 1024
_MAX_BAD_LINES = 50  # lines listed by read_events(); the count of the rest follows
COMMANDS = ("train", "predict", "describe")
DESCRIBE_FILE = "describe.json"

ENV_DATA = "INPAINT_DATA"
ENV_JOB = "INPAINT_JOB"
ENV_CHECKPOINTS = "INPAINT_CHECKPOINTS"
ENV_OUTPUTS = "INPAINT_OUTPUTS"
DATA_MOUNT = "/inpaint/data"
JOB_PATH = "/inpaint/job/job.json"
CHECKPOINTS_MOUNT = "/inpaint/checkpoints"
OUTPUTS_MOUNT = "/inpaint/outputs"
_HINT = "see contracts/README.md; `inpaint-bench contract schema {kind}` prints the schema"


@dataclass(frozen=True)
class Mount:
    """One place an adapter reads or writes; it finds it through `env`, never by hard-coded path."""

    name: str
    env: str
    path: str  # the env var's value inside Docker; the local runner sets a host path instead
    read_only: bool


MOUNTS = (
    Mount("data", ENV_DATA, DATA_MOUNT, read_only=True),
    Mount("job", ENV_JOB, JOB_PATH, read_only=True),
    Mount("checkpoints", ENV_CHECKPOINTS, CHECKPOINTS_MOUNT, read_only=False),
    Mount("outputs", ENV_OUTPUTS, OUTPUTS_MOUNT, read_only=False),
)


class ExitCode(IntEnum):
    """How a model container's entrypoint exits; a budget or SIGTERM stop is still OK."""

    OK = 0
    FAILED = 1
    INVALID_JOB = 2
    UNSUPPORTED_COMMAND = 3
    BAD_DATA = 4


class Kind(StrEnum):
    """A kind of contract document, named as on the command line."""

    MANIFEST = "manifest"
    JOB = "job"
    EVENTS = "events"
    DESCRIBE = "describe"


_SCHEMA_FILES = {
    Kind.MANIFEST: "manifest.schema.json",
    Kind.JOB: "job.schema.json",
    Kind.EVENTS: "event.schema.json",
    Kind.DESCRIBE: "describe.schema.json",
}


def contracts_dir() -> Path:
    """The folder holding the v1 schemas: `$INPAINT_BENCH_CONTRACTS`, else `<repo>/contracts/v1`."""
    override = os.environ.get(CONTRACTS_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1] / "contracts" / f"v{CONTRACT_VERSION}"


def schema_path(kind: Kind | str) -> Path:
    return contracts_dir() / _SCHEMA_FILES[Kind(kind)]


def load_schema(kind: Kind | str) -> dict[str, Any]:
    """The parsed, meta-validated schema of `kind`."""
    return _read_schema(schema_path(kind))


@cache
def _read_schema(path: Path) -> dict[str, Any]:
    try:
        schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
    except FileNotFoundError:
        raise HarnessError(
            f"{path}: contract schema not found",
            f"run from a checkout with contracts/, or set {CONTRACTS_ENV} to its contracts/v1",
        ) from None
    except (ValueError, SchemaError) as error:
        raise HarnessError(f"{path}: broken contract schema: {error}") from None
    return schema


def _validate(doc: Any, kind: Kind, where: str) -> dict[str, Any]:
    # Dedupe: the job and event dispatchers check contract_version/time at the top and again in
    # the branch they pick, so one mistake would otherwise be listed twice.
    problems = list(dict.fromkeys(schema_errors(doc, load_schema(kind))))
    if problems:
        raise ContractViolation(_listing(where, problems), hint=_HINT.format(kind=kind))
    return cast(dict[str, Any], doc)  # the schema only accepts objects


def _listing(where: str, problems: list[str]) -> str:
    shown = problems[:MAX_REPORTED]
    more = len(problems) - len(shown)
    return "\n".join([f"{where}: {p}" for p in shown] + ([f"... and {more} more"] if more else []))


def validate_manifest(doc: Any, where: str) -> dict[str, Any]:
    """Return `doc` if it is a valid v1 manifest, else raise ContractViolation naming each field."""
    return _validate(doc, Kind.MANIFEST, where)


def validate_job(doc: Any, where: str) -> dict[str, Any]:
    """Return `doc` if it is a valid v1 train, predict or describe job."""
    return _validate(doc, Kind.JOB, where)


def validate_describe(doc: Any, where: str) -> dict[str, Any]:
    """Return `doc` if it is a valid v1 describe.json."""
    return _validate(doc, Kind.DESCRIBE, where)


def validate_event(doc: Any, where: str) -> dict[str, Any]:
    """Return `doc` if it is a valid v1 event (already parsed from its line)."""
    return _validate(doc, Kind.EVENTS, where)


class _JsonProblem(ValueError):
    """Raised from json.loads hooks; turned into a ContractViolation with the right `where`."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; two values for one field is ambiguous.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JsonProblem(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _JsonProblem(f"{name} is not JSON (write null for a non-finite number)")


def _parse_json(text: str, where: str, *, one_line: bool, hint: str | None = None) -> Any:
    """Strict JSON (no NaN/Infinity, no duplicate keys); errors give `where` and the position."""
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as error:
        at = f" at column {error.colno}" if one_line else ""
        place = where if one_line else f"{where}:{error.lineno}:{error.colno}"
        raise ContractViolation(f"{place}: invalid JSON: {error.msg}{at}", hint=hint) from None
    except RecursionError:
        raise ContractViolation(f"{where}: invalid JSON: nested too deeply", hint=hint) from None
    except ValueError as error:  # _JsonProblem, or an integer over Python's 4300-digit limit
        raise ContractViolation(f"{where}: invalid JSON: {str(error)[:200]}", hint=hint) from None


def _json_type(value: Any) -> str:
    names = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        type(None): "null",
        list: "array",
        dict: "object",
    }
    return names.get(type(value), type(value).__name__)


def parse_event_line(line: str | bytes, where: str) -> dict[str, Any]:
    """Parse one stdout line (a trailing newline is allowed) into a valid v1 event.

    Raises ContractViolation if the line is over MAX_EVENT_LINE_BYTES, not UTF-8, not JSON, not an
    object, or breaks the event schema.
    """
    if isinstance(line, str):
        try:
            data = line.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ContractViolation(f"{where}: not UTF-8 text: {error.reason}") from None
    else:
        data = bytes(line)
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    if len(data) > MAX_EVENT_LINE_BYTES:
        raise ContractViolation(
            f"{where}: line is {len(data)} bytes, over the {MAX_EVENT_LINE_BYTES}-byte limit",
            hint="print large things to a file under the outputs mount, not to stdout",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ContractViolation(f"{where}: not UTF-8: bad byte at offset {error.start}") from None
    if not text.strip():
        raise ContractViolation(
            f"{where}: empty line; stdout carries only JSON event lines",
            hint="print logs to stderr",
        )
    doc = _parse_json(
        text,
        where,
        one_line=True,
        hint="stdout carries only JSON event lines; print logs to stderr",
    )
    if not isinstance(doc, dict):
        raise ContractViolation(f"{where}: expected a JSON object, got {_json_type(doc)}")
    return validate_event(doc, where)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Parse every line of a `.jsonl` event log; one ContractViolation lists every bad line."""
    data = _read_bytes(path)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline ends the last line; it does not start an empty one
    events: list[dict[str, Any]] = []
    bad: list[str] = []
    for number, line in enumerate(lines, start=1):
        try:
            events.append(parse_event_line(line, f"{path}:{number}"))
        except ContractViolation as error:
            bad.append(error.message)
    if bad:
        shown = bad[:_MAX_BAD_LINES]
        if len(bad) > len(shown):
            shown.append(f"... and {len(bad) - len(shown)} more bad lines")
        shown.append(f"{path}: {len(bad)} of {len(lines)} lines break contract v1")
        raise ContractViolation("\n".join(shown), hint=_HINT.format(kind=Kind.EVENTS))
    return events


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ContractViolation(f"{path}: file not found", "check the path") from None
    except OSError as error:
        raise ContractViolation(
            f"{path}: cannot read: {error.strerror or error}", "check that it is a readable file"
        ) from None


def load_json_document(path: Path, kind: Kind | str) -> dict[str, Any]:
    """Read `path` as one JSON document of `kind` (manifest, job or describe) and validate it."""
    kind = Kind(kind)
    validators = {
        Kind.MANIFEST: validate_manifest,
        Kind.JOB: validate_job,
        Kind.DESCRIBE: validate_describe,
    }
    if kind not in validators:
        raise ValueError(f"{kind} is a JSON-lines stream: use read_events()")
    data = _read_bytes(path)
    hint = _HINT.format(kind=kind)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ContractViolation(
            f"{path}: not UTF-8: bad byte at offset {error.start}", hint=hint
        ) from None
    doc = _parse_json(text, str(path), one_line=False, hint=hint)
    return validators[kind](doc, str(path))


def manifest_from_labels(labels: Mapping[str, str] | None, where: str) -> dict[str, Any]:
    """The manifest carried by an image's labels (from `docker inspect`), validated."""
    here = f"{where}: label {MANIFEST_LABEL}"
    text = (labels or {}).get(MANIFEST_LABEL)
    if text is None:
        raise ContractViolation(
            f"{here}: missing", hint="build the image with `inpaint-bench images build`"
        )
    return validate_manifest(_parse_json(text, here, one_line=True), here)


def batch_size_allowed(manifest: Mapping[str, Any], batch_size: int) -> bool:
    """True if the manifest's `input.batch` accepts `batch_size`."""
    batch = manifest["input"]["batch"]
    max_any, multiple_of = batch["max_any"], batch["multiple_of"]
    return (max_any is not None and batch_size <= max_any) or batch_size % multiple_of == 0


def check_job_fits_manifest(
    job: Mapping[str, Any], manifest: Mapping[str, Any], where: str
) -> None:
    """Raise ContractViolation if a (valid) job asks for what the (valid) manifest rules out.

    Checks the command, image_size and batch_size against `input`, and that every
    hyperparameter override names a default and keeps its JSON type (an integer may stand for a
    number; a null default takes anything).
    """
    problems: list[str] = []
    name = manifest["name"]
    if job["command"] not in manifest["commands"]:
        problems.append(
            f"command: {name} does not implement {job['command']!r}"
            f" (it has: {', '.join(manifest['commands'])})"
        )
    limits = manifest["input"]
    size = job["image_size"]
    multiple, low, high = limits["size_multiple"], limits["min_size"], limits["max_size"]
    if size % multiple:
        problems.append(f"image_size: {name} needs a multiple of {multiple}, got {size}")
    if size < low or (high is not None and size > high):
        span = f"{low} to {high}" if high is not None else f"at least {low}"
        problems.append(f"image_size: {name} takes {span} pixels, got {size}")
    if limits["power_of_two"] and size & (size - 1):
        problems.append(f"image_size: {name} needs a power of two, got {size}")
    if not batch_size_allowed(manifest, job["batch_size"]):
        batch = limits["batch"]
        rule = f"multiples of {batch['multiple_of']}"
        if batch["max_any"] is not None:
            rule = f"up to {batch['max_any']}, or larger {rule}"
        problems.append(f"batch_size: {name} takes batches {rule}, got {job['batch_size']}")
    asks_snapshots = job.get("snapshot_at_s") or job.get("snapshot_s") is not None
    if asks_snapshots and not manifest.get("snapshots", False):
        problems.append(
            f'snapshot_at_s/snapshot_s: {name}\'s manifest does not claim "snapshots": true'
        )
    defaults = manifest["defaults"].get("hyperparameters", {})
    for key, value in job.get("hyperparameters", {}).items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            problems.append(f"hyperparameters.{key}: unknown to {name} (known: {known})")
            continue
        have, want = _json_type(value), _json_type(defaults[key])
        if want != "null" and have != want and (have, want) != ("integer", "number"):
            problems.append(
                f"hyperparameters.{key}: expected {want} like {name}'s default, got {have}"
            )
    if problems:
        raise ContractViolation(
            _listing(where, problems), hint=f"see {name}'s manifest (input, defaults)"
        )
