"""The paper's three models in their own images, under a real engine, as CI runs them offline:
built from the offline base with BAKE_WEIGHTS=0 (so they run only with seeded random loss
networks, INPAINT_RANDOM_LOSS_WEIGHTS=1, and say so), validated in the sandbox at their smallest
legal sizes, then the `sample` profile with all five models to a report. A model whose image
does not build is skipped with its reason and hint; the others run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from adapters import upstream_checkout
from click.testing import CliRunner
from dockerhost import engine_and_base
from runs import REPO, reference, tiny_run_profile

from harness.builder import BASE_ID_LABEL, BASE_LABEL
from harness.conformance import Conformance
from harness.pipeline import Pipeline
from harness.progress import SilentReporter

pytestmark = [pytest.mark.docker, pytest.mark.upstream, pytest.mark.slow]
UPSTREAM_MODELS = ["madf", "aotgan", "tfill"]
SANDBOX = "works with no network, a read-only root and an arbitrary uid"


@pytest.fixture
def offline_build(monkeypatch: pytest.MonkeyPatch) -> str:
    """Images without baked weights, run with seeded random loss networks: the base's name."""
    _, base = engine_and_base()
    monkeypatch.setenv("INPAINT_BENCH_BUILD_ARGS", "BAKE_WEIGHTS=0")
    monkeypatch.setenv("INPAINT_RANDOM_LOSS_WEIGHTS", "1")  # the docker runner passes it on
    return base


def _runner(base: str, upstream: dict[str, Path]):  # type: ignore[no-untyped-def]
    from harness.runners.docker import DockerRunner

    client, _ = engine_and_base()
    return DockerRunner(
        reporter=SilentReporter(quiet=True), client=client, base_image=base, upstream_src=upstream
    )


@pytest.mark.parametrize("model", UPSTREAM_MODELS)
def test_upstream_image_passes_validate_in_the_sandbox(
    offline_build: str, model: str, tmp_path: Path
) -> None:
    runner = _runner(offline_build, {model: upstream_checkout(model)})
    report = Conformance(str(REPO / "images" / model), runner, tmp_path).run()
    checks = {c.name: (c.status, c.detail) for c in report.checks}
    assert report.passed, checks
    assert checks[SANDBOX][0] == "pass", checks[SANDBOX]
    # What ran: built FROM the offline base, without baked weights, and labelled so.
    image = runner.client.images.get(runner.images[str((REPO / "images" / model).resolve())])
    labels = image.labels
    assert labels[BASE_LABEL] == offline_build
    assert labels[BASE_ID_LABEL] == runner.client.images.get(offline_build).id
    assert labels["dev.inpaint-bench.bake-weights"] == "0"


def test_sample_profile_with_all_five_models_under_docker_ends_in_a_report(
    offline_build: str, tmp_path: Path
) -> None:
    from harness.cli import cli

    upstream = [f"--upstream-src={m}={upstream_checkout(m)}" for m in UPSTREAM_MODELS]
    run_dir = tmp_path / "run"
    args = ["run", "--config", str(REPO / "benchmark.yaml"), "--profile", "sample"]
    args += ["--runner", "docker", "--run-dir", str(run_dir), "--quiet", *upstream]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output, result.output
    info = json.loads((run_dir / "run.json").read_text())
    assert info["runner"] == "docker" and "skipped" not in info
    five = ["classical", "gatedconv", "madf", "aotgan", "tfill"]
    for name in [*five, "metrics"]:
        assert info["images"][name]["docker_image"].startswith("sha256:"), name
        assert info["images"][name]["base_image"] == offline_build, name
    main = (run_dir / "report" / "report.md").read_text()
    for model in five:
        assert model in main
    scores = list((run_dir / "scores").rglob("*.csv"))
    assert {p.parent.name for p in scores} == set(five)  # every model was scored
    assert "random" in main.lower()  # the report says the loss networks had random weights


def test_a_model_whose_image_does_not_build_is_skipped_and_the_others_run(
    offline_build: str, tmp_path: Path
) -> None:
    from harness.runners.docker import DockerRunner

    broken = tmp_path / "images" / "unbuildable"
    shutil.copytree(REPO / "tests" / "fixtures" / "images" / "unbuildable", broken)
    good = reference("gatedconv", 2.0)
    from harness.config import ModelEntry

    bad = ModelEntry(name="unbuildable", image=str(broken), batch_size=1, train_budget_s=2.0)
    profile = tiny_run_profile(tmp_path, [bad, good], size=32)
    client, _ = engine_and_base()
    notes: list[str] = []
    reporter = SilentReporter(quiet=True)
    reporter.note = notes.append  # type: ignore[method-assign]
    runner = DockerRunner(reporter=reporter, client=client, base_image=offline_build)
    from harness.scoring import METRICS_FOLDER

    assert runner.build_all([broken, REPO / "images" / "gatedconv", METRICS_FOLDER]) is None
    summary = Pipeline(profile, tmp_path / "run", runner, reporter).run()
    assert not summary.failed, [(s.label, s.reason) for s in summary.failed]
    [skip] = [s for s in summary.steps if s.status == "skipped"]
    assert skip.label == "unbuildable"
    assert skip.reason.startswith(
        "unbuildable: the image does not build: install a package that exists nowhere failed ("
    )
    assert "pip could not install a package" in skip.reason  # the hint
    assert {s.kind for s in summary.steps if s.label.startswith("gatedconv")} >= {"train"}
    assert any(s.kind == "score" and s.status == "done" for s in summary.steps)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["skipped"]["unbuildable"] == skip.reason
    assert any(n.startswith("skipping unbuildable: its image does not build") for n in notes)
