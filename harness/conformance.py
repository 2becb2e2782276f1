"""`inpaint-bench validate`: the conformance suite a model image passes before it is listed.

Runs the image's real commands on a tiny generated set at its smallest legal size, with the
same runner (and so the same sandbox) as a benchmark run, and reports a pass/fail table.
The checks of training, prediction and snapshots are in `harness.conformance_train`,
`harness.conformance_predict` and `harness.conformance_snapshots`; the table in
`harness.conformance_report`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.conformance_data import smallest_legal, tiny_data
from harness.conformance_predict import check_predict
from harness.conformance_report import Report
from harness.conformance_snapshots import check_snapshots
from harness.conformance_train import check_sigterm_and_resume, check_train
from harness.contract import CONTRACT_VERSION, validate_describe, validate_manifest
from harness.contract_rules import describe_problems, stream_problems
from harness.errors import HarnessError
from harness.images import ImageFolder
from harness.jobs import write_job
from harness.predictions import make_masked_inputs
from harness.progress import Reporter, SilentReporter
from harness.runners.base import Launch, Limits, Mounts, Outcome, Runner
from harness.supervisor import supervise

GRACE_S = 30.0


class Conformance:
    """The suite for one image: runs its jobs through `runner` under `work` and fills `report`."""

    def __init__(
        self,
        target: str,
        runner: Runner,
        work: Path,
        reporter: Reporter | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self.target = target
        self.runner = runner
        self.work = Path(work)
        self.reporter = reporter or SilentReporter(quiet=True)
        self.manifest = manifest
        self.report = Report(target)
        self.streams: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = []

    # --- running one job ------------------------------------------------------------------

    def job(self, command: str, **fields: Any) -> dict[str, Any]:
        assert self.manifest is not None
        size, batch = self.size, self.batch
        doc: dict[str, Any] = {
            "contract_version": CONTRACT_VERSION,
            "command": command,
            "job_id": f"validate-{command}",
            "seed": 0,
            "device": "cpu",
            "image_size": size,
            "batch_size": batch,
            "hyperparameters": self.manifest["defaults"]["hyperparameters"],
        }
        return {**doc, **fields}

    def launch(
        self,
        name: str,
        command: str,
        doc: dict[str, Any],
        data: dict[str, Path],
        checkpoints: Path,
        outputs: Path,
        budget_s: float = 120.0,
        on_event: Callable[[Any, dict[str, Any]], None] | None = None,
        uid_gid: tuple[int, int] | None = None,
    ) -> Outcome:
        job = write_job(self.work / "jobs" / name / "job.json", doc)
        launch = Launch(
            self.manifest["name"] if self.manifest else "model",
            self.target,
            command,  # type: ignore[arg-type]
            Mounts(data, job, checkpoints, outputs),
            Limits(setup_cap_s=600.0, budget_s=budget_s, grace_s=GRACE_S),
            self.work / "logs" / f"{name}.log",
            uid_gid=uid_gid,
            key=name,
            run_id="validate",
        )
        process = self.runner.start(launch)
        try:
            if on_event is None:
                outcome = supervise(process, launch)
            else:
                outcome = supervise(process, launch, lambda n, e: on_event(process, e))
        finally:
            process.cleanup()
        self.streams.append((name, doc, outcome.events))
        return outcome

    # --- the suite ------------------------------------------------------------------------

    def run(self) -> Report:
        if not self.check_manifest():
            return self.report
        self.size, self.batch = smallest_legal(self.manifest)  # type: ignore[arg-type]
        data = tiny_data(self.work / "data", self.size)
        self.inputs = self.work / "inputs"
        make_masked_inputs(data["test"], data["masks_test"], self.inputs, self.reporter)
        self.train_data = {"images": data["train"].parent, "masks/train": data["masks_train"]}
        self.check_unsupported()
        self.check_describe()
        checkpoints = check_train(self)
        if checkpoints is not None:
            check_sigterm_and_resume(self)
            check_predict(self, checkpoints, data)
            check_snapshots(self, data)
        self.check_streams()
        return self.report

    def check_manifest(self) -> bool:
        try:
            if self.manifest is None:
                self.manifest = ImageFolder.at(self.target).manifest
            validate_manifest(self.manifest, f"{self.target} manifest")
        except HarnessError as error:
            return self.report.add("manifest present and valid", False, error.message)
        return self.report.add("manifest present and valid", True, self.manifest["name"])

    def check_describe(self) -> None:
        out = self.work / "describe"
        doc = self.job("describe", measure_latency=False, latency_runs=1)
        outcome = self.launch("describe", "describe", doc, {}, self.work / "ck-describe", out)
        found = out / "describe.json"
        if not outcome.ok or not found.is_file():
            detail = outcome.reason if not outcome.ok else "no outputs/describe.json"
            self.report.add("describe answers and validates", False, detail)
            return
        try:
            described = validate_describe(json.loads(found.read_text()), str(found))
        except (HarnessError, ValueError) as error:
            self.report.add("describe answers and validates", False, str(error)[:300])
            return
        self.report.add("describe answers and validates", True)
        assert self.manifest is not None
        problems = describe_problems(described, doc, self.manifest["name"])
        self.report.add("describe says what the contract says", not problems, "; ".join(problems))

    def train_doc(self, max_steps: int | None, budget_s: float, resume: bool) -> dict[str, Any]:
        return self.job(
            "train",
            budget_s=budget_s,
            max_steps=max_steps,
            progress_every_s=0.5,
            checkpoint_every_s=600,
            resume=resume,
            data={
                "train_images": "images/train",
                "train_masks": "masks/train",
                "val_images": None,
                "val_masks": None,
            },
        )

    def check_unsupported(self) -> None:
        """A command the manifest does not list exits 3 (contracts/README.md)."""
        assert self.manifest is not None
        name = "a command not in the manifest exits 3"
        missing = [
            c for c in ("train", "predict", "describe") if c not in self.manifest["commands"]
        ]
        if not missing:
            self.report.skip(name, "the manifest lists all three")
            return
        docs = {
            "train": self.train_doc(1, 10.0, False),
            "predict": self.job("predict", data={"inputs": "inputs", "masks": "masks"}),
            "describe": self.job("describe"),
        }
        command = missing[0]
        outcome = self.launch(
            "unsupported", command, docs[command], {}, self.work / "ck-x", self.work / "out-x"
        )
        self.report.add(name, outcome.exit_code == 3, f"{command}: exit {outcome.exit_code}")

    def check_streams(self) -> None:
        assert self.manifest is not None
        trains = bool(self.manifest.get("trains", True))
        problems = [
            f"{name}: {problem}"
            for name, doc, events in self.streams
            for problem in stream_problems(events, doc, trains)
        ]
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        self.report.add(
            "events in the contract's order, agreeing with the job",
            not problems,
            "; ".join(problems[:3]) + more,
        )
