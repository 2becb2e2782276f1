"""`inpaint-bench report RUN_DIR`: happy path and error paths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from reportfixture import BuiltReport, shared_report

from harness.cli import cli


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltReport:
    return shared_report(tmp_path_factory)


def test_report_writes_the_folder_and_prints_path_and_main_tables(
    built: BuiltReport, tmp_path: Path
) -> None:
    # A copy of the shared run (its data root is absolute), with a stale report to replace.
    run_dir = tmp_path / "run"
    shutil.copytree(built.fixture.run_dir, run_dir)
    (run_dir / "report" / "stale.txt").write_text("from an earlier report")
    result = CliRunner().invoke(cli, ["report", str(run_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == str((run_dir / "report").resolve())
    assert "| test set | metric | alpha | beta | gamma |" in result.stdout
    assert "Table 1: models trained on place2." in result.stdout
    assert "Table 2: models trained on celeba." in result.stdout
    assert result.stdout.count("| celeba_test | PSNR (dB) ↑ |") == 2
    report = run_dir / "report"
    assert not (report / "stale.txt").exists()  # replaced as a whole
    umask = os.umask(0)
    os.umask(umask)
    # atomic_dir gives the umask's mode, not mkdtemp's private 0700: a report is for sharing.
    assert report.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (report / "report.md").read_text().count("## ") >= 6
    assert (report / "report.html").read_text().startswith("<!DOCTYPE html>")
    table = pd.read_csv(report / "tables" / "main_place2.csv")
    assert set(table["model"]) == {"alpha", "beta", "gamma"}
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".report")] == []


def test_report_without_a_ledger_says_to_run_first(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 1
    ledger = tmp_path.resolve() / "ledger.sqlite"
    assert result.stderr == (
        f"Error: {ledger}: no ledger, so there is nothing to report\n"
        f"  hint: run `inpaint-bench run --run-dir {tmp_path.resolve()}` first\n"
    )
    assert not (tmp_path / "report").exists()


def test_report_of_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
