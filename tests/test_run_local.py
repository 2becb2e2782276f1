"""`run` with the local runner, for real: reference models, budgets, failure containment."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runs import faulty, reference, tiny_run_profile

from harness.ledger import Ledger
from harness.pipeline import Pipeline, RunSummary
from harness.progress import SilentReporter
from harness.runners import local
from harness.runners.local import LocalRunner


def run(profile, run_dir: Path) -> RunSummary:
    reporter = SilentReporter(quiet=True)
    return Pipeline(profile, run_dir, LocalRunner(reporter=reporter), reporter).run()


def by_label(summary: RunSummary) -> dict[str, object]:
    return {f"{s.kind} {s.label}": s for s in summary.steps}


@pytest.mark.slow
def test_reference_models_train_and_predict_then_rerun_skips_everything(tmp_path: Path) -> None:
    profile = tiny_run_profile(tmp_path, [reference("classical"), reference("gatedconv", 2.0)])
    summary = run(profile, tmp_path / "run")
    assert not summary.failed, [(s.label, s.reason) for s in summary.failed]
    steps = by_label(summary)
    train = steps["train gatedconv on scenes"]
    assert train.result["steps"] > 0 and train.result["reason"] == "budget"
    assert train.result["train_s"] >= 2.0
    assert steps["train classical on scenes"].result["steps"] == 0
    for model in ("classical", "gatedconv"):
        out = tmp_path / "run" / "predictions" / "scenes" / model / "faces_test"
        files = sorted(out.glob("*.png"))
        assert [f.name for f in files] == [f"{i:06d}.png" for i in range(4)]
        for f in files:
            with Image.open(f) as image:
                assert image.mode == "RGB" and image.size == (32, 32)
        assert steps[f"predict {model} (scenes) on faces_test"].result["composites"] is True
    describe = steps["describe gatedconv"].result["describe"]
    assert describe["parameters"]["generator"] > 0 and describe["flops"]["forward_flops"] > 0
    # measured at the run's 32 px and at the 256 px reference; no peak memory on the CPU
    assert [e["image_size"] for e in describe["per_size"]] == [32, 256]
    assert [e["peak_memory_bytes"] for e in describe["per_size"]] == [None, None]

    # The masked inputs hold no ground truth in the holes.
    gt = np.asarray(Image.open(profile.data_root / "test" / "faces_test" / "000000.png"))
    hole = np.asarray(Image.open(profile.data_root / "masks" / "test" / "000000.png")) == 255
    given = np.asarray(Image.open(tmp_path / "run" / "inputs" / "faces_test" / "000000.png"))
    assert (given[hole] == 0).all() and (given[~hole] == gt[~hole]).all()

    again = run(profile, tmp_path / "run")
    assert {s.status for s in again.steps} == {"cached"}
    with Ledger.in_run_dir(tmp_path / "run") as ledger:
        assert {s.attempt for s in ledger.steps()} == {1}


def test_model_ignoring_sigterm_is_killed_and_the_run_goes_on(tmp_path: Path) -> None:
    profile = tiny_run_profile(
        tmp_path,
        [faulty("stubborn", "ignore_sigterm", 1.0), faulty("fine", "none", 0.5)],
        grace_s=1.0,
    )
    summary = run(profile, tmp_path / "run")
    steps = by_label(summary)
    stubborn = steps["train stubborn on scenes"]
    assert stubborn.status == "failed"
    assert "ignored SIGTERM for 1 s after its budget: killed" in stubborn.reason
    with Ledger.in_run_dir(tmp_path / "run") as ledger:
        result = ledger.get(stubborn.key)
        assert result is not None and result.status == "failed"
    assert steps["predict stubborn (scenes) on faces_test"].reason == "not run: training failed"
    assert steps["train fine on scenes"].status == "done"
    assert steps["predict fine (scenes) on faces_test"].status == "done"


def test_setup_cap_kills_a_model_that_never_starts(tmp_path: Path) -> None:
    profile = tiny_run_profile(tmp_path, [faulty("slow", "slow_setup")], setup_cap_s=1.5)
    steps = by_label(run(profile, tmp_path / "run"))
    assert steps["train slow on scenes"].status == "failed"
    assert "no run_start within the setup cap of 1.5 s" in steps["train slow on scenes"].reason


@pytest.mark.parametrize(
    ("fault", "kind", "expected"),
    [
        ("crash_start", "train", "exited with status 1: RuntimeError: deliberate crash"),
        ("crash_mid", "train", "exited with status 1"),
        ("no_checkpoint", "predict", "no checkpoint"),
        ("missing_outputs", "predict", "1 prediction(s) missing"),
        ("extra_outputs", "predict", "1 unexpected file(s) in the outputs"),
        ("wrong_size", "predict", "expected 32x32, got 32x16"),
        ("symlink_output", "predict", "not a regular file (links are refused)"),
        ("non_png", "predict", "expected an 8-bit RGB PNG, got JPEG RGB"),
    ],
)
def test_failures_are_contained_with_a_reason(
    tmp_path: Path, fault: str, kind: str, expected: str
) -> None:
    profile = tiny_run_profile(tmp_path, [faulty("bad", fault, 0.6), faulty("good", "none", 0.3)])
    summary = run(profile, tmp_path / "run")
    steps = by_label(summary)
    label = "train bad on scenes" if kind == "train" else "predict bad (scenes) on faces_test"
    assert steps[label].status == "failed"
    assert expected in steps[label].reason
    assert "see " in steps[label].reason or kind == "predict"
    assert steps["predict good (scenes) on faces_test"].status == "done"
    assert not (tmp_path / "run" / "predictions" / "scenes" / "bad" / "faces_test").exists()


def test_malformed_event_lines_are_recorded_not_fatal(tmp_path: Path) -> None:
    profile = tiny_run_profile(tmp_path, [faulty("noisy", "malformed_events", 0.5)])
    steps = by_label(run(profile, tmp_path / "run"))
    train = steps["train noisy on scenes"]
    assert train.status == "done" and train.result["violations"] == 2
    with Ledger.in_run_dir(tmp_path / "run") as ledger:
        found = ledger.violations(train.key)
    assert len(found) == 2
    assert found[0].startswith("line 2: ") and "invalid JSON" in found[0]
    assert "step: required field is missing" in found[1]


def test_model_that_does_not_composite_is_flagged(tmp_path: Path) -> None:
    profile = tiny_run_profile(tmp_path, [faulty("leaky", "no_composite", 0.3)])
    steps = by_label(run(profile, tmp_path / "run"))
    predict = steps["predict leaky (scenes) on faces_test"]
    assert predict.status == "done"
    assert predict.result["composites"] is False and predict.result["known_pixel_max_abs"] == 3


def with_upstream(tmp_path: Path, url: str) -> Path:
    import json
    import shutil

    from runs import FAULTY

    folder = tmp_path / "wrapped"
    shutil.copytree(FAULTY, folder, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["upstream"] = {"url": url, "commit": "0" * 40, "license": "MIT"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_model_whose_upstream_cannot_be_fetched_is_skipped_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INPAINT_BENCH_CACHE", str(tmp_path / "cache"))
    folder = with_upstream(tmp_path, "https://example.invalid/no-such-repo")
    entry = faulty("wrapped", "none", 0.3)
    profile = tiny_run_profile(
        tmp_path, [entry.__class__(**{**entry.__dict__, "image": str(folder)})]
    )
    summary = run(profile, tmp_path / "run")
    assert [s.status for s in summary.steps if s.kind == "resolve"] == ["skipped"]
    reason = next(s.reason for s in summary.steps if s.kind == "resolve")
    assert "cannot fetch its upstream source" in reason
    assert "--upstream-src wrapped=PATH" in reason
    assert not summary.failed


def test_upstream_override_is_used_and_passed_to_the_adapter(tmp_path: Path) -> None:
    folder = with_upstream(tmp_path, "https://example.invalid/repo")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    entry = faulty("wrapped", "none", 0.3)
    profile = tiny_run_profile(
        tmp_path, [entry.__class__(**{**entry.__dict__, "image": str(folder)})]
    )
    reporter = SilentReporter(quiet=True)
    runner = LocalRunner({"wrapped": checkout}, reporter)
    summary = Pipeline(profile, tmp_path / "run", runner, reporter).run()
    assert not summary.failed and not [s for s in summary.steps if s.status == "skipped"]


def test_scores_reach_the_ledger_and_match_an_independent_psnr(tmp_path: Path) -> None:
    profile = tiny_run_profile(tmp_path, [reference("classical")])
    summary = run(profile, tmp_path / "run")
    scored = [s for s in summary.steps if s.kind == "score"]
    assert [s.status for s in scored] == ["done"], [s.reason for s in scored]
    with Ledger.in_run_dir(tmp_path / "run") as ledger:
        rows = ledger.score_rows()
    psnr = {
        r["image"]: r["value"]
        for r in rows
        if r["metric"] == "psnr" and r["variant"] == "composite"
    }
    assert sorted(psnr) == [f"{i:06d}.png" for i in range(4)]
    for name, value in psnr.items():
        gt = np.asarray(Image.open(profile.data_root / "test" / "faces_test" / name), float)
        hole = np.asarray(Image.open(profile.data_root / "masks" / "test" / name)) == 255
        pred = np.asarray(
            Image.open(
                tmp_path / "run" / "predictions" / "scenes" / "classical" / "faces_test" / name
            ),
            float,
        )
        composite = np.where(hole[..., None], pred, gt)
        mse = max(((composite - gt) ** 2).mean(), 1e-10)
        assert abs(value - 10 * np.log10(255.0**2 / mse)) < 1e-6
    metrics = {r["metric"] for r in rows}
    assert {"psnr", "ssim_gauss", "psnr_hole", "l1_hole", "known_pixel_dev"} <= metrics
    known = [r["value"] for r in rows if r["metric"] == "known_pixel_dev"]
    assert known and all(v == 0.0 for v in known)
    assert (tmp_path / "run" / "scores" / "scenes" / "classical" / "faces_test.csv").is_file()


def test_one_models_unscorable_predictions_fail_only_its_own_score_step(tmp_path: Path) -> None:
    profile = tiny_run_profile(tmp_path, [faulty("a"), faulty("b")])
    reporter = SilentReporter(quiet=True)
    runner = LocalRunner(reporter=reporter)
    Pipeline(profile, tmp_path / "run", runner, reporter, score=False).run()
    # The joint score job of a and b fails on a's missing file: each is then scored alone.
    lost = tmp_path / "run" / "predictions" / "scenes" / "a" / "faces_test" / "000001.png"
    lost.unlink()
    summary = run(profile, tmp_path / "run")
    steps = by_label(summary)
    a, b = steps["score a (scenes) on faces_test"], steps["score b (scenes) on faces_test"]
    assert a.status == "failed" and f"{lost}: no prediction" in a.reason
    assert b.status == "done", b.reason
    assert (tmp_path / "run" / "scores" / "scenes" / "b" / "faces_test.csv").is_file()


def test_a_job_whose_harness_died_before_its_death_signal_was_set_never_starts(
    tmp_path: Path,
) -> None:
    # kill -9 of the harness between fork and prctl(PR_SET_PDEATHSIG) sends no signal: the child
    # sees that its parent is no longer the harness and ends before exec (here: another "parent").
    marker = tmp_path / "ran"
    argv = ["touch", str(marker)]

    def orphaned() -> None:
        local._detach_and_die_with_parent(os.getppid() + 1, local._libc())

    def adopted() -> None:
        local._detach_and_die_with_parent(os.getppid(), local._libc())  # the test: its parent

    assert subprocess.run(argv, preexec_fn=orphaned).returncode == -signal.SIGKILL
    assert not marker.exists()
    assert subprocess.run(argv, preexec_fn=adopted).returncode == 0
    assert marker.exists()
