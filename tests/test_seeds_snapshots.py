"""Training seeds and snapshots through `run` (local runner, the faulty fixture image): each seed
trains, predicts and is scored on its own; snapshots are kept where the image claims them."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from datatree import tiny_run_args, write_tiny_benchmark
from runs import FAULTY, faulty, tiny_run_profile
from test_resume import BIN, adapter_processes, statuses

from harness.jobs import predict_job, train_job
from harness.ledger import Ledger
from harness.pipeline import Pipeline, RunSummary
from harness.progress import SilentReporter
from harness.report.build import build_report
from harness.report.rundata import load_run
from harness.report.time_scores import time_points
from harness.runners.local import LocalRunner


def run(profile, run_dir: Path) -> RunSummary:
    reporter = SilentReporter(quiet=True)
    return Pipeline(profile, run_dir, LocalRunner(reporter=reporter), reporter).run()


def snapshotting(tmp_path: Path) -> str:
    """A copy of the faulty image whose manifest claims snapshots (its adapter keeps them)."""
    folder = tmp_path / "images" / "snapper"
    shutil.copytree(FAULTY, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "snapshots": True}))
    return str(folder)


def by_kind(summary: RunSummary, kind: str) -> list:
    return [s for s in summary.steps if s.kind == kind]


def test_a_second_seed_trains_on_its_own_and_the_first_stays_cached(tmp_path: Path) -> None:
    one = tiny_run_profile(tmp_path, [faulty("m", budget_s=0.5)])
    first = run(one, tmp_path / "run")
    assert not first.failed, [(s.label, s.reason) for s in first.failed]
    (old_train,) = by_kind(first, "train")

    two = dataclasses.replace(one, seeds=(0, 1))
    second = run(two, tmp_path / "run")
    assert not second.failed, [(s.label, s.reason) for s in second.failed]
    trains = by_kind(second, "train")
    # seed 0 is the one-seed run's step, same key, not redone; seed 1 is new
    assert [(t.label, t.status) for t in trains] == [
        ("m on scenes", "cached"),
        ("m on scenes, seed 1", "done"),
    ]
    assert trains[0].key == old_train.key and trains[1].key != old_train.key
    assert trains[0].result["checkpoints"] != trains[1].result["checkpoints"]
    for train in trains:
        assert (Path(train.result["checkpoints"]) / "state.json").is_file()
    with Ledger.in_run_dir(tmp_path / "run") as ledger:
        specs = {s.label: s.spec for s in ledger.steps("train")}
        assert {label: spec["job"]["seed"] for label, spec in specs.items()} == {
            "m on scenes": 0,
            "m on scenes, seed 1": 1,
        }
        assert {s.attempt for s in ledger.steps()} == {1}
        rows = ledger.score_rows()
    # four test images, each scored per seed, under its own seed
    psnr = [r for r in rows if r["metric"] == "psnr" and r["variant"] == "composite"]
    images = {seed: sorted(r["image"] for r in psnr if r["seed"] == seed) for seed in (0, 1)}
    assert images[0] == images[1] == [f"{i:06d}.png" for i in range(4)]
    assert {r["snapshot_s"] for r in rows} == {None}
    run_dir = tmp_path / "run"
    assert (run_dir / "predictions" / "scenes" / "m" / "faces_test").is_dir()
    assert (run_dir / "predictions" / "scenes" / "m@seed1" / "faces_test").is_dir()
    assert (run_dir / "scores" / "scenes" / "m@seed1" / "faces_test.csv").is_file()
    assert (run_dir / "logs" / "train-m-scenes@seed1.log").is_file()
    scores = load_run(run_dir).scores
    assert sorted(scores["seed"].unique()) == [0, 1] and scores["snapshot_s"].isna().all()


def test_snapshots_are_kept_predicted_and_scored_where_the_image_claims_them(
    tmp_path: Path,
) -> None:
    claims = dataclasses.replace(faulty("snap", budget_s=1.5), image=snapshotting(tmp_path))
    plain = faulty("old", budget_s=1.5)
    profile = tiny_run_profile(tmp_path, [claims, plain])
    # 1.5s and 5s are at or past the budget: the final checkpoint, not snapshots
    profile = dataclasses.replace(profile, snapshots_s=(0.3, 0.8, 1.5, 5.0))
    summary = run(profile, tmp_path / "run")
    assert not summary.failed, [(s.label, s.reason) for s in summary.failed]
    with Ledger.in_run_dir(tmp_path / "run") as ledger:
        trains = {s.label: s for s in ledger.steps("train")}
        assert trains["snap on scenes"].spec["job"]["snapshot_at_s"] == [0.3, 0.8]
        assert "snapshot_at_s" not in trains["old on scenes"].spec["job"]
        events = ledger.events(trains["snap on scenes"].key)
        predicts = {s.label: s.spec["job"].get("snapshot_s") for s in ledger.steps("predict")}
        rows = ledger.score_rows()
    # taken when the training clock had reached each asked second, as the events say
    kept = [e for e in events if e["event"] == "checkpoint" and e.get("snapshot_s")]
    assert [e["snapshot_s"] for e in kept] == [0.3, 0.8]
    assert all(e["trained_s"] >= e["snapshot_s"] for e in kept)
    result = trains["snap on scenes"].result
    assert sorted(result["snapshots"]) == ["0.3", "0.8"]
    assert result["trained_s"] >= 0.8
    assert predicts == {
        "snap (scenes) on faces_test": None,
        "snap (scenes, at 0.3s) on faces_test": 0.3,
        "snap (scenes, at 0.8s) on faces_test": 0.8,
        "old (scenes) on faces_test": None,  # no claim: the final checkpoint only
    }
    snaps = {(r["model"], r["snapshot_s"]) for r in rows}
    assert snaps == {("snap", None), ("snap", 0.3), ("snap", 0.8), ("old", None)}
    for name in ("snap", "snap@0.3s", "snap@0.8s", "old"):
        out = tmp_path / "run" / "predictions" / "scenes" / name / "faces_test"
        assert len(list(out.glob("*.png"))) == 4, name


def test_an_image_that_claims_snapshots_but_keeps_none_still_predicts_the_final_one(
    tmp_path: Path,
) -> None:
    model = dataclasses.replace(
        faulty("lazy", "no_snapshots", budget_s=0.5), image=snapshotting(tmp_path)
    )
    profile = dataclasses.replace(tiny_run_profile(tmp_path, [model]), snapshots_s=(0.2,))
    summary = run(profile, tmp_path / "run")
    assert not summary.failed
    assert [s.label for s in by_kind(summary, "predict")] == ["lazy (scenes) on faces_test"]


@pytest.mark.parametrize("seeds", [(0,), ()])
def test_one_seed_profiles_build_the_jobs_of_a_run_before_seeds(
    tmp_path: Path, seeds: tuple[int, ...]
) -> None:
    before = tiny_run_profile(tmp_path, [faulty("m")])
    now = dataclasses.replace(before, seeds=seeds, snapshots_s=(0.5,))
    (model,) = now.models
    manifest = json.loads((FAULTY / "manifest.json").read_text())  # claims no snapshots
    old = train_job("", before, model, "cpu", manifest)
    assert train_job("", now, model, "cpu", manifest) == old
    assert predict_job("", now, model, "cpu", manifest, 0) == predict_job(
        "", before, model, "cpu", manifest
    )
    assert train_job("", now, model, "cpu", manifest, seed=5)["seed"] == 5


def test_the_time_figure_points_are_the_ledgers_means_over_seeds(tmp_path: Path) -> None:
    model = dataclasses.replace(faulty("snap", budget_s=1.2), image=snapshotting(tmp_path))
    profile = tiny_run_profile(tmp_path, [model])
    profile = dataclasses.replace(profile, seeds=(0, 1), snapshots_s=(0.3, 0.6))
    run_dir = tmp_path / "run"
    summary = run(profile, run_dir)
    assert not summary.failed, [(s.label, s.reason) for s in summary.failed]

    points = time_points(load_run(run_dir))
    conn = sqlite3.connect(run_dir / "ledger.sqlite")
    expected = conn.execute(
        "SELECT metric, snapshot_s, AVG(m), MIN(m), MAX(m), COUNT(*) FROM ("
        " SELECT metric, snapshot_s, seed, AVG(value) AS m FROM scores"
        " WHERE variant = 'composite' GROUP BY metric, snapshot_s, seed"
        ") GROUP BY metric, snapshot_s"
    ).fetchall()
    trained = {
        json.loads(spec)["job"]["seed"]: json.loads(result)["trained_s"]
        for spec, result in conn.execute("SELECT spec, result FROM steps WHERE kind = 'train'")
    }
    conn.close()
    assert len(expected) == len(points) == 3 * points["metric"].nunique()
    for metric, snapshot, mean, low, high, seeds in expected:
        checkpoint = "final" if snapshot is None else f"{snapshot:g}"
        (point,) = points[
            (points["metric"] == metric) & (points["checkpoint"] == checkpoint)
        ].itertuples()
        assert (point.seeds, point.n) == (seeds, 2 * 4)
        assert point.mean == pytest.approx(mean)
        assert (point.seed_min, point.seed_max) == (pytest.approx(low), pytest.approx(high))
        x = snapshot if snapshot is not None else (trained[0] + trained[1]) / 2
        assert point.training_s == pytest.approx(x)

    report = build_report(run_dir).path
    assert (report / "figures" / "time_scenes.png").is_file()
    written = pd.read_csv(report / "tables" / "score_time.csv")
    assert len(written) == len(points)
    assert "Score against training time" in (report / "report.md").read_text()
    training = pd.read_csv(report / "tables" / "training.csv")
    assert sorted(training["seed"]) == [0, 1]
    identity = pd.read_csv(report / "tables" / "run.csv").set_index("field")["value"]
    assert identity["training seeds"] == "0, 1"
    assert identity["snapshots (training s)"] == "0.3, 0.6"
    curves = pd.read_csv(report / "tables" / "curves.csv")
    assert sorted(curves["seed"].unique()) == [0, 1]  # each seed's losses, none overwritten


def test_a_kill_9_in_the_second_seed_redoes_only_that_seed(tmp_path: Path) -> None:
    config = write_tiny_benchmark(
        tmp_path, {"m": {"image": str(FAULTY), "batch_size": 1}}, train=(6, 2), test=4, budget="3s"
    )
    document = yaml.safe_load(config.read_text())
    document["profiles"]["tiny"]["seeds"] = [0, 1]
    config.write_text(yaml.safe_dump(document))
    run_dir = tmp_path / "run"
    command = [str(BIN), *tiny_run_args(config, run_dir), "-q"]
    harness = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    before: dict[str, tuple[str, int, float]] = {}
    while time.monotonic() < deadline and harness.poll() is None:
        before = statuses(run_dir)
        if before.get("train m on scenes, seed 1", ("",))[0] == "running":
            break
        time.sleep(0.1)
    else:
        harness.kill()
        raise AssertionError(f"never saw seed 1 training: {before}")
    os.kill(harness.pid, signal.SIGKILL)
    harness.wait()
    while adapter_processes(run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)  # the job goes down with the harness (its process group)
    assert adapter_processes(run_dir) == [], "the job outlived the killed harness"
    assert before["train m on scenes"][0] == "done"
    assert before["predict m (scenes) on faces_test"][0] == "done"

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = statuses(run_dir)
    assert all(status == "done" for status, _, _ in after.values()), after
    for label in ("train m on scenes", "predict m (scenes) on faces_test"):
        assert after[label][1:] == before[label][1:], f"{label} was redone"
    assert after["train m on scenes, seed 1"][1] == before["train m on scenes, seed 1"][1] + 1
    assert "score m (scenes, seed 1) on faces_test" in after


def test_score_rows_of_a_ledger_from_before_seeds_read_as_the_runs_seed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with Ledger.in_run_dir(run_dir) as ledger:
        ledger.begin("k", "score", "m (scenes) on faces_test", {"model": "m"})
        ledger.put_scores(
            "k",
            {"source": "scenes", "model": "m", "test_set": "t"},
            [{"image": "a.png", "variant": "composite", "psnr": "20.5"}],
            ["psnr"],
        )
        ledger.finish("k", "done", result={})
    (run_dir / "run.json").write_text(json.dumps({"seed": 7}))
    # take the ledger back to before 0003_score_runs, as an old run folder has it
    conn = sqlite3.connect(run_dir / "ledger.sqlite")
    with conn:
        conn.execute("ALTER TABLE scores DROP COLUMN seed")
        conn.execute("ALTER TABLE scores DROP COLUMN snapshot_s")
        conn.execute("DELETE FROM migrations WHERE name = '0003_score_runs'")
    conn.close()

    old = load_run(run_dir).scores  # read-only: the ledger is not migrated
    assert (list(old["seed"]), old["snapshot_s"].isna().all()) == ([7], True)
    with Ledger.in_run_dir(run_dir) as ledger:  # a rerun migrates it; old rows keep NULL
        assert "0003_score_runs" in ledger.migrations()
        assert [(r["seed"], r["snapshot_s"]) for r in ledger.score_rows()] == [(None, None)]
    assert list(load_run(run_dir).scores["seed"]) == [7]
