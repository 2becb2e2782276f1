"""Several slots on one host (`run --gpus`, `--slots`): the slot plan, the executor, the ledger
shared by threads, and a real run whose two trainings can only finish side by side."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from datatree import tiny_run_args, write_tiny_benchmark
from runs import FAULTY

from harness.cli import cli
from harness.config import Runtime
from harness.errors import ConfigError
from harness.executors.slots import THREAD_VARIABLES, Slot, SlotExecutor, plan_slots
from harness.ledger import Ledger
from harness.runners.base import Launch, Limits, Mounts
from harness.running import RunRequest

BIN = Path(sys.executable).parent / "inpaint-bench"
WAIT_S = 120.0  # a barrier that is not met by then fails the test: the tasks did not overlap


def test_gpu_slots_are_pinned_to_their_gpu_and_share_the_cores() -> None:
    slots = plan_slots((3, 1), cores=16)
    assert [(s.index, s.gpu, s.threads) for s in slots] == [(0, 3, 8), (1, 1, 8)]
    assert [s.label for s in slots] == ["gpu 3", "gpu 1"]
    assert slots[0].env() == dict.fromkeys(THREAD_VARIABLES, "8")


def test_cpu_slots_split_the_cores_and_one_slot_changes_nothing() -> None:
    assert [(s.gpu, s.threads) for s in plan_slots((), 2, cores=2)] == [(None, 1), (None, 1)]
    assert [(s.gpu, s.threads) for s in plan_slots((), 3, cores=8)] == [(None, 2)] * 3
    assert [(s.gpu, s.threads) for s in plan_slots((), 4, cores=2)] == [(None, 1)] * 4
    (one,) = plan_slots((), 1, cores=8)
    assert one == Slot(0, None, None) and one.env() == {}
    (gpu,) = plan_slots((2,), cores=8)
    assert (gpu.gpu, gpu.threads) == (2, None)


@pytest.mark.parametrize(
    ("gpus", "slots", "message"),
    [((0, 0), 1, "a GPU is listed twice"), ((0,), 2, "give one of them"), ((), 0, "at least 1")],
)
def test_impossible_slot_plans_are_refused(gpus: tuple[int, ...], slots: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        plan_slots(gpus, slots, cores=2)


def test_a_slot_pins_a_launch_to_its_gpu_and_threads(tmp_path: Path) -> None:
    launch = Launch(
        "m",
        "images/m",
        "train",
        Mounts({}, tmp_path / "job.json", tmp_path, tmp_path),
        Limits(1.0, 1.0, 1.0),
        tmp_path / "log",
        gpu=None,
        env={"EXTRA": "1"},
    )
    pinned = Slot(1, 5, 4).pin(launch)
    assert pinned.gpu == 5
    assert pinned.env == {"EXTRA": "1", **dict.fromkeys(THREAD_VARIABLES, "4")}


def test_the_command_line_wins_over_runtime_and_gpu_is_one_gpu_slot() -> None:
    def plan(**kwargs: object) -> list[tuple[int | None, int | None]]:
        request = RunRequest(Path("b.yaml"), "sample", None, "local", **kwargs)  # type: ignore[arg-type]
        runtime = Runtime(gpus=(4, 5), slots=1)
        return [(s.gpu, s.threads) for s in request.slot_plan(runtime)]

    cores = len(os.sched_getaffinity(0))
    assert plan(gpu=None, upstream={}) == [(4, max(1, cores // 2)), (5, max(1, cores // 2))]
    assert plan(gpu=1, upstream={}) == [(1, None)]
    assert plan(gpu=None, upstream={}, gpus=(0, 2)) == [
        (0, max(1, cores // 2)),
        (2, max(1, cores // 2)),
    ]
    assert plan(gpu=None, upstream={}, slots=1) == [(None, None)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu", "0", "--gpus", "1"], "--gpu and --gpus: give one of them"),
        (["--gpus", "0", "--slots", "2"], "--gpus and --slots: give one of them"),
        (["--gpus", "0,0"], "give each GPU index (0 or more) once"),
        (["--gpus", "zero"], "expected GPU indices separated by commas"),
    ],
)
def test_run_refuses_conflicting_slot_options(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["run", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_two_slots_run_two_tasks_at_once_each_on_its_own_slot() -> None:
    executor = SlotExecutor(plan_slots((), 2, cores=2))
    both = threading.Barrier(2, timeout=WAIT_S)  # broken unless both tasks run at once
    seen: list[Slot] = []

    def task() -> None:
        both.wait()
        seen.append(executor.current_slot())

    executor.submit(task)
    executor.submit(task)
    executor.join()
    assert sorted(s.index for s in seen) == [0, 1]
    assert executor.current_slot().index == 0  # the main thread's jobs (scoring) use slot 0


def test_one_slot_runs_tasks_inline_in_order() -> None:
    executor = SlotExecutor([Slot(0)])
    order: list[tuple[int, str]] = []
    for i in range(3):
        executor.submit(lambda i=i: order.append((i, threading.current_thread().name)))
    executor.join()
    assert order == [(i, threading.main_thread().name) for i in range(3)]


def test_a_failing_task_stops_the_rest_and_is_raised_by_join() -> None:
    executor = SlotExecutor(plan_slots((), 2, cores=2))
    started = threading.Event()
    ran: list[str] = []

    def fail() -> None:
        started.wait(WAIT_S)
        raise RuntimeError("lane broke")

    def first() -> None:
        ran.append("first")
        started.set()

    executor.submit(first)
    executor.submit(fail)
    for i in range(5):
        executor.submit(lambda i=i: ran.append(f"later {i}"))
    with pytest.raises(RuntimeError, match="lane broke"):
        executor.join()
    assert "first" in ran
    # The executor is stopping: no new job starts.
    with pytest.raises(KeyboardInterrupt), executor.job(lambda: pytest.fail("started")):
        pass


def test_the_ledger_takes_steps_and_events_from_two_threads(tmp_path: Path) -> None:
    events = 300
    with Ledger.in_run_dir(tmp_path) as ledger:

        def lane(name: str) -> None:
            attempt = ledger.begin(name, "train", name, {"lane": name})
            for seq in range(events):
                ledger.add_event(name, attempt, seq, {"event": "progress", "step": seq})
                assert ledger.get(name) is not None
            ledger.finish(name, "done", result={"steps": events})

        threads = [threading.Thread(target=lane, args=(f"lane{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert ledger.integrity_ok()
        assert {s.key: (s.status, s.attempt) for s in ledger.steps()} == {
            "lane0": ("done", 1),
            "lane1": ("done", 1),
        }
        for name in ("lane0", "lane1"):
            assert [e["step"] for e in ledger.events(name)] == list(range(events))


def rendezvous_config(root: Path) -> Path:
    models = {
        m: {"image": str(FAULTY), "batch_size": 1, "hyperparameters": {"fault": "rendezvous"}}
        for m in ("m0", "m1")
    }
    return write_tiny_benchmark(root, models, train=(4, 1), test=3)


def rendezvous_env(meet: Path, wanted: int) -> dict[str, str]:
    return {
        **os.environ,
        "INPAINT_TEST_RENDEZVOUS": str(meet),
        "INPAINT_TEST_RENDEZVOUS_N": str(wanted),
    }


def met(meet: Path) -> list[Path]:
    return [p for p in meet.iterdir() if not p.name.startswith(".")]


def alive_jobs(run_dir: Path) -> list[int]:
    """Processes (not zombies) whose command line names a path under `run_dir`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if f"{run_dir}/".encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_sigterm_with_two_jobs_in_flight_stops_both_and_leaves_them_to_the_rerun(
    tmp_path: Path,
) -> None:
    config = rendezvous_config(tmp_path)
    meet = tmp_path / "meet"
    meet.mkdir()
    run_dir = tmp_path / "run"
    argv = [str(BIN), *tiny_run_args(config, run_dir), "-q", "--slots", "2"]
    harness = subprocess.Popen(
        argv, env=rendezvous_env(meet, 2), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    while len(met(meet)) < 2:  # both trainings are up
        assert harness.poll() is None, harness.communicate()[0]
        time.sleep(0.01)
    harness.send_signal(signal.SIGTERM)
    output = harness.communicate()[0].decode()
    assert harness.returncode != 0, output
    assert alive_jobs(run_dir) == [], "a job outlived the stopped harness"
    with Ledger.in_run_dir(run_dir) as ledger:
        trains = [(s.label, s.status, s.attempt) for s in ledger.steps("train")]
    assert sorted(trains) == [("m0 on scenes", "running", 1), ("m1 on scenes", "running", 1)]


def results(run_dir: Path) -> dict[str, bytes]:
    files = [*(run_dir / "scores").rglob("*.csv"), *(run_dir / "predictions").rglob("*.png")]
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(files)}


@pytest.mark.slow
def test_two_cpu_slots_train_side_by_side_with_the_sequential_results(tmp_path: Path) -> None:
    config = rendezvous_config(tmp_path)
    meet = tmp_path / "meet"
    meet.mkdir()

    def run(run_dir: Path, wanted: int, *slots: str) -> None:
        argv = [str(BIN), *tiny_run_args(config, run_dir), "-q", *slots]
        env = rendezvous_env(meet, wanted)
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr

    # One slot: each training meets only itself. Two slots: each waits for the other, so the
    # run finishes only if both trainings ran at the same time.
    run(tmp_path / "sequential", 1)
    for path in meet.iterdir():
        path.unlink()
    run(tmp_path / "slots", 2, "--slots", "2")

    assert results(tmp_path / "slots") == results(tmp_path / "sequential")
    assert results(tmp_path / "slots")
    cores = len(os.sched_getaffinity(0))
    seen = [json.loads(p.read_text()) for p in meet.iterdir()]
    threads = str(max(1, cores // 2))
    assert seen == [{"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads}] * 2
    with Ledger.in_run_dir(tmp_path / "slots") as ledger:
        steps = ledger.steps()
        assert {(s.status, s.attempt) for s in steps} == {("done", 1)}
        trains = [s for s in steps if s.kind == "train"]
        assert len(trains) == 2 and len({s.key for s in steps}) == len(steps)
