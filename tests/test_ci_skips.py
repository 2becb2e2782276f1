"""CI turns every skip into a failure (tests/conftest.py), so a test that stops running shows."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py").read_text()
SUITE = """
import pytest

def test_runs():
    assert True

def test_needs_a_checkout():
    pytest.skip("set INPAINT_UPSTREAM_MADF to a checkout")

@pytest.mark.xfail(reason="known")
def test_known_failure():
    assert False
"""


@pytest.mark.parametrize("forbid", ["1", ""])
def test_a_skip_fails_only_where_skips_are_forbidden(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, forbid: str
) -> None:
    monkeypatch.setenv("INPAINT_BENCH_FORBID_SKIPS", forbid)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    if forbid:
        result.assert_outcomes(passed=1, failed=1, xfailed=1)
        expected = "*skipped where INPAINT_BENCH_FORBID_SKIPS=1*INPAINT_UPSTREAM_MADF*"
        result.stdout.fnmatch_lines([expected])
    else:
        result.assert_outcomes(passed=1, skipped=1, xfailed=1)
