"""Slots: the devices of one host, each running one job at a time.

`inpaint-bench run --gpus 0,1` gives two GPU slots, `--slots 2` two CPU slots (each with half the
cores' threads); without either, one slot (the old one-job-at-a-time run). A `SlotExecutor` runs
submitted tasks on worker threads, one per slot, so a job never shares its device: every job a
task launches uses its thread's slot (`current_slot()`), and a task holds the slot until it
returns. With one slot, tasks run inline at `submit`, in submission order, as before.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.runners.base import Launch, Process

# torch sizes its intra-op pool from OMP_NUM_THREADS; the BLAS libraries read their own variable.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Slot:
    """One place a job runs: an NVIDIA GPU (`gpu`) or, with `gpu` None, a share of the CPU.

    threads: CPU threads a job on this slot may use (cores // slots), None to leave the job's
    default (a run with one slot).
    """

    index: int
    gpu: int | None = None
    threads: int | None = None

    @property
    def label(self) -> str:
        return f"gpu {self.gpu}" if self.gpu is not None else f"cpu slot {self.index}"

    def env(self) -> dict[str, str]:
        """Environment a job on this slot gets: its thread count, so that jobs side by side do
        not oversubscribe the cores."""
        if self.threads is None:
            return {}
        return dict.fromkeys(THREAD_VARIABLES, str(self.threads))

    def pin(self, launch: Launch) -> Launch:
        """`launch` on this slot: its GPU (None: the CPU) and its thread count."""
        return dataclasses.replace(launch, gpu=self.gpu, env={**self.env(), **launch.env})


def host_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0))


def plan_slots(
    gpus: Sequence[int] = (), cpu_slots: int = 1, cores: int | None = None
) -> list[Slot]:
    """The slots of a run: one per GPU index in `gpus`, else `cpu_slots` CPU slots. With more
    than one slot, each gets `cores // slots` threads (at least 1)."""
    if gpus and cpu_slots > 1:
        raise ConfigError(
            "--gpus and --slots: give one of them",
            "--gpus 0,1 runs one job per GPU; --slots N runs N jobs on the CPU",
        )
    if len(set(gpus)) != len(gpus):
        raise ConfigError(
            f"--gpus {','.join(map(str, gpus))}: a GPU is listed twice",
            "list each GPU index once: a job never shares its GPU",
        )
    if cpu_slots < 1:
        raise ConfigError(f"--slots {cpu_slots}: expected at least 1", "use --slots 1 or more")
    count = len(gpus) or cpu_slots
    threads = None if count == 1 else max(1, (cores or host_cores()) // count)
    if gpus:
        return [Slot(i, gpu, threads) for i, gpu in enumerate(gpus)]
    return [Slot(i, None, threads) for i in range(count)]


class SlotExecutor:
    """Runs tasks one per slot at a time; `join` waits for all of them.

    A task that raises stops the run like it would stop a sequential one: the tasks not yet
    started are dropped, `on_stop` is called to end the jobs in flight, and the exception is
    re-raised from `join`. So is an interrupt (Ctrl-C, SIGTERM) of the waiting thread.
    """

    def __init__(self, slots: Sequence[Slot]) -> None:
        if not slots:
            raise ValueError("an executor needs at least one slot")
        self.slots = list(slots)
        self._local = threading.local()
        self._free: queue.SimpleQueue[Slot] = queue.SimpleQueue()
        for slot in self.slots:
            self._free.put(slot)
        self._futures: list[Future[None]] = []
        self._in_flight: set[Process] = set()
        self._in_flight_lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        if len(self.slots) > 1:
            # Threads are made one per submit up to max_workers and live until shutdown: each
            # takes a slot once, so no two threads ever hold the same slot.
            self._pool = ThreadPoolExecutor(
                max_workers=len(self.slots), thread_name_prefix="slot", initializer=self._bind
            )

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def _bind(self) -> None:
        self._local.slot = self._free.get_nowait()

    def current_slot(self) -> Slot:
        """The slot of the calling thread: a worker's own, or the first for the main thread
        (whose jobs, describe inline and scoring, run when no worker holds it)."""
        slot: Slot | None = getattr(self._local, "slot", None)
        return slot if slot is not None else self.slots[0]

    def submit(self, task: Callable[[], None]) -> None:
        if self._pool is None:
            task()
        else:
            self._futures.append(self._pool.submit(task))

    def join(self) -> None:
        """Wait for every task; on an error or an interrupt, stop the rest and re-raise."""
        if self._pool is None:
            return
        try:
            done, _ = wait(self._futures, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # re-raises a task's exception here
        except BaseException:
            self._stop()
            self._pool.shutdown(wait=True, cancel_futures=True)
            raise
        self._pool.shutdown(wait=True)

    def _stop(self) -> None:
        """Drop the tasks not started and kill every job in flight; their tasks then end with
        KeyboardInterrupt (see `job`)."""
        self._stopping.set()
        for future in self._futures:
            future.cancel()
        with self._in_flight_lock:
            for process in list(self._in_flight):
                process.send_signal(signal.SIGKILL)

    @contextmanager
    def job(self, start: Callable[[], Process]) -> Iterator[Process]:
        """Start a job, known to the executor until it is cleaned up, so that a stop can kill
        it. A job killed by a stop raises KeyboardInterrupt rather than return its outcome:
        its step stays `running` in the ledger, as after a crash, and a rerun runs it again."""
        if self._stopping.is_set():
            raise KeyboardInterrupt
        process = start()
        with self._in_flight_lock:
            self._in_flight.add(process)
        try:
            yield process
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(process)
            process.cleanup()
        if self._stopping.is_set():
            raise KeyboardInterrupt
