"""`--executor slurm`: every job of the run becomes a Slurm batch job; the harness on the login
node submits it, follows it and stays the ledger's only writer.

A `SlurmRunner` stands where the chosen runner (local or docker) stands in the pipeline, and
the node runs each job through that runner: `start(launch)` writes the launch (with the runner's
name and, for docker, the image tag built here) to RUN_DIR/slurm/<name>.launch.json and submits
`python -m harness.executors.node` on it (`sbatch`), named `ib-<run id>-<step key>-<command>`;
the returned `SlurmJob` is a `Process` the supervisor follows as it follows a local one: it reads
the events file the node appends to, signals through `scancel`, and ends with the node's exit
file. The slot executor decides how many jobs are in flight (`--slots`) and in which order, so
a step is submitted only once the steps it needs are done (the harness needs their outcome
anyway); only the report job (`start_report`) is chained up front, on the last score job
(docs/scaling.md says why).

The node runs each job on its own copy of the job file and its own outputs folder in
RUN_DIR/slurm (own_folders.py), out of reach of the work folder a rerun wipes; the harness that
follows the job to its end moves the outputs where its launch wants them.

Adoption: a rerun after the harness died finds a job of the same name still pending or running
(`squeue -n`) and follows it from its first event instead of submitting it again; a job that
ended meanwhile is known by its exit file, which names its job ID (so a harness that died
between `sbatch` returning and writing the .jobid file does not make its rerun submit again).

The run folder must be on a filesystem the nodes share: a job that left the queue without its
node's first trace in it (the node creates the events file first thing), or that has been
RUNNING for NODE_START_S without one, stops the run with an error that says so.

Plain `sbatch`/`squeue`/`scancel` rather than submitit: submitit runs a pickled function and
returns its pickled result at the end, while here the job's events must stream to the login
node while it runs, signals must reach the job's process group, and a job must be found again by
name after the harness died; three commands do that (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.data.atomic import atomic_write_text
from harness.errors import HarnessError
from harness.executors.node import launch_to_json
from harness.executors.node_runners import docker_settings
from harness.executors.own_folders import hand_over_outputs, on_own_folders
from harness.executors.slots import THREAD_VARIABLES
from harness.runners.base import Launch, Runner

log = logging.getLogger(__name__)

POLL_S = 0.2  # the events and exit files, on the shared filesystem
QUEUE_POLL_S = 5.0  # squeue, which asks slurmctld: not more often per job
# A RUNNING job's node creates its events file as soon as Python has started: this long without
# it, the node does not see the run folder (a slow shared filesystem's imports included).
NODE_START_S = 300.0
ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
REPORT_MIN = 60  # the report job's time limit: P6 loads 115,200 score rows in 1.6 s


def _slurm(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise HarnessError(
            f"{args[0]}: not found: --executor slurm needs the Slurm client commands",
            "run on the cluster's login node, or use --slots on one host",
        ) from None
    if done.returncode != 0:
        raise HarnessError(f"{' '.join(args)}: {done.stderr.strip()}", "check `sinfo`")
    return done.stdout


def job_states(name: str) -> dict[str, str]:
    """Job ID → state of the jobs called `name` that Slurm still lists."""
    out = _slurm(["squeue", "-h", "-n", name, "-o", "%i %T"])
    return dict(line.split() for line in out.splitlines() if line.strip())


def time_limit_min(launch: Launch) -> int:
    """Budget + setup cap + two graces (SIGTERM, then SIGKILL) + a minute for the node."""
    limits = launch.limits
    return math.ceil((limits.budget_s + limits.setup_cap_s + 2 * limits.grace_s) / 60) + 1


class SlurmJob:
    """A submitted (or adopted) Slurm job, followed like a local process."""

    def __init__(
        self,
        job_id: str,
        name: str,
        events: Path,
        exit_file: Path,
        adopted: bool,
        outputs: Path | None = None,
    ):
        self.job_id = job_id
        self.name = name
        self.events = events
        self.exit_file = exit_file
        self.adopted = adopted
        self.outputs = outputs  # where this harness's launch wants the job's outputs
        self._exit: dict[str, Any] | None = None
        self._queue_checked = 0.0
        self._gone = False  # once seen ended, ended for every caller (pump and supervisor)
        self._running_since: float | None = None  # seen RUNNING without its events file
        self._lost = False  # its node does not see the run folder: cancelled, and an error
        self._killed = False  # by this harness (scancel): its end is the supervisor's to explain

    def _ended(self) -> bool:
        if self._gone or self.exit_file.is_file():
            self._gone = True
            return True
        now = time.monotonic()
        if now - self._queue_checked < QUEUE_POLL_S:
            return False
        self._queue_checked = now
        try:
            listed = job_states(self.name)
        except HarnessError as error:  # slurmctld busy or restarting: ask again later
            log.warning("job %s: %s", self.job_id, error)
            return False
        state = listed.get(self.job_id)
        if state == "RUNNING" and not self.events.exists():
            if self._running_since is None:
                self._running_since = now
            if now - self._running_since >= NODE_START_S:
                self._lost = self._gone = True
                with contextlib.suppress(HarnessError):
                    _slurm(["scancel", self.job_id])
                return True
        # Gone from the queue: ended (its exit file, if any, is there now), was cancelled, or
        # its node died.
        self._gone = state not in ALIVE
        return self._gone

    def stdout_chunks(self) -> Iterator[bytes]:
        offset = 0
        while True:
            ended = self._ended()  # before reading: what was written until then is read below
            if self.events.is_file():
                with open(self.events, "rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                if chunk:
                    offset += len(chunk)
                    yield chunk
                    continue
            if ended:
                return
            time.sleep(POLL_S)

    def send_signal(self, signum: int) -> None:
        if signum == signal.SIGKILL:
            self._killed = True
            with contextlib.suppress(HarnessError):  # a job not yet started has no batch step
                _slurm(["scancel", "-b", "-s", "USR1", self.job_id])
            _slurm(["scancel", self.job_id])
        else:  # to the batch step, whose node process passes it on to the job
            _slurm(["scancel", "-b", "-s", signal.Signals(signum).name[3:], self.job_id])

    def wait(self, timeout: float | None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ended():
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)
        exit_info = self._exit_info()
        if self._lost or not (exit_info or self._killed or self.events.exists()):
            self._run_folder_not_shared()
        if self.outputs is not None:
            hand_over_outputs(self.events.with_suffix(""), self.outputs)
        return int(exit_info.get("exit_code", -signal.SIGKILL))

    def exit_info(self) -> dict[str, Any]:
        """What the node wrote when the job ended ({} before, or if it wrote nothing)."""
        return dict(self._exit_info())

    def _run_folder_not_shared(self) -> None:
        """The job ended, or has run for long, and its node never created the events file:
        the likeliest cause, and one every later job would meet too, is a run folder the node
        cannot see (the login node's /tmp or local disk), so the run stops here."""
        how = f"ran for {NODE_START_S:g} s without" if self._lost else "left the queue without"
        run_dir = self.events.parent.parent
        raise HarnessError(
            f"{run_dir}: Slurm job {self.job_id} ({self.name}) {how} creating {self.events},"
            " the first thing its node does, so its node most likely cannot see this run"
            " folder. The run folder must be on a filesystem the login node and the nodes share",
            f"choose one with --run-dir (shared home or project storage, not /tmp or a local"
            f" disk); the node's own messages are in {self.events.with_suffix('.out')} on the"
            f" node, and `sacct -j {self.job_id}` says how the job ended",
        )

    def _exit_info(self) -> dict[str, Any]:
        if self._exit is None and self.exit_file.is_file():
            self._exit = json.loads(self.exit_file.read_text())
        return self._exit or {}

    def node_error(self) -> str | None:
        """Why the node could not start the job (no image or docker there, no venv), if so."""
        error = self._exit_info().get("error")
        return None if error is None else str(error)

    def data_changes(self) -> list[str]:
        return list(self._exit_info().get("data_changes", []))

    def oom_killed(self) -> bool:
        return bool(self._exit_info().get("oom_killed", False))

    def cleanup(self) -> None:
        """Cancel the job if it still runs; set its files aside, so that the step's next
        attempt submits afresh instead of adopting this outcome (only a harness that died
        before this point leaves them for its rerun to adopt)."""
        if not self._ended():
            with contextlib.suppress(HarnessError):
                _slurm(["scancel", self.job_id])
        done = self.events.parent / "done"
        done.mkdir(exist_ok=True)
        for path in self.events.parent.glob(f"{self.name}.*"):
            path.rename(done / f"{path.name}.{self.job_id}")


class SlurmRunner:
    """Runs each launch as a Slurm job through the chosen runner (local or docker) on a node,
    and the run's report as a job of its own."""

    def __init__(self, local: Runner, run_dir: Path, sbatch_args: tuple[str, ...] = ()):
        # The runner the nodes use: LocalRunner, or DockerRunner (whose image_for this needs).
        self.local: Any = local
        self.name = local.name
        self.folder = Path(run_dir).resolve() / "slurm"
        self.sbatch_args = sbatch_args

    def unavailable(self, model: str, folder: Any) -> str | None:
        check = getattr(self.local, "unavailable", None)
        return check(model, folder) if check is not None else None

    def provenance(self, folder: str) -> dict[str, str]:
        """The image ID the nodes run (docker: the tag the login node built), for the results."""
        lookup = getattr(self.local, "provenance", None)
        return lookup(folder) if lookup is not None else {}

    def start(self, launch: Launch) -> SlurmJob:
        name = f"ib-{launch.run_id}-{launch.key[:16]}-{launch.command}"

        def body() -> dict[str, Any]:
            # Only for a job submitted now: an adopted one keeps the folders it runs in.
            own = on_own_folders(launch, self.folder / name)
            # The node gets its threads from its CPU allocation, not from the login node's cores.
            env = {k: v for k, v in launch.env.items() if k not in THREAD_VARIABLES}
            doc: dict[str, Any] = {
                "launch": launch_to_json(own) | {"env": env},
                "runner": self.local.name,
                "upstream": {k: str(v) for k, v in getattr(self.local, "upstream_src", {}).items()},
            }
            if self.local.name == "docker":
                # The node runs the tag built here; it never builds (node_runners.py).
                doc["launch"]["image"] = (
                    self.local.image_for(launch) if Path(launch.image).is_dir() else launch.image
                )
                doc["docker"] = docker_settings(self.local)
            return doc

        minutes = time_limit_min(launch)
        gpu = launch.gpu is not None
        return self._submit(name, body, minutes, gpu, outputs=launch.mounts.outputs)

    def start_report(self, run_id: str, after: tuple[str, ...] = ()) -> SlurmJob:
        """Submit (or adopt) the job that writes RUN_DIR/report/ (node_report.py), to start
        once the jobs `after` have completed; once started, it waits for `release_report`."""
        name = f"ib-{run_id}-report"
        doc = {"report": {"run_dir": str(self.folder.parent), "ready": str(self._ready(name))}}
        depend = [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=yes"]
        return self._submit(name, lambda: doc, REPORT_MIN, False, depend if after else [])

    def release_report(self, job: SlurmJob) -> None:
        """Let the report job go on: the ledger holds everything it is to report."""
        atomic_write_text(self._ready(job.name), job.job_id + "\n")

    def _ready(self, name: str) -> Path:
        return self.folder / f"{name}.ready"

    def _submit(
        self,
        name: str,
        body: Callable[[], dict[str, Any]],
        minutes: int,
        gpu: bool,
        extra: list[str] | None = None,
        outputs: Path | None = None,
    ) -> SlurmJob:
        base = self.folder / name
        events, exit_file = base.with_suffix(".events"), base.with_suffix(".exit.json")
        recorded = base.with_suffix(".jobid")
        alive = {i: s for i, s in job_states(name).items() if s in ALIVE}
        if alive:
            return SlurmJob(min(alive, key=int), name, events, exit_file, True, outputs)
        ended_id = ended_job_id(exit_file, recorded)
        if ended_id is not None:
            # It ended while no harness followed it: take its outcome, do not run it again.
            return SlurmJob(ended_id, name, events, exit_file, True, outputs)
        self.folder.mkdir(parents=True, exist_ok=True)
        events.unlink(missing_ok=True)
        exit_file.unlink(missing_ok=True)
        self._ready(name).unlink(missing_ok=True)
        spec = base.with_suffix(".launch.json")
        doc = body() | {"events": str(events), "exit": str(exit_file)}
        atomic_write_text(spec, json.dumps(doc, indent=1) + "\n")
        script = base.with_suffix(".sh")
        atomic_write_text(
            script,
            "#!/bin/bash\n"
            f"export PYTHONPATH={PACKAGE_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}\n"
            'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"\n'
            f"exec {sys.executable} -m harness.executors.node {spec}\n",
        )
        args = [
            "sbatch",
            "--parsable",
            f"--job-name={name}",
            f"--output={base.with_suffix('.out')}",
            f"--chdir={self.folder}",
            f"--time={minutes}",
            *(["--gres=gpu:1"] if gpu else []),
            *(extra or []),
            *self.sbatch_args,
            str(script),
        ]
        job_id = _slurm(args).strip().split(";")[0]
        atomic_write_text(recorded, job_id + "\n")
        return SlurmJob(job_id, name, events, exit_file, False, outputs)


def ended_job_id(exit_file: Path, recorded: Path) -> str | None:
    """The job ID of a job whose node wrote its exit file, from the file itself (the node puts
    $SLURM_JOB_ID there) or, for an exit file from before that, from the .jobid file."""
    if not exit_file.is_file():
        return None
    with contextlib.suppress(ValueError):
        job_id = json.loads(exit_file.read_text()).get("job_id")
        if job_id:
            return str(job_id)
    return recorded.read_text().strip() if recorded.is_file() else None


def sbatch_args_from_env() -> tuple[str, ...]:
    """$INPAINT_SLURM_ARGS: extra sbatch arguments for every job (partition, account, CPUs)."""
    return tuple(os.environ.get("INPAINT_SLURM_ARGS", "").split())
