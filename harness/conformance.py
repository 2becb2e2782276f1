"""`inpaint-bench validate`: the conformance suite a model image passes before it is listed.

Runs the image's real commands on a tiny generated set at its smallest legal size, with the
same runner (and so the same sandbox) as a benchmark run, and reports a pass/fail table.
"""

from __future__ import annotations

import json
import shutil
import signal
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.conformance_snapshots import check_snapshots
from harness.contract import CONTRACT_VERSION, validate_describe, validate_manifest
from harness.contract_rules import describe_problems, stream_problems
from harness.data.layout import file_name
from harness.data.masks import write_masks
from harness.data.pngs import read_mask, read_rgb, write_png
from harness.errors import HarnessError
from harness.images import ImageFolder
from harness.jobs import write_job
from harness.predictions import check_predictions, make_masked_inputs
from harness.progress import Reporter, SilentReporter
from harness.runners.base import Launch, Limits, Mounts, Outcome, Runner
from harness.supervisor import supervise

GRACE_S = 30.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass | fail | flag | skip
    detail: str = ""


@dataclass
class Report:
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


def smallest_legal(manifest: dict[str, Any]) -> tuple[int, int]:
    """The smallest image size and batch the manifest's input rules allow (size ≥ 32)."""
    rules = manifest["input"]
    size = max(32, rules["min_size"])
    while size % rules["size_multiple"] or (rules["power_of_two"] and size & (size - 1)):
        size += 1
    batch = rules["batch"]
    small_batch = 1 if batch["max_any"] is not None or batch["multiple_of"] == 1 else 0
    return size, small_batch or batch["multiple_of"]


def tiny_data(root: Path, size: int, seed: int = 0) -> dict[str, Path]:
    """Smooth random images (6 train, 4 test) and masks (255 = hole) at size²."""
    rng = np.random.default_rng(seed)
    out = {
        "train": root / "images" / "train",
        "test": root / "test",
        "masks_train": root / "masks" / "train",
        "masks_test": root / "masks" / "test",
    }
    yy, xx = np.mgrid[0:size, 0:size] / size
    for split, count in (("train", 6), ("test", 4)):
        for i in range(count):
            a, b, c = rng.uniform(0.5, 4.0, 3)
            base = np.stack([np.sin(a * xx * 6 + c), np.cos(b * yy * 6), np.sin((xx + yy) * c * 4)])
            rgb = ((base.transpose(1, 2, 0) + 1) * 127.5).clip(0, 255).astype(np.uint8)
            write_png(out[split] / file_name(i), rgb)
    write_masks(out["masks_train"], 6, size, seed, (0.05, 0.4))
    write_masks(out["masks_test"], 4, size, seed + 1, (0.05, 0.4))
    return out


class Conformance:
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
        checkpoints = self.check_train()
        if checkpoints is not None:
            self.check_sigterm_and_resume()
            self.check_predict(checkpoints, data)
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

    def check_train(self) -> Path | None:
        checkpoints = self.work / "ck-train"
        outcome = self.launch(
            "train",
            "train",
            self.train_doc(3, 60.0, False),
            self.train_data,
            checkpoints,
            self.work / "out-train",
        )
        events_ok = not outcome.violations and outcome.ok
        detail = outcome.reason if not outcome.ok else "; ".join(outcome.violations[:3])
        self.report.add(
            "train emits valid events and stops", events_ok, detail or f"{outcome.steps} step(s)"
        )
        if not events_ok:
            return None
        trains = self.manifest.get("trains", True)  # type: ignore[union-attr]
        saved = [e for e in outcome.events if e["event"] == "checkpoint"]
        has_file = bool(saved) and (checkpoints / saved[-1]["path"]).exists()
        if not self.report.add(
            "train writes a checkpoint",
            has_file,
            "no checkpoint event with a file" if not has_file else "",
        ):
            return None
        if trains and outcome.steps == 0:
            self.report.add("train makes optimiser steps", False, "0 steps, manifest says trains")
        return checkpoints

    def check_sigterm_and_resume(self) -> None:
        if not self.manifest.get("trains", True):  # type: ignore[union-attr]
            self.report.checks.append(
                Check("stops on SIGTERM within grace", "skip", "the model does not train")
            )
            return
        checkpoints = self.work / "ck-sigterm"
        sent: list[float] = []

        def on_event(process: Any, event: dict[str, Any]) -> None:
            if event["event"] == "progress" and not sent:
                sent.append(time.monotonic())
                process.send_signal(signal.SIGTERM)

        outcome = self.launch(
            "sigterm",
            "train",
            self.train_doc(None, 600.0, False),
            self.train_data,
            checkpoints,
            self.work / "out-sigterm",
            on_event=on_event,
        )
        stop = next((e for e in outcome.events if e["event"] == "run_stop"), None)
        ok = bool(sent) and outcome.ok and stop is not None and stop["reason"] == "sigterm"
        self.report.add(
            "stops on SIGTERM within grace, checkpointed",
            ok,
            "" if ok else (outcome.reason if sent else "no progress event to wait on"),
        )
        if not ok:
            return
        steps = outcome.steps
        outcome = self.launch(
            "resume",
            "train",
            self.train_doc(steps + 2, 60.0, True),
            self.train_data,
            checkpoints,
            self.work / "out-resume",
        )
        start = next((e for e in outcome.events if e["event"] == "run_start"), {})
        resumed = outcome.ok and int(start.get("resumed_from_step", 0)) == steps
        self.report.add(
            "resumes from its checkpoint",
            resumed,
            f"resumed_from_step {start.get('resumed_from_step')}, expected {steps}",
        )

    def check_unsupported(self) -> None:
        """A command the manifest does not list exits 3 (contracts/README.md)."""
        assert self.manifest is not None
        name = "a command not in the manifest exits 3"
        missing = [
            c for c in ("train", "predict", "describe") if c not in self.manifest["commands"]
        ]
        if not missing:
            self.report.checks.append(Check(name, "skip", "the manifest lists all three"))
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

    def predict_once(
        self,
        name: str,
        checkpoints: Path,
        data: dict[str, Path],
        uid_gid: tuple[int, int] | None = None,
    ) -> tuple[Outcome, Path]:
        out = self.work / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        out.chmod(out.stat().st_mode | stat.S_IWOTH | stat.S_IXOTH)
        doc = self.job("predict", data={"inputs": "inputs", "masks": "masks"}, output_dir=".")
        outcome = self.launch(
            name,
            "predict",
            doc,
            {"inputs": self.inputs, "masks": data["masks_test"]},
            checkpoints,
            out,
            uid_gid=uid_gid,
        )
        return outcome, out

    def check_predict(self, checkpoints: Path, data: dict[str, Path]) -> None:
        outcome, out = self.predict_once("predict", checkpoints, data)
        if not self.report.add("predict runs", outcome.ok, outcome.reason):
            return
        check = check_predictions(out, self.inputs, data["masks_test"], self.size)
        if not self.report.add(
            "one valid PNG per input, same name and size", check.ok, "; ".join(check.problems[:3])
        ):
            return
        claims = self.manifest.get("composites", True)  # type: ignore[union-attr]
        moved = check.known_pixel_max_abs
        if moved == 0:
            self.report.add("known pixels equal the input exactly", True)
        elif claims:
            self.report.add(
                "known pixels equal the input exactly",
                False,
                f"known pixels moved by up to {moved} although the manifest says composites: true",
            )
        else:
            self.report.add(
                "known pixels equal the input exactly",
                False,
                f"moved by up to {moved}; the harness composites before scoring",
                flag=True,
            )
        filled = hole_change(out, self.inputs, data["masks_test"])
        self.report.add(
            "fills the holes (mask polarity: 255 = hole)",
            filled > 0,
            f"mean |output - masked input| over holes = {filled:.2f}",
        )
        again, out2 = self.predict_once("predict-again", checkpoints, data)
        same = again.ok and all(
            (read_rgb(a) == read_rgb(out2 / a.name)).all() for a in sorted(out.glob("*.png"))
        )
        stochastic = self.manifest.get("stochastic", False)  # type: ignore[union-attr]
        self.report.add(
            "two predicts give identical outputs",
            same or stochastic,
            "manifest declares the model stochastic" if stochastic and not same else "",
        )
        self.check_sandbox(checkpoints, data)

    def check_sandbox(self, checkpoints: Path, data: dict[str, Path]) -> None:
        name = "works with no network, a read-only root and an arbitrary uid"
        if self.runner.name != "docker":
            self.report.checks.append(
                Check(name, "skip", "only the docker runner enforces the sandbox")
            )
            return
        outcome, out = self.predict_once("predict-uid", checkpoints, data, uid_gid=(4242, 4242))
        check = check_predictions(out, self.inputs, data["masks_test"], self.size)
        detail = outcome.reason if not outcome.ok else "; ".join(check.problems[:2])
        self.report.add(name, outcome.ok and check.ok, detail)


def hole_change(outputs: Path, inputs: Path, masks: Path) -> float:
    """Mean |output − masked input| over hole pixels: 0 means the holes were left as given."""
    total, count = 0.0, 0
    for path in sorted(inputs.glob("*.png")):
        hole = read_mask(masks / path.name)
        diff = np.abs(read_rgb(outputs / path.name).astype(float) - read_rgb(path).astype(float))
        total += float(diff[hole].sum())
        count += int(hole.sum()) * 3
    return total / max(count, 1)


def format_report(report: Report) -> str:
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
