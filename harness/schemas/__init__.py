"""JSON Schema checks whose messages name the offending field and what was expected.

Used for benchmark.yaml (schemas here) and for contract v1 documents (contracts/v1).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from harness.errors import HarnessError

MAX_REPORTED = 12


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Load a schema shipped with the harness, e.g. `benchmark`."""
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return schema


def field_path(parts: Iterable[Any]) -> str:
    """`["models", "aotgan", "batch_size"]` → `models.aotgan.batch_size`; list items as `[i]`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # Keys come from untrusted documents (YAML allows null, numbers and booleans as
            # keys): a newline in one must not start a new message.
            text = (
                part
                if isinstance(part, str) and part.isprintable()
                else json.dumps(part, default=str)
            )
            out += f".{text}" if out else text
    return out or "(top level)"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_error(error: ValidationError) -> str:
    """One line: `field.path: what was expected, got what`."""
    path = list(error.absolute_path)
    kind = error.validator
    expected = error.validator_value
    got = _short(error.instance)
    if kind == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = sorted((error.schema.get("properties") or {}).keys())
        extra = sorted(set(error.instance) - set(allowed), key=lambda k: json.dumps(k, default=str))
        unknown = ", ".join(repr(k) for k in extra)
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        # A non-string key (YAML allows them) is quoted so it never reads as a list index.
        first = [k if isinstance(k, str) else json.dumps(k, default=str) for k in extra[:1]]
        where = field_path([*path, *first])
        return f"{where}: unknown field {unknown}{hint}"
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else str(expected)
        return f"{field_path([*path, missing])}: required field is missing"
    if kind == "type":
        # Nullable fields (contracts/v1) list several types: say "integer or null", not a list.
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{field_path(path)}: expected {wanted}, got {got}"
    if kind == "minimum":
        return f"{field_path(path)}: expected a number ≥ {expected}, got {got}"
    if kind == "exclusiveMinimum":
        return f"{field_path(path)}: expected a number > {expected}, got {got}"
    if kind == "maximum":
        return f"{field_path(path)}: expected a number ≤ {expected}, got {got}"
    if kind == "exclusiveMaximum":
        return f"{field_path(path)}: expected a number < {expected}, got {got}"
    if kind == "maxLength":
        # jsonschema's own message repeats the whole (too long) value.
        size = len(error.instance) if isinstance(error.instance, str) else "?"
        return f"{field_path(path)}: expected at most {expected} characters, got {size}"
    if kind == "enum":
        return f"{field_path(path)}: expected one of {', '.join(map(str, expected))}, got {got}"
    if kind == "const":
        return f"{field_path(path)}: expected {_short(expected)}, got {got}"
    if kind == "pattern":
        what = error.schema.get("description") or f"text matching {expected}"
        return f"{field_path(path)}: expected {what[0].lower() + what[1:]}, got {got}"
    if kind == "propertyNames":
        return f"{field_path(path)}: invalid name {got}: {error.message}"
    return f"{field_path(path)}: {error.message}"


def schema_errors(instance: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every violation of `schema` in `instance`, one described line each, in document order."""
    validator = Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]
    )
    return [describe_error(e) for e in errors]


def check(
    instance: Any,
    schema: Mapping[str, Any],
    where: str,
    error_type: type[HarnessError] = HarnessError,
    hint: str | None = None,
) -> None:
    """Raise `error_type` listing every violation, each prefixed by `where` (a file or label)."""
    problems = schema_errors(instance, schema)
    if not problems:
        return
    shown = problems[:MAX_REPORTED]
    more = len(problems) - len(shown)
    lines = [f"{where}: {p}" for p in shown] + ([f"... and {more} more"] if more else [])
    raise error_type("\n".join(lines), hint=hint)
