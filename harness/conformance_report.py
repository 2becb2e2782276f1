"""The result of `inpaint-bench validate`: one line per conformance check, and its table."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Check:
    """One check's line: a fail fails the image; a flag is reported but does not."""

    name: str
    status: str  # pass | fail | flag | skip
    detail: str = ""


@dataclass
class Report:
    """Every check run on one image, in the order it ran."""

    target: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "", flag: bool = False) -> bool:
        status = "pass" if ok else ("flag" if flag else "fail")
        self.checks.append(Check(name, status, detail))
        return ok

    def skip(self, name: str, why: str) -> None:
        self.checks.append(Check(name, "skip", why))


def format_report(report: Report) -> str:
    """The table `inpaint-bench validate` prints: one line per check, then the verdict."""
    width = max(len(c.name) for c in report.checks) if report.checks else 10
    lines = [f"validate {report.target}"]
    for check in report.checks:
        lines.append(
            f"  {check.status.upper():4}  {check.name.ljust(width)}  {check.detail}".rstrip()
        )
    verdict = "PASS" if report.passed else "FAIL"
    counts = {
        s: sum(c.status == s for c in report.checks) for s in ("pass", "fail", "flag", "skip")
    }
    lines.append(f"{verdict}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(lines)
