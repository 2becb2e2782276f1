"""The command tree: every command has help, answers --help, and is documented."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from harness import __version__
from harness.cli import cli

REPO = Path(__file__).resolve().parents[1]


def walk(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(walk(command, (*prefix, name)))
    return paths


COMMANDS = walk(cli)


def test_the_tree_has_the_expected_commands() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {
        "data sample",
        "data masks",
        "data prepare",
        "data check",
        "config check",
        "contract check",
        "run",
    } <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(path: tuple[str, ...], flag: str) -> None:
    result = CliRunner().invoke(cli, [*path, flag], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    command = cli
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    assert command.help and len(command.help.strip()) > 20, f"{path} has no help text"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p))
def test_every_command_is_documented(path: tuple[str, ...]) -> None:
    docs = (REPO / "README.md").read_text() + (REPO / "docs" / "cli.md").read_text()
    assert f"inpaint-bench {' '.join(path)}" in docs


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_harness_error_becomes_one_line_and_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(tmp_path / "no.yaml")])
    assert result.exit_code == 1
    assert f"Error: {tmp_path / 'no.yaml'}: file not found" in result.output
    assert "Traceback" not in result.output


def test_config_check_prints_the_resolved_profile() -> None:
    result = CliRunner().invoke(
        cli,
        ["config", "check", "--config", str(REPO / "benchmark.yaml"), "--profile", "seed"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert '"image_size": 256' in result.output and '"name": "tfill"' in result.output


def test_cli_reference_is_up_to_date() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_cli", REPO / "docs" / "gen_cli.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (REPO / "docs" / "cli.md").read_text() == module.render(), "run `make docs`"
