"""`inpaint-bench run`: for each model × training source × training seed, train under the
budget, then predict every test set from the final checkpoint and from each snapshot kept on the
way (harness/checkpoints.py), one predict job per checkpoint for all its test sets; after every
model, score each test set's predictions in one metrics job. Each model's describe and each lane
(one model × source × seed: train, then predict every test set) is a task for the slot executor:
one at a time on one slot, side by side on several (`--gpus`, `--slots`), one job per slot. Each
step is recorded in the run's ledger under a content key, so a rerun skips what is done and a
crash loses nothing that completed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from harness import __version__, describing, predicting, report_step, scoring
from harness.checkpoints import (
    Checkpoint,
    final_trained_s,
    kept_snapshots,
    seconds_text,
    to_predict,
)
from harness.config import ModelEntry, Profile
from harness.data.atomic import atomic_write_text
from harness.data.layout import DataLayout
from harness.data.manifest import data_identity
from harness.errors import DataError, HarnessError
from harness.executors.slots import Slot, SlotExecutor
from harness.images import ImageFolder
from harness.jobs import spec_of, train_job, write_job
from harness.ledger import Ledger, content_key
from harness.predictions import make_masked_inputs
from harness.progress import Reporter, job_display
from harness.runners.base import Launch, Limits, Mounts, Outcome, Process, Runner
from harness.steps import RunSummary, StepResult
from harness.supervisor import supervise

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Lane:
    """One slot's unit of work: `model` trained on `source` with `seed`, then predicting every
    test set."""

    model: ModelEntry
    folder: ImageFolder
    source: str
    seed: int


class Pipeline:
    def __init__(
        self,
        profile: Profile,
        run_dir: Path,
        runner: Runner,
        reporter: Reporter,
        gpu: int | None = None,
        max_steps: int | None = None,
        image_base: Path | None = None,
        score: bool = True,
        weights_dir: Path | None = None,
        slots: list[Slot] | None = None,
    ) -> None:
        self.profile = profile
        self.run_dir = Path(run_dir).resolve()
        self.runner = runner
        self.reporter = reporter
        # Several slots: one job per slot at a time; the first slot's GPU is the run's own.
        self.slots = slots or [Slot(0, gpu)]
        self.gpu = self.slots[0].gpu
        self.device = "cpu" if self.gpu is None else "cuda"
        self.max_steps = max_steps
        self.image_base = image_base
        self.score = score
        self.weights_dir = weights_dir
        self.layout = DataLayout(profile.data_root)
        self.run_id = hashlib.sha256(str(self.run_dir.resolve()).encode()).hexdigest()[:12]
        self._pending: list[scoring.PendingScore] = []
        self._executor = SlotExecutor(self.slots[:1])

    # --- the run, top to bottom ---------------------------------------------------------------

    def run(self) -> RunSummary:
        summary = RunSummary(self.run_dir, self.profile.name, self.runner.name)
        if not self.layout.manifest.is_file():
            raise DataError(
                f"{self.layout.manifest}: no data manifest",
                "build the data with `inpaint-bench data sample` or `data prepare`",
            )
        data_id = data_identity(self.profile.data_root)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_run_info(data_id)
        leftovers = getattr(self.runner, "remove_leftovers", None)
        if leftovers is not None and leftovers(self.run_id):
            self.reporter.note("removed containers an interrupted run left behind")
        self._executor = SlotExecutor(self.slots)
        with Ledger.in_run_dir(self.run_dir) as ledger:
            inputs = {
                t: self._masked_inputs(ledger, summary, t, data_id) for t in self.profile.test_sets
            }
            for model in self.profile.models:
                folder = self._folder(model)
                if folder is None:
                    summary.steps.append(
                        StepResult("resolve", model.name, "", "failed", self._folder_error)
                    )
                    continue
                missing = self._unavailable(model, folder)
                if missing:
                    summary.steps.append(StepResult("resolve", model.name, "", "skipped", missing))
                    self._record_skip(model.name, missing)
                    self.reporter.note(f"skipping: {missing}")
                    continue
                self._executor.submit(
                    functools.partial(describing.describe, self, ledger, summary, model, folder)
                )
                for source in self.profile.sources:
                    for seed in self.profile.training_seeds:
                        lane = Lane(model, folder, source, seed)
                        self._executor.submit(
                            functools.partial(self._lane, ledger, summary, lane, data_id, inputs)
                        )
            self._executor.join()
            if self.score:  # after every model: one metrics job per test set scores them all
                self._pending.sort(key=self._lane_order)  # lanes end in any order
                # --executor slurm: the report job, chained on the last score job
                chain = report_step.ReportChain(self)
                try:
                    scoring.score_all(self, ledger, summary, self._pending, chain.started)
                    report_step.report_step(self, ledger, summary, chain)
                finally:
                    chain.drop()  # Ctrl-C, or not needed: a report never waits for nothing
        return summary

    def _checkpoints(self, model: ModelEntry, seed: int, train: StepResult) -> list[Checkpoint]:
        kept = (train.result or {}).get("snapshots", {}) if train.status != "failed" else {}
        asked = self.profile.snapshots_for(model)
        found, missing = to_predict(self.profile.seed, seed, asked, kept)
        if missing and kept:
            self.reporter.note(f"  no snapshot kept at {', '.join(missing)}")
        return found

    def _lane(
        self,
        ledger: Ledger,
        summary: RunSummary,
        lane: Lane,
        data_id: str,
        inputs: dict[str, Path],
    ) -> None:
        """One unit of work for a slot: train the model on the source with the lane's seed, then
        predict every test set from each checkpoint kept."""
        model, folder, source, seed = lane.model, lane.folder, lane.source, lane.seed
        train = self._train(ledger, summary, model, folder, source, data_id, seed)
        sets = {t: inputs[t] for t in self.profile.test_sets}
        for checkpoint in self._checkpoints(model, seed, train):
            # one predict job per checkpoint for all the sets not done yet (harness/predicting.py)
            steps = predicting.predict_sets(
                self, ledger, summary, model, folder, source, train, sets, checkpoint
            )
            if self.score:
                self._pending.extend(
                    scoring.PendingScore(model, source, test_set, step, checkpoint)
                    for test_set, step in steps.items()
                )

    def _lane_order(self, item: scoring.PendingScore) -> tuple[Any, ...]:
        """Where a prediction stands in a one-slot run: models, sources, seeds, checkpoints and
        test sets in the profile's order (the score job's events go to its first model's step)."""
        names = [m.name for m in self.profile.models]
        seeds = list(self.profile.training_seeds)
        checkpoint = item.checkpoint
        return (
            names.index(item.model.name),
            list(self.profile.sources).index(item.source),
            seeds.index(checkpoint.seed) if checkpoint.seed in seeds else len(seeds),
            checkpoint.snapshot_s is not None,
            checkpoint.snapshot_s or 0.0,
            list(self.profile.test_sets).index(item.test_set),
        )

    def _folder(self, model: ModelEntry) -> ImageFolder | None:
        try:
            kwargs = {"base": self.image_base} if self.image_base else {}
            return ImageFolder.at(model.image, **kwargs)
        except HarnessError as error:
            self._folder_error = str(error)
            return None

    def _unavailable(self, model: ModelEntry, folder: ImageFolder) -> str | None:
        """Why this runner cannot run the model at all here (e.g. no upstream source offline)."""
        check = getattr(self.runner, "unavailable", None)
        return check(model.name, folder) if check is not None else None

    def provenance(self, folder: Path) -> dict[str, str]:
        """What ran for an image folder: its Docker image ID and the base image (name and ID)
        it was built FROM, where the runner built one ({} for the local runner)."""
        lookup = getattr(self.runner, "provenance", None)
        return lookup(str(folder)) if lookup is not None else {}

    def _record_skip(self, model: str, reason: str) -> None:
        """Keep why a model was skipped in run.json, where the report finds it."""
        path = self.run_dir / "run.json"
        info = json.loads(path.read_text())
        info.setdefault("skipped", {})[model] = reason
        atomic_write_text(path, json.dumps(info, indent=1) + "\n")

    def _write_run_info(self, data_id: str) -> None:
        info = {
            "harness_version": __version__,
            "profile": self.profile.name,
            "runner": self.runner.name,
            "device": self.device,
            "gpu": self.gpu,
            "seed": self.profile.seed,
            "seeds": list(self.profile.training_seeds),
            "snapshots_s": list(self.profile.snapshots_s),
            "data_root": str(self.profile.data_root),
            "data_identity": data_id,
            "image_size": self.profile.image_size,
            "models": [m.name for m in self.profile.models],
            "images": self._images_info(),
        }
        atomic_write_text(self.run_dir / "run.json", json.dumps(info, indent=1) + "\n")

    def _images_info(self) -> dict[str, dict[str, str]]:
        """Per model (and the metrics image): the image folder's hash and, under docker, the
        image ID and base image that ran."""
        images = {}
        for model in self.profile.models:
            folder = self._folder(model)
            if folder is not None:
                images[model.name] = {"folder_hash": folder.digest, **self.provenance(folder.path)}
        if self.score:
            metrics = {"folder_hash": "sha256:" + scoring.metrics_digest()}
            images["metrics"] = {**metrics, **self.provenance(scoring.METRICS_FOLDER)}
        return images

    # --- one ledger step ------------------------------------------------------------------------

    def step(
        self,
        ledger: Ledger,
        summary: RunSummary,
        kind: str,
        label: str,
        key_parts: dict[str, Any],
        body: Callable[[str, int], dict[str, Any]],
    ) -> StepResult:
        key = content_key(kind, key_parts)
        done = ledger.get(key)
        if done is not None and done.status == "done":
            result = StepResult(kind, label, key, "cached", done.reason or "", done.result or {})
            summary.steps.append(result)
            return result
        attempt = ledger.begin(key, kind, label, key_parts)
        self.reporter.note(f"{kind}: {label}")
        try:
            outcome = body(key, attempt)
        except HarnessError as error:
            ledger.finish(key, "failed", reason=str(error))
            result = StepResult(kind, label, key, "failed", str(error))
        except Exception as error:  # contained: the run goes on with the next job
            log.debug("step %s failed:\n%s", label, traceback.format_exc())
            reason = f"harness error: {type(error).__name__}: {error}"
            ledger.finish(key, "failed", reason=reason)
            result = StepResult(kind, label, key, "failed", reason)
        else:
            status: Literal["done", "failed"] = "failed" if outcome.get("failed") else "done"
            ledger.finish(key, status, result=outcome, reason=outcome.get("reason"))
            result = StepResult(kind, label, key, status, outcome.get("reason", ""), outcome)
        summary.steps.append(result)
        if result.status == "failed":
            self.reporter.note(f"  failed: {result.reason}")
        return result

    def launch(
        self,
        ledger: Ledger,
        key: str,
        attempt: int,
        launch: Launch,
        label: str,
        started: Callable[[Process], None] | None = None,
    ) -> Outcome:
        def on_event(line_no: int, event: dict[str, Any]) -> None:
            ledger.add_event(key, attempt, line_no, event)
            display.update(event)

        def on_violation(line_no: int, message: str) -> None:
            ledger.add_violation(key, attempt, line_no, message)

        slot = self._executor.current_slot()
        launch = slot.pin(dataclasses.replace(launch, key=key, run_id=self.run_id))
        if len(self.slots) > 1:
            label = f"[{slot.label}] {label}"
        with (
            self._executor.job(lambda: self.runner.start(launch)) as process,
            job_display(self.reporter, label, launch.limits.budget_s) as display,
        ):
            job_id = getattr(process, "job_id", None)  # a Slurm job (--executor slurm)
            if job_id is not None:
                ledger.add_external_job(key, attempt, job_id, getattr(process, "adopted", False))
            if started is not None:
                started(process)
            outcome = supervise(process, launch, on_event, on_violation)
            node_error = getattr(process, "node_error", lambda: None)()
            if node_error:  # a Slurm node could not start it: say why, not just "exited 1"
                outcome.status, outcome.reason = "failed", node_error
        return outcome

    # --- steps ----------------------------------------------------------------------------------

    def _masked_inputs(
        self, ledger: Ledger, summary: RunSummary, test_set: str, data_id: str
    ) -> Path:
        out = self.run_dir / "inputs" / test_set

        def body(key: str, attempt: int) -> dict[str, Any]:
            names = make_masked_inputs(
                self.layout.test_dir(test_set), self.layout.mask_dir("test"), out, self.reporter
            )
            return {"images": len(names), "path": str(out)}

        step = self.step(
            ledger, summary, "inputs", test_set, {"data": data_id, "set": test_set}, body
        )
        if step.status == "cached" and not out.is_dir():
            # The folder went missing after it was recorded: make it again.
            body(step.key, 0)
        return out

    def limits(self, budget_s: float, cap_setting: str = "") -> Limits:
        rt = self.profile.runtime
        return Limits(
            setup_cap_s=rt.setup_cap_s,
            budget_s=budget_s,
            grace_s=rt.grace_s,
            memory_bytes=rt.memory_bytes,
            cap_setting=cap_setting,
        )

    def _train(
        self,
        ledger: Ledger,
        summary: RunSummary,
        model: ModelEntry,
        folder: ImageFolder,
        source: str,
        data_id: str,
        seed: int,
    ) -> StepResult:
        doc = train_job("", self.profile, model, self.device, folder.manifest, self.max_steps, seed)
        # The seed is in the key through the job's `seed`; a one-seed profile's keys are those
        # of a run before seeds existed.
        parts = {
            "model": model.name,
            "image": folder.digest,
            "data": data_id,
            "source": source,
            "job": spec_of(doc),
        }
        run = Checkpoint(seed, None, self.profile.seed)
        label = f"{model.name} on {run.label(source)}"

        def body(key: str, attempt: int) -> dict[str, Any]:
            checkpoints = self.run_dir / "checkpoints" / source / f"{model.name}-{key[:12]}"
            job = write_job(
                self.run_dir / "jobs" / key[:16] / "job.json", {**doc, "job_id": key[:16]}
            )
            mounts = Mounts(
                {
                    "images": self.layout.root / "sources" / source,
                    "masks/train": self.layout.mask_dir("train"),
                    "masks/val": self.layout.mask_dir("val"),
                },
                job,
                checkpoints,
                self.run_dir / "work" / key[:16],
            )
            launch = Launch(
                model.name,
                str(folder.path),
                "train",
                mounts,
                self.limits(model.train_budget_s),
                self.run_dir / "logs" / f"train-{model.name}-{source}{run.tag}.log",
                self.gpu,
            )
            outcome = self.launch(ledger, key, attempt, launch, f"train {label}")
            # every attempt's events: a resumed run keeps the snapshots of the ones before
            events = [e for a in range(1, attempt + 1) for e in ledger.events(key, a)]
            result = {
                "status": outcome.status,
                "reason": outcome.reason,
                "steps": outcome.steps,
                "images_seen": outcome.images_seen,
                "setup_s": round(outcome.setup_s, 3),
                "train_s": round(outcome.run_s, 3),
                "wall_s": round(outcome.wall_s, 3),
                "signals": outcome.signals_sent,
                "violations": len(outcome.violations),
                "checkpoints": str(checkpoints),
                "folder_hash": folder.digest,
                **self.provenance(folder.path),
                "budget_s": model.train_budget_s,
                "seed": seed,
                "trained_s": round(final_trained_s(events, outcome.run_s), 3),
                "snapshots": {seconds_text(s): k for s, k in kept_snapshots(events).items()},
            }
            if not outcome.ok:
                result["failed"] = True
            return result

        return self.step(ledger, summary, "train", label, parts, body)
