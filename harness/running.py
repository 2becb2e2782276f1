"""Glue behind `inpaint-bench run`: pick the profile and runner, make sure the data is there,
then hand over to the pipeline."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.autoprofile import choose_profile
from harness.config import Runtime, load_benchmark
from harness.data.check import check_data
from harness.errors import DataError, HarnessError
from harness.executors.slots import Slot, plan_slots
from harness.pipeline import Pipeline, RunSummary
from harness.progress import Reporter
from harness.runners.base import Runner
from harness.runners.local import LocalRunner

log = logging.getLogger(__name__)


def choose_runner(
    requested: str,
    upstream: dict[str, Path],
    reporter: Reporter,
    runtime: Runtime | None = None,
    base_image: str | None = None,
    images: list[Path] | None = None,
) -> Runner:
    """docker when asked for, or under `auto` when an engine answers and `images` (the image
    folders the run needs, metrics included) build; otherwise local. Says which and why. A
    model image that does not build is skipped by the run with its reason; the run falls back
    (auto) or stops (docker) only when the metrics image or no model image builds."""
    if requested == "local":
        reporter.note("runner: local (asked for with --runner local)")
        return LocalRunner(upstream, reporter)
    try:
        from harness.runners.docker import DockerRunner, engine_problem
        from harness.runners.sandbox import Relaxations
    except ImportError as error:
        if requested == "docker":
            raise HarnessError(
                f"the docker runner is unavailable: {error}", "pip install 'inpaint-bench[docker]'"
            ) from None
        reporter.note(f"runner: local (the docker runner is unavailable: {error})")
        return LocalRunner(upstream, reporter)
    problem = engine_problem()
    if problem is None:
        relax = Relaxations(**dict.fromkeys(runtime.sandbox_relaxations if runtime else (), True))
        runner = DockerRunner(runtime, relax, upstream, reporter, base_image=base_image)
        problem = runner.build_all(images or [])
        if problem is None:
            skipped = len(runner.build_problems)
            but = f"; {skipped} model image(s) do not and are skipped" if skipped else ""
            reporter.note(f"runner: docker (an engine answers and the images build{but})")
            return runner
    if requested == "docker":
        raise HarnessError(f"--runner docker: {problem}", "fix that, or use --runner local")
    reporter.note(f"runner: local ({problem})")
    return LocalRunner(upstream, reporter)


def ensure_data(config_path: Path, profile_name: str, reporter: Reporter) -> None:
    """Build the bundled sample set when it is missing; check any data tree before training."""
    bench = load_benchmark(config_path)
    profile = bench.profile(profile_name)
    if profile_name == "sample" and not profile.data_root.exists():
        from harness.data.sample import build_sample_set

        reporter.note(f"building the sample set in {profile.data_root} (first run)")
        build_sample_set(profile, profile.seed, reporter)
    problems = check_data(profile, reporter)
    if problems:
        lines = [f"{p.path}: {p.message}" if p.path else p.message for p in problems[:10]]
        more = f"\n... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DataError(
            f"{profile.data_root}: the data does not match profile {profile_name!r}:\n"
            + "\n".join(lines)
            + more,
            f"run `inpaint-bench data check --profile {profile_name}` for every problem and hint",
        )


@dataclass(frozen=True)
class RunRequest:
    """Everything `inpaint-bench run` was asked for."""

    config_path: Path
    profile: str
    run_dir: Path | None
    runner: str
    gpu: int | None
    upstream: dict[str, Path]
    max_steps: int | None = None
    weights_dir: Path | None = None
    score: bool = True
    gpus: tuple[int, ...] = ()
    slots: int | None = None
    executor: str = "host"

    def slot_plan(self, runtime: Runtime) -> list[Slot]:
        """The run's slots: from --gpu, --gpus or --slots if any was given, else from
        runtime.gpus / runtime.slots of benchmark.yaml."""
        if self.executor == "slurm":
            # Slots are Slurm jobs in flight, each asking for a GPU where the run uses one.
            gpu = self.gpu if self.gpu is not None else next(iter(self.gpus), None)
            return [Slot(i, gpu) for i in range(self.slots or 1)]
        if self.gpu is not None or self.gpus or self.slots is not None:
            gpus = self.gpus or (() if self.gpu is None else (self.gpu,))
            return plan_slots(gpus, self.slots or 1)
        return plan_slots(runtime.gpus, runtime.slots)


def run_command(request: RunRequest, reporter: Reporter) -> RunSummary:
    bench = load_benchmark(request.config_path)
    choice = choose_profile(bench, request.profile)
    reporter.note(f"profile: {choice.profile} ({choice.reason})")
    ensure_data(request.config_path, choice.profile, reporter)
    profile = bench.profile(choice.profile)
    base = request.config_path.resolve().parent
    folders = [base / m.image for m in profile.models if (base / m.image).is_dir()]
    if request.score:
        from harness.scoring import METRICS_FOLDER

        folders.append(METRICS_FOLDER)
    runner = choose_runner(
        request.runner, request.upstream, reporter, profile.runtime, images=folders
    )
    run_dir = request.run_dir or request.config_path.parent / "runs" / choice.profile
    reporter.note(f"run folder: {run_dir}")
    if request.executor == "slurm":
        runner = slurm_runner(runner, run_dir)
    slots = request.slot_plan(profile.runtime)
    if len(slots) > 1:
        threads = f", {slots[0].threads} CPU thread(s) each" if slots[0].threads else ""
        reporter.note(f"slots: {', '.join(s.label for s in slots)}{threads}")
    pipeline = Pipeline(
        profile,
        run_dir,
        runner,
        reporter,
        max_steps=request.max_steps,
        image_base=request.config_path.resolve().parent,
        score=request.score,
        weights_dir=request.weights_dir,
        slots=slots,
    )
    return pipeline.run()


def slurm_runner(runner: Runner, run_dir: Path) -> Runner:
    """The chosen runner's jobs as Slurm jobs: each node runs them through that runner (the
    docker runner there runs the image built here, which the node's engine must hold)."""
    from harness.executors.slurm import SlurmRunner, sbatch_args_from_env

    return SlurmRunner(runner, run_dir, sbatch_args_from_env())


def format_summary(summary: RunSummary) -> str:
    rows = [(s.kind, s.label, s.status, s.reason) for s in summary.steps]
    widths = [
        max([len(r[i]) for r in rows] + [len(h)])
        for i, h in enumerate(("step", "job", "status", "reason"))
    ]
    widths[3] = 0
    lines = [f"run {summary.run_dir} (profile {summary.profile}, runner {summary.runner})"]
    header = ("step", "job", "status", "reason")
    for row in [header, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    failed = len(summary.failed)
    skipped = sum(s.status == "skipped" for s in summary.steps)
    ok = len(summary.steps) - failed - skipped
    lines.append(f"{ok} step(s) ok, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return "\n".join(lines)


def resolve_target(target: str, runner: Runner) -> tuple[str, dict[str, Any] | None]:
    """An image folder, a model of benchmark.yaml, or (docker) a built image reference →
    (what the runner launches, its manifest when read without running it)."""
    path = Path(target)
    if path.is_dir():
        return str(path.resolve()), None
    folder = Path("images") / target
    if (folder / "manifest.json").is_file():
        return str(folder.resolve()), None
    labels = getattr(runner, "image_labels", None)
    if labels is None:
        raise HarnessError(
            f"{target}: not an image folder or model name",
            "pass images/<name>; built image references need --runner docker",
        )
    from harness.contract import manifest_from_labels

    return target, manifest_from_labels(labels(target), target)
