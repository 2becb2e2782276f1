"""Write docs/cli.md from every command's --help (run by `make docs`; checked by tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.testing import CliRunner

from harness.cli import cli

OUT = Path(__file__).resolve().parent / "cli.md"
HEADER = (
    "# CLI reference\n\nGenerated from `--help` by `make docs` (docs/gen_cli.py); "
    "`tests/test_cli.py` fails when it is out of date.\n"
)


def walk(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(walk(command, (*prefix, name)))
    return paths


def render() -> str:
    runner = CliRunner()
    parts = [HEADER]
    for path in walk(cli):
        result = runner.invoke(
            cli, [*path, "--help"], prog_name="inpaint-bench", terminal_width=100
        )
        parts.append(f"\n## inpaint-bench {' '.join(path)}\n\n```\n{result.output.rstrip()}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    OUT.write_text(render())
    sys.stdout.write(f"wrote {OUT}\n")
