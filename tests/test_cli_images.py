"""`inpaint-bench images build`: one image that does not build is reported, the rest are built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]


def test_images_build_goes_on_past_a_failing_image_and_exits_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import harness.commands.images as command

    built: list[str] = []

    def build(path: Path, *args: Any, **kwargs: Any) -> str:
        if path.name == "madf":
            raise HarnessError(
                "madf: the image does not build: getting the base image x failed (no such host)",
                "build the base here with `bash images/base/build.sh`",
            )
        built.append(path.name)
        return f"inpaint-bench/{path.name}:0123"

    monkeypatch.setattr(command, "build_image", build)
    config = str(REPO / "benchmark.yaml")
    result = CliRunner().invoke(cli, ["images", "build", "madf", "gatedconv", "--config", config])
    assert result.exit_code == 1, result.output
    assert built == ["gatedconv"]
    assert "gatedconv\tinpaint-bench/gatedconv:0123" in result.stdout
    assert "madf\tnot built: madf: the image does not build: getting the base image x" in (
        result.stderr
    )
    assert "hint: build the base here" in result.stderr
    assert "1 image(s) did not build: madf" in result.stderr


def test_upstream_checkouts_come_from_the_environment_and_the_flag_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import harness.commands.images as command

    seen: dict[str, Path | None] = {}

    def build(path: Path, upstream: Path | None, *args: Any, **kwargs: Any) -> str:
        seen[path.name] = upstream
        return "inpaint-bench/x:1"

    monkeypatch.setattr(command, "build_image", build)
    from_env, from_flag = tmp_path / "env-madf", tmp_path / "flag-aotgan"
    from_env.mkdir(), from_flag.mkdir()
    monkeypatch.setenv("INPAINT_UPSTREAM_MADF", str(from_env))
    monkeypatch.setenv("INPAINT_UPSTREAM_AOTGAN", str(tmp_path / "ignored"))  # the flag wins
    (tmp_path / "ignored").mkdir()
    config = str(REPO / "benchmark.yaml")
    args = ["images", "build", "madf", "aotgan", "--config", config]
    result = CliRunner().invoke(cli, [*args, "--upstream-src", f"aotgan={from_flag}"])
    assert result.exit_code == 0, result.output
    assert seen == {"madf": from_env, "aotgan": from_flag}

    monkeypatch.setenv("INPAINT_UPSTREAM_TFILL", str(tmp_path / "missing"))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert f"INPAINT_UPSTREAM_TFILL={tmp_path / 'missing'}: no such folder" in result.output
