"""Every fault of the faulty fixture through the real `inpaint-bench run`: each is contained and
recorded with a reason a user can act on, the harness exits without a traceback, and the run
goes on to a good model after all of them.

One run holds every faulty model, a good one last (a run per fault would repeat the data, the
inputs and the start-up each time); the parametrized tests read its ledger. The local runner's
memory limit is RLIMIT_DATA, docker's a cgroup's: the docker cases run a smaller set, the ones
whose containment differs in the sandbox, when an engine and base image are at hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from datatree import tiny_run_args, write_tiny_benchmark
from dockerhost import engine_and_base
from runs import FAULTY

from harness.config import Runtime, load_benchmark
from harness.ledger import Ledger, Step

GOOD = "good"  # the model after every faulty one: it must still train and predict
SIZE = 32
MEMORY = "256m"


@dataclass(frozen=True)
class Case:
    fault: str
    kind: str  # the step the fault shows in: train or predict
    status: str  # the status that step ends with: failed, or done where it is contained
    expected: tuple[str, ...]  # substrings of the step's reason
    result: tuple[tuple[str, Any], ...] = ()  # fields of the step's result, where it is done


CASES = [
    Case("none", "predict", "done", ("done",)),
    Case(
        "crash_start",
        "train",
        "failed",
        ("exited with status 1: RuntimeError: deliberate crash before run_start", "see "),
    ),
    Case("crash_mid", "train", "failed", ("exited with status 1; see ",)),
    Case(
        "ignore_sigterm",
        "train",
        "failed",
        ("ignored SIGTERM for 1 s after its budget: killed", "see "),
    ),
    Case("slow_setup", "train", "failed", ("no run_start within the setup cap of 5 s", "see ")),
    Case(
        "hang_predict",
        "predict",
        "failed",
        (
            "ignored SIGTERM for 1 s after its predict time cap of 2 s",
            "raise runtime.predict_cap if the model is only slow",
        ),
    ),
    Case(
        "exceed_memory",
        "train",
        "failed",
        (
            "exceeded the memory limit of 256 MiB (runtime.memory)",
            "raise runtime.memory in benchmark.yaml or lower the model's batch_size",
        ),
    ),
    Case(
        "malformed_events",
        "train",
        "done",
        (
            "2 malformed event line(s), first: line 2: ",
            "invalid JSON",
            "print logs to stderr",
        ),
        (("violations", 2),),
    ),
    Case(
        "huge_line",
        "train",
        "done",
        (
            "1 malformed event line(s), first: line 2: ",
            "line over the 65536-byte limit (cut, not read)",
            "print large things to a file under the outputs mount, not to stdout",
        ),
        (("violations", 1),),
    ),
    Case(
        "missing_outputs",
        "predict",
        "failed",
        ("1 prediction(s) missing (one PNG per input image, same name), e.g. ", "000000.png"),
    ),
    Case(
        "extra_outputs",
        "predict",
        "failed",
        ("1 unexpected file(s) in the outputs (only the predictions belong there)", "notes.txt"),
    ),
    Case(
        "wrong_size",
        "predict",
        "failed",
        (
            "3 prediction(s) of the wrong size (the inputs' size), e.g. ",
            "expected 32x32, got 32x16",
        ),
    ),
    Case(
        "symlink_output",
        "predict",
        "failed",
        ("1 prediction(s) not regular files, e.g. ", "not a regular file (links are refused)"),
    ),
    Case(
        "non_png",
        "predict",
        "failed",
        ("3 prediction(s) in the wrong format, e.g. ", "expected an 8-bit RGB PNG, got JPEG RGB"),
    ),
    Case(
        "no_checkpoint",
        "predict",
        "failed",
        ("exited with status 4: ", "state.json: no checkpoint"),
    ),
    # Contained as a flag, not a failure: the report shows the known pixels moved.
    Case("wrong_polarity", "predict", "done", ("done",), (("composites", False),)),
    Case(
        "no_composite",
        "predict",
        "done",
        ("done",),
        (("composites", False), ("known_pixel_max_abs", 3)),
    ),
    Case(
        "write_outside",
        "predict",
        "failed",
        (
            "wrote into its read-only data mount: created $INPAINT_DATA/inputs/planted.png"
            " (removed again)",
            "the docker runner does",
        ),
    ),
    # Nondeterminism is `validate`'s to find (tests/test_validate.py); a run just records it.
    Case("stochastic", "predict", "done", ("done",)),
    # Keeping no snapshots matters only under a manifest that claims them (test_validate.py);
    # this one claims none, so none are asked for.
    Case("no_snapshots", "predict", "done", ("done",)),
]


def test_every_fault_of_the_fixture_has_a_case() -> None:
    doc = (FAULTY / "adapter.py").read_text().split('"""')[1]
    faults = doc.split("Faults:", 1)[1].split("\n\n", 1)[0]  # the list ends at a blank line
    listed = faults.replace("\n", " ").rstrip(". ").split(",")
    assert sorted(f.strip() for f in listed) == sorted(c.fault for c in CASES)


@dataclass
class Run:
    root: Path
    returncode: int
    output: str
    steps: dict[str, Step]  # "kind label" → the ledger's step

    def step(self, kind: str, model: str) -> Step:
        label = f"{model} on scenes" if kind == "train" else f"{model} (scenes) on faces_test"
        return self.steps[f"{kind} {label}"]


def write_config(root: Path, cases: list[Case], runtime: dict[str, Any]) -> Path:
    """A benchmark.yaml with one faulty model per case and a good one last, over a tiny tree."""
    models = {
        f"f-{c.fault}": {
            "image": str(FAULTY),
            "batch_size": 1,
            "hyperparameters": {"fault": c.fault},
        }
        for c in cases
    }
    models[GOOD] = {"image": str(FAULTY), "batch_size": 1, "hyperparameters": {"fault": "none"}}
    return write_tiny_benchmark(
        root, models, train=(4, 2), test=3, runtime=runtime, image_size=SIZE, build=bool(cases)
    )


def run_cli(root: Path, config: Path, runner: str, env: dict[str, str] | None = None) -> Run:
    argv = [
        sys.executable,
        "-c",
        "from harness.cli import cli; cli()",
        *tiny_run_args(config, root / "run", runner),
        "--max-steps",
        "25",  # crash_mid crashes at step 20; the others stop early, to keep the run short
        "--no-score",
        "--quiet",
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        cwd=root,
    )
    with Ledger.in_run_dir(root / "run") as ledger:
        steps = {f"{s.kind} {s.label}": s for s in ledger.steps()}
    return Run(root, done.returncode, done.stdout + done.stderr, steps)


def check_case(run: Run, case: Case) -> None:
    model = f"f-{case.fault}"
    step = run.step(case.kind, model)
    assert step.status == case.status, (step.status, step.reason)
    for expected in case.expected:
        assert expected in (step.reason or ""), (expected, step.reason)
    for name, value in case.result:
        assert step.result is not None and step.result[name] == value, (name, step.result)
    if case.kind == "train" and case.status == "failed":
        assert f"predict {model} (scenes) on faces_test" not in run.steps  # never started
    if case.status == "failed" and case.kind == "predict":
        assert not (run.root / "run" / "predictions" / "scenes" / model).exists()


def check_run_went_on(run: Run) -> None:
    assert run.returncode == 1, run.output[-3000:]  # 1: some steps failed, as they should
    assert "Traceback" not in run.output, run.output[-3000:]
    assert "harness error" not in run.output, run.output[-3000:]
    assert run.step("train", GOOD).status == "done"
    assert run.step("predict", GOOD).status == "done"
    # No fault leaks into the masked inputs every later model is given.
    inputs = sorted(p.name for p in (run.root / "run" / "inputs" / "faces_test").iterdir())
    assert inputs == ["000000.png", "000001.png", "000002.png"]


# --- the local runner ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("faulty-local")
    runtime = {
        "memory": MEMORY,  # the local runner's RLIMIT_DATA on CPU jobs
        "setup_cap": "5s",  # slow_setup's wait; a healthy start takes well under a second
        "grace": "1s",
        "predict_cap": "2s",
    }
    config = write_config(root, CASES, runtime)
    # One BLAS thread: each thread's buffers count against the small data limit.
    return run_cli(root, config, "local", {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})


def test_local_run_exits_cleanly_and_goes_on(local_run: Run) -> None:
    check_run_went_on(local_run)
    assert len(local_run.steps) >= len(CASES) + 1


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.fault)
def test_local_fault_is_contained_with_a_reason(local_run: Run, case: Case) -> None:
    check_case(local_run, case)


def test_local_violations_reach_the_ledger(local_run: Run) -> None:
    step = local_run.step("train", "f-huge_line")
    with Ledger.in_run_dir(local_run.root / "run") as ledger:
        found = ledger.violations(step.key)
    assert len(found) == 1 and "65536-byte limit" in found[0]


# --- the docker runner ---------------------------------------------------------------------

DOCKER_FAULTS = ("none", "exceed_memory", "hang_predict", "huge_line", "symlink_output")
DOCKER_EXPECTED = {
    "exceed_memory": Case(
        "exceed_memory",
        "train",
        "failed",
        (
            "exceeded the memory limit of 256 MiB (runtime.memory): killed by the out-of-memory"
            " killer",
            "raise runtime.memory in benchmark.yaml",
        ),
    ),
    # The data mount is read-only in the sandbox: the write fails and the prediction goes on.
    "write_outside": Case("write_outside", "predict", "done", ("done",)),
}
DOCKER_CASES = [
    DOCKER_EXPECTED.get(c.fault, c) for c in CASES if c.fault in (*DOCKER_FAULTS, "write_outside")
]


@pytest.fixture(scope="module")
def docker_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    engine_and_base()  # or skip, saying why
    root = tmp_path_factory.mktemp("faulty-docker")
    runtime = {"memory": MEMORY, "setup_cap": "30s", "grace": "1s", "predict_cap": "2s"}
    config = write_config(root, DOCKER_CASES, runtime)
    return run_cli(root, config, "docker")


@pytest.mark.docker
def test_docker_run_exits_cleanly_and_goes_on(docker_run: Run) -> None:
    check_run_went_on(docker_run)


@pytest.mark.docker
@pytest.mark.parametrize("case", DOCKER_CASES, ids=lambda c: c.fault)
def test_docker_fault_is_contained_with_a_reason(docker_run: Run, case: Case) -> None:
    check_case(docker_run, case)


@pytest.mark.docker
def test_docker_write_outside_is_refused_by_the_read_only_mount(docker_run: Run) -> None:
    log = docker_run.root / "run" / "logs" / "predict-f-write_outside-scenes.log"
    assert "write outside refused: [Errno 30] Read-only file system" in log.read_text()


# --- the limits behind the containment, as configured ----------------------------------------


def test_predict_cap_defaults_to_todays_rule_and_is_configurable(tmp_path: Path) -> None:
    assert Runtime().predict_cap(4) == 300.0 and Runtime().predict_cap(100) == 500.0
    config = write_config(tmp_path, [], {"predict_cap": "2s", "tmp_size": "64m"})
    runtime = load_benchmark(config).profile("tiny").runtime
    assert runtime.predict_cap(1000) == 2.0 and runtime.tmp_bytes == 64 << 20


def test_sandbox_limits_pids_and_a_sized_tmp(tmp_path: Path) -> None:
    from harness.runners.base import Launch, Limits, Mounts
    from harness.runners.sandbox import container_spec

    launch = Launch(
        "m",
        "img",
        "predict",
        Mounts({}, tmp_path / "job" / "job.json", tmp_path / "ck", tmp_path / "out"),
        Limits(60, 60, 5),
        tmp_path / "log",
    )
    runtime = Runtime(pids_limit=64, tmp_bytes=64 << 20)
    spec = container_spec(launch, "img", runtime, "run", "key")
    assert spec.pids_limit == 64 and spec.run_kwargs()["pids_limit"] == 64
    assert spec.tmpfs == {"/tmp": f"rw,nosuid,nodev,size={64 << 20}"}
    assert Runtime().tmp_bytes == 4 << 30 and Runtime().pids_limit == 1024
