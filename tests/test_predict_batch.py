"""One predict job per checkpoint for all its test sets (harness/predicting.py): counted from
the runner's launches and the ledger's events, equal byte for byte to predicting set by set,
resumed where some sets are done, and never a set marked done before its folder is in place."""

from __future__ import annotations

import dataclasses
import errno
import os
import re
from pathlib import Path

import numpy as np
import pytest
from runs import reference, tiny_run_profile

from harness import predict_batch, predicting
from harness.config import Profile
from harness.data.pngs import write_png
from harness.errors import ConfigError
from harness.ledger import Ledger
from harness.pipeline import Pipeline, RunSummary
from harness.progress import SilentReporter
from harness.runners.base import Launch
from harness.runners.local import LocalProcess, LocalRunner

SETS = ("faces_test", "scenes_test", "city_test")


class CountingRunner(LocalRunner):
    """The local runner, noting the model and input file names of every predict job."""

    def __init__(self) -> None:
        super().__init__(reporter=SilentReporter(quiet=True))
        self.predicts: list[tuple[str, list[str]]] = []

    def start(self, launch: Launch) -> LocalProcess:
        if launch.command == "predict":
            names = sorted(p.name for p in launch.mounts.data["inputs"].glob("*.png"))
            self.predicts.append((launch.model, names))
        return super().start(launch)


def three_sets(tmp_path: Path, models: list[str]) -> Profile:
    """Three test sets of four images; batch sizes that divide four, so that a combined job's
    batches hold the same images as the per-set jobs' (a model's float arithmetic may depend
    on what shares its batch; that is the model's business, not the harness's)."""
    entries = [reference(m, batch_size=2 if m == "gatedconv" else 4) for m in models]
    profile = tiny_run_profile(tmp_path / "tree", entries)
    test_sets = dict.fromkeys(SETS, 4)
    profile = dataclasses.replace(profile, test_sets=test_sets)
    rng = np.random.default_rng(1)
    for test_set in SETS[1:]:  # the fixture's tree has the first; the others, images of their own
        folder = profile.data_root / "test" / test_set
        if not folder.exists():
            folder.mkdir()
            for i in range(4):
                write_png(folder / f"{i:06d}.png", rng.integers(0, 256, (32, 32, 3), np.uint8))
    return profile


def only(profile: Profile, sets: tuple[str, ...]) -> Profile:
    return dataclasses.replace(profile, test_sets=dict.fromkeys(sets, 4))


class NoteTaker(SilentReporter):
    """Keeps the run's status lines."""

    def __init__(self) -> None:
        super().__init__(quiet=True)
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)


def run(
    profile: Profile,
    run_dir: Path,
    runner: LocalRunner | None = None,
    reporter: SilentReporter | None = None,
) -> RunSummary:
    reporter = reporter or SilentReporter(quiet=True)
    runner = runner or LocalRunner(reporter=reporter)
    summary = Pipeline(profile, run_dir, runner, reporter, max_steps=2, score=False).run()
    assert not summary.failed, [(s.label, s.reason) for s in summary.failed]
    return summary


def predictions(run_dir: Path) -> dict[str, bytes]:
    files = sorted((run_dir / "predictions").rglob("*.png"))
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in files}


def predict_steps(run_dir: Path) -> dict[str, tuple[int, float, int]]:
    """label → (attempt, started_at, run_start events of its latest attempt)."""
    with Ledger.in_run_dir(run_dir) as ledger:
        return {
            s.label: (
                s.attempt,
                s.started_at,
                sum(e["event"] == "run_start" for e in ledger.events(s.key)),
            )
            for s in ledger.steps("predict")
            if s.status == "done"
        }


@pytest.mark.slow
def test_one_predict_job_per_checkpoint_equals_set_by_set(tmp_path: Path) -> None:
    profile = three_sets(tmp_path, ["classical", "gatedconv"])
    batched, notes = CountingRunner(), NoteTaker()
    run(profile, tmp_path / "batched", batched, notes)
    # one job per model (one checkpoint each) over the 12 images of the three sets
    combined = sorted(f"{t}--{i:06d}.png" for t in SETS for i in range(4))
    assert batched.predicts == [("classical", combined), ("gatedconv", combined)]
    steps = predict_steps(tmp_path / "batched")
    assert len(steps) == 6  # each set its own step
    assert sum(events for _, _, events in steps.values()) == 2  # the job's, under one step each
    assert [n for n in notes.notes if n.startswith("predict")] == [
        f"predict: {m} (scenes) on 3 test sets ({', '.join(SETS)})"
        for m in ("classical", "gatedconv")
    ]

    # set by set: each rerun adds one set, which is predicted alone
    one_by_one = CountingRunner()
    for n in range(1, len(SETS) + 1):
        run(only(profile, SETS[:n]), tmp_path / "per-set", one_by_one)
    assert [len(names) for _, names in one_by_one.predicts] == [4] * 6
    assert one_by_one.predicts[0] == ("classical", [f"{i:06d}.png" for i in range(4)])

    reference_bytes = predictions(tmp_path / "per-set")
    assert len(reference_bytes) == 2 * len(SETS) * 4
    assert predictions(tmp_path / "batched") == reference_bytes

    # resumed with one set done: the other two in one job, the done one not redone
    resumed = CountingRunner()
    run(only(profile, SETS[:1]), tmp_path / "resumed", resumed)
    before = predict_steps(tmp_path / "resumed")
    run(profile, tmp_path / "resumed", resumed)
    rest = sorted(f"{t}--{i:06d}.png" for t in SETS[1:] for i in range(4))
    assert [names for _, names in resumed.predicts[2:]] == [rest, rest]
    after = predict_steps(tmp_path / "resumed")
    for label, (attempt, started, _) in before.items():
        assert after[label][:2] == (attempt, started), f"{label} was redone"
    assert predictions(tmp_path / "resumed") == reference_bytes


class Killed(BaseException):
    """Stands for a kill -9: nothing after it runs, and no handler catches it."""


@pytest.mark.slow
def test_killed_between_sets_keeps_the_done_ones_and_redoes_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = three_sets(tmp_path, ["classical"])
    run(profile, tmp_path / "whole")
    keep = predicting._keep
    kept: list[str] = []

    def keep_then_die(pipeline, todo, predicted, masks, shared):  # type: ignore[no-untyped-def]
        result = keep(pipeline, todo, predicted, masks, shared)
        kept.append(todo.test_set)
        if len(kept) == 2:  # its folder is in place, its step not yet done
            raise Killed
        return result

    monkeypatch.setattr(predicting, "_keep", keep_then_die)
    with pytest.raises(Killed):
        run(profile, tmp_path / "run")
    monkeypatch.undo()
    with Ledger.in_run_dir(tmp_path / "run") as ledger:
        status = {s.label.rsplit(" on ", 1)[1]: s.status for s in ledger.steps("predict")}
    assert status == dict(zip(SETS, ("done", "running", "running"), strict=True))
    before = predict_steps(tmp_path / "run")

    runner = CountingRunner()
    run(profile, tmp_path / "run", runner)
    rest = sorted(f"{t}--{i:06d}.png" for t in SETS[1:] for i in range(4))
    assert runner.predicts == [("classical", rest)]
    after = predict_steps(tmp_path / "run")
    (label,) = before
    assert after[label][:2] == before[label][:2]
    assert predictions(tmp_path / "run") == predictions(tmp_path / "whole")


def write_set(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(name.encode())
    return folder


def test_combine_links_and_split_restores_the_names(tmp_path: Path) -> None:
    sets = {t: write_set(tmp_path / "in" / t, ["000000.png", "000001.png"]) for t in ("a", "b")}
    masks = write_set(tmp_path / "masks", ["000000.png", "000001.png"])
    combined = predict_batch.combine(sets, masks, tmp_path / "work")
    assert sorted(p.name for p in combined.inputs.iterdir()) == [
        "a--000000.png",
        "a--000001.png",
        "b--000000.png",
        "b--000001.png",
    ]
    assert os.path.samefile(combined.inputs / "b--000001.png", sets["b"] / "000001.png")
    assert os.path.samefile(combined.masks / "b--000001.png", masks / "000001.png")

    outputs = write_set(tmp_path / "out", [*combined.names, "notes.txt"])
    folders = predict_batch.split(outputs, combined, tmp_path / "sets")
    for test_set in ("a", "b"):
        assert sorted(p.name for p in folders[test_set].iterdir()) == ["000000.png", "000001.png"]
        assert (folders[test_set] / "000001.png").read_bytes() == f"{test_set}--000001.png".encode()
    assert predict_batch.leftovers(outputs, combined) == [outputs / "notes.txt"]


def test_combine_copies_where_no_link_can_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cross_device(source: Path, target: Path) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(predict_batch.os, "link", cross_device)
    sets = {t: write_set(tmp_path / "in" / t, ["000000.png"]) for t in ("a", "b")}
    masks = write_set(tmp_path / "masks", ["000000.png"])
    combined = predict_batch.combine(sets, masks, tmp_path / "work")
    copy = combined.inputs / "a--000000.png"
    assert copy.read_bytes() == b"000000.png"
    assert not os.path.samefile(copy, sets["a"] / "000000.png")


def test_one_set_is_predicted_from_its_own_folders(tmp_path: Path) -> None:
    sets = {"a": write_set(tmp_path / "in" / "a", ["000000.png"])}
    masks = write_set(tmp_path / "masks", ["000000.png"])
    combined = predict_batch.combine(sets, masks, tmp_path / "work")
    assert (combined.inputs, combined.masks) == (sets["a"], masks)
    assert not (tmp_path / "work").exists()
    assert predict_batch.split(tmp_path / "out", combined, tmp_path / "sets") == {
        "a": tmp_path / "out"
    }


def test_combined_names_that_collide_are_refused(tmp_path: Path) -> None:
    sets = {
        "a": write_set(tmp_path / "in" / "a", ["b--x.png"]),
        "a--b": write_set(tmp_path / "in" / "a--b", ["x.png"]),
    }
    masks = write_set(tmp_path / "masks", ["x.png", "b--x.png"])
    with pytest.raises(
        ConfigError, match=re.escape("its combined name a--b--x.png is also a/b--x.png")
    ):
        predict_batch.combine(sets, masks, tmp_path / "work")


def test_a_rerun_reuses_the_combined_folders_a_job_may_still_read(tmp_path: Path) -> None:
    """--executor slurm: the rerun adopts a predict job still reading its combined inputs, so
    the rerun's combine must leave them in place, not rebuild them."""
    sets = {t: write_set(tmp_path / "in" / t, ["000000.png"]) for t in ("a", "b")}
    masks = write_set(tmp_path / "masks", ["000000.png"])
    first = predict_batch.combine(sets, masks, tmp_path / "combined")
    reading = os.open(first.inputs / "a--000000.png", os.O_RDONLY)
    try:
        before = os.stat(first.inputs).st_ino
        again = predict_batch.combine(sets, masks, tmp_path / "combined")
        assert again == first
        assert os.stat(again.inputs).st_ino == before
        assert os.path.samefile(again.inputs / "a--000000.png", f"/proc/self/fd/{reading}")
    finally:
        os.close(reading)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".combined")] == []
