"""Everything a report reads from a run folder, loaded once and never written back.

The ledger is opened read-only (`?mode=ro`), so a report can run beside `inpaint-bench run` and
can never change a run. Steps are joined through their specs, the same keys the pipeline uses:
a score step names its predict step, a predict step its train step, a train step its source.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import DataError
from harness.images import REPO
from harness.ledger import LEDGER_NAME, Ledger, Step

SCORE_COLUMNS = [
    "source",
    "model",
    "test_set",
    "image",
    "variant",
    "hole_fraction",
    "bin",
    "metric",
    "value",
]
# Which training run and checkpoint a score row belongs to: the training seed, and the training
# seconds of the snapshot it was predicted from (NaN: the final checkpoint). The main tables read
# the final checkpoint; every seed of a cell counts.
RUN_COLUMNS = ["seed", "snapshot_s"]


@dataclass(frozen=True)
class Where:
    """Which model, training source and test set a step belongs to ("" where not applicable);
    also its training seed and snapshot (None: not known, or the final checkpoint), which
    equality ignores: a Where names a table cell, and every seed and snapshot is in it."""

    model: str
    source: str = ""
    test_set: str = ""
    seed: int | None = field(default=None, compare=False)
    snapshot_s: float | None = field(default=None, compare=False)


@dataclass
class RunData:
    """A run folder as the report sees it."""

    run_dir: Path
    info: dict[str, Any]  # run.json; {} when the run predates it
    steps: list[Step]  # every ledger step, in start order
    scores: pd.DataFrame  # per-image rows (SCORE_COLUMNS + RUN_COLUMNS); value NaN = missing
    progress: dict[str, list[dict[str, Any]]]  # train step key → its progress events
    warnings: dict[str, list[str]] = field(default_factory=dict)  # step key → warning events
    images_root: Path = REPO / "images"
    _by_key: dict[str, Step] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_key = {s.key: s for s in self.steps}

    @property
    def seed(self) -> int:
        return int(self.info.get("seed") or 0)

    def where(self, step: Step) -> Where:
        """Find the model, source and test set of a step, following its spec's links."""
        spec = step.spec
        model = str(spec.get("model", step.label))
        job = spec.get("job")
        job = job if isinstance(job, dict) else {}
        if step.kind == "train":
            seed = job.get("seed")
            return Where(model, str(spec.get("source", "")), seed=_int_or_none(seed))
        if step.kind == "predict":
            train = self._by_key.get(str(spec.get("train", "")))
            trained = self.where(train) if train else Where(model)
            snapshot = job.get("snapshot_s")
            return Where(
                model,
                trained.source,
                str(spec.get("set", "")),
                trained.seed,
                float(snapshot) if isinstance(snapshot, int | float) else None,
            )
        if step.kind == "score":
            predict = self._by_key.get(str(spec.get("predict", "")))
            return self.where(predict) if predict else Where(model)
        return Where(model)

    def of_kind(self, kind: str) -> list[Step]:
        return [s for s in self.steps if s.kind == kind]

    def step_for(self, kind: str, where: Where) -> Step | None:
        """Find the latest step of `kind` for exactly this model/source/test set, preferring the
        run's own seed at the final checkpoint where there are several seeds or snapshots."""
        found = [(s, self.where(s)) for s in self.of_kind(kind)]
        found = [(s, w) for s, w in found if w == where]
        plain = [s for s, w in found if w.snapshot_s is None and w.seed in (None, self.seed)]
        steps = plain or [s for s, _ in found]
        return steps[-1] if steps else None

    def score_metadata(self, where: Where) -> dict[str, Any]:
        """Return the metrics image's sidecar for one model/source/test set ({} if none)."""
        step = self.step_for("score", where)
        if step is None or step.result is None:
            return {}
        meta = step.result.get("metadata")
        return meta if isinstance(meta, dict) else {}

    def sidecar_directions(self) -> dict[str, bool]:
        """Collect `higher_is_better` as the score sidecars state it, for metrics the registry
        lacks."""
        merged: dict[str, bool] = {}
        for step in self.of_kind("score"):
            meta = (step.result or {}).get("metadata") or {}
            merged.update(meta.get("higher_is_better") or {})
        return merged

    # Orders follow the run (benchmark.yaml), not the alphabet, so tables read like the config.
    @property
    def models(self) -> list[str]:
        listed = [str(m) for m in self.info.get("models", [])]
        seen = [self.where(s).model for s in self.steps if s.kind in ("describe", "train")]
        return _unique([*listed, *seen, *self.scores["model"]])

    @property
    def sources(self) -> list[str]:
        return _unique(
            [*(self.where(s).source for s in self.of_kind("train")), *self.scores["source"]]
        )

    @property
    def test_sets(self) -> list[str]:
        return _unique([*(s.label for s in self.of_kind("inputs")), *self.scores["test_set"]])

    @property
    def data_root(self) -> Path | None:
        """Find the data tree the run used, if it is here. run.json may hold it relative to where
        `inpaint-bench run` started: try there, the checkout, and the run folder's parents."""
        raw = self.info.get("data_root")
        if not raw:
            return None
        path = Path(raw)
        bases = [Path.cwd(), REPO, self.run_dir.parent, self.run_dir.parent.parent]
        candidates = [path] if path.is_absolute() else [base / path for base in bases]
        return next((c for c in candidates if c.is_dir()), None)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _unique(items: Iterable[str]) -> list[str]:
    return [i for i in dict.fromkeys(items) if i]


def _read_only_ledger(path: Path) -> Ledger:
    # Ledger() opens read-write and migrates; a report must never change a run.
    return Ledger.read_only(path)


def _run_info(path: Path) -> dict[str, Any]:
    """run.json as `inpaint-bench run` wrote it ({} where there is none)."""
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        info = error
    if not isinstance(info, dict):
        reason = f"not JSON ({info})" if isinstance(info, Exception) else "not a JSON object"
        raise DataError(
            f"{path}: damaged run.json: {reason}",
            f"restore it, or rerun `inpaint-bench run --run-dir {path.parent}`, which writes it "
            "again and skips the steps already done",
        )
    return info


def load_run(run_dir: Path, images_root: Path | None = None) -> RunData:
    """Read run.json, the ledger's steps, scores and training progress of `run_dir`.

    Raises DataError naming the ledger when `run_dir` holds none.
    """
    run_dir = Path(run_dir).resolve()
    path = run_dir / LEDGER_NAME
    if not path.is_file():
        raise DataError(
            f"{path}: no ledger, so there is nothing to report",
            f"run `inpaint-bench run --run-dir {run_dir}` first",
        )
    info = _run_info(run_dir / "run.json")
    ledger = _read_only_ledger(path)
    try:
        # The report's own step (a Slurm job, harness/report_step.py) is not one of the run's.
        steps = [s for s in ledger.steps() if s.kind != "report"]
        has_scores = "0002_scores" in ledger.migrations()
        rows = ledger.score_rows() if has_scores else []
        progress = {
            s.key: [
                event
                for attempt in range(1, s.attempt + 1)
                for event in ledger.events(s.key, attempt)
                if event.get("event") == "progress"
            ]
            for s in steps
            if s.kind == "train"
        }
        warnings = {
            s.key: [
                str(e.get("message")) for e in ledger.events(s.key) if e.get("event") == "warning"
            ]
            for s in steps
        }
    finally:
        ledger.close()
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS + RUN_COLUMNS)
    # Rows scored before the ledger kept seeds (0003_score_runs): the run's seed, final checkpoint.
    seeds = pd.to_numeric(scores["seed"], errors="coerce")
    scores["seed"] = seeds.fillna(int(info.get("seed") or 0)).astype(int)
    scores["snapshot_s"] = pd.to_numeric(scores["snapshot_s"], errors="coerce").astype(float)
    scores["value"] = pd.to_numeric(scores["value"], errors="coerce").astype(float)
    scores["hole_fraction"] = pd.to_numeric(scores["hole_fraction"], errors="coerce")
    return RunData(
        run_dir,
        info,
        steps,
        scores,
        progress,
        warnings=warnings,
        images_root=images_root or REPO / "images",
    )
