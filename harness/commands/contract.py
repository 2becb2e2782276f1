"""`inpaint-bench contract …`: check documents against contract v1 and print its schemas."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.contract import CONTRACT_VERSION, Kind, load_json_document, load_schema, read_events

_KINDS = click.Choice([k.value for k in Kind])


@click.group()
def contract() -> None:
    """Check manifests, jobs, event logs and describe.json against contract v1.

    \b
    Example:
        inpaint-bench contract check job job.json
        inpaint-bench contract schema manifest
    """


@contract.command("check")
@click.argument("kind", type=_KINDS)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check_document(kind: str, file: Path) -> None:
    """Validate FILE as a KIND document; each error names the field (events: the line too).

    \b
    Example:
        inpaint-bench contract check manifest images/aotgan/manifest.json
        inpaint-bench contract check events runs/sample/aotgan/train/events.jsonl
    """
    if kind == Kind.EVENTS:
        events = read_events(file)
        click.echo(f"{file}: {len(events)} valid events (contract v{CONTRACT_VERSION})")
        return
    load_json_document(file, kind)
    click.echo(f"{file}: valid {kind} (contract v{CONTRACT_VERSION})")


@contract.command("schema")
@click.argument("kind", type=_KINDS)
def show_schema(kind: str) -> None:
    """Print the JSON Schema of KIND (for events: of one line).

    \b
    Example:
        inpaint-bench contract schema job > job.schema.json
    """
    click.echo(json.dumps(load_schema(kind), indent=2, ensure_ascii=False))
