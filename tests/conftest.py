"""Suite-wide switch: where CI has everything (a Docker engine, the offline base image, the
authors' code), a test that skips means a test that silently stopped testing, so CI sets
INPAINT_BENCH_FORBID_SKIPS=1 and every skip becomes a failure that names its reason."""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from pathlib import Path

import pytest

FORBID_SKIPS_ENV = "INPAINT_BENCH_FORBID_SKIPS"
# tests/models/adapters.py (the authors' checkouts, adapter loading) serves suites outside
# tests/models too, such as the docker model tests: importable however pytest is started.
MODELS_HELPERS = str(Path(__file__).resolve().parent / "models")
if MODELS_HELPERS not in sys.path:
    sys.path.insert(0, MODELS_HELPERS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get(FORBID_SKIPS_ENV) != "1" or not report.skipped:
        return
    if hasattr(report, "wasxfail"):  # an expected failure is not a skip
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped where {FORBID_SKIPS_ENV}=1 (CI must run every test): {reason}"
