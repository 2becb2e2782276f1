"""A run whose models trained with random loss-network weights says so before any number."""

from __future__ import annotations

import re
from pathlib import Path

from reportfixture import build_run

from harness.ledger import Ledger
from harness.report.build import build_report


def test_random_loss_weights_are_flagged_first(tmp_path: Path) -> None:
    fixture = build_run(tmp_path)
    with Ledger.in_run_dir(fixture.run_dir) as ledger:
        train = ledger.steps("train")[0]
        message = "vgg16 loss network has seeded RANDOM weights (INPAINT_RANDOM_LOSS_WEIGHTS=1)"
        ledger.add_event(
            train.key, train.attempt, 999, {"event": "warning", "time": 1.0, "message": message}
        )
        model = train.spec["model"]
    result = build_report(fixture.run_dir)
    warning = f"**Warning: {model} trained with seeded random loss-network weights"
    assert result.main_markdown.startswith(warning)
    markdown = (result.path / "report.md").read_text()
    assert markdown.index(warning) < markdown.index("Main results")
    html_text = re.sub(r"<[^>]+>", "", (result.path / "report.html").read_text())
    assert f"Warning: {model} trained with seeded random loss-network weights" in html_text


def test_no_warning_without_random_weights(tmp_path: Path) -> None:
    fixture = build_run(tmp_path)
    result = build_report(fixture.run_dir)
    assert "Warning" not in (result.path / "report.md").read_text()
