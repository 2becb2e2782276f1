"""The local runner: the image folder's entrypoint as a subprocess in a per-model virtualenv.

Same job spec, events and budget as the docker runner, for hosts without Docker and the bare-CPU
default; its environments (one shared torch, a thin venv per model) are harness.runners.envs.
The contract's mounts become host folders named by the INPAINT_* variables; the data mount is a
folder of symlinks holding only what the job needs. It is no sandbox: the docker
runner is the one that enforces read-only data, no network and dropped privileges. What it does
do: runtime.memory becomes RLIMIT_DATA on CPU jobs (an allocation past it fails), and a write
into the data mount is found after the job, undone where it created something, and fails the job.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import resource
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.contract import (
    CONTRACTS_ENV,
    ENV_CHECKPOINTS,
    ENV_DATA,
    ENV_JOB,
    ENV_OUTPUTS,
    contracts_dir,
)
from harness.errors import HarnessError
from harness.images import SDK_DIR, ImageFolder
from harness.progress import Reporter, SilentReporter
from harness.runners.base import Launch
from harness.runners.envs import venv_for

log = logging.getLogger(__name__)
_MOUNT_VARIABLES = {
    ENV_DATA,
    ENV_JOB,
    ENV_CHECKPOINTS,
    ENV_OUTPUTS,
    "INPAINT_UPSTREAM",
    "INPAINT_CONTRACTS",
}


def stage_data(mounts: dict[str, Path], stage: Path) -> Path:
    """A folder of one symlink per data mount, so $INPAINT_DATA/<name> resolves as in Docker."""
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for name, target in mounts.items():
        link = stage / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(target).resolve(), target_is_directory=True)
    return stage


PR_SET_PDEATHSIG = 1


@functools.cache
def _libc() -> Any:
    """libc for prctl, loaded in the harness: the child between fork and exec should do little."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


def _detach_and_die_with_parent(parent: int, libc: Any) -> None:
    """In the child before exec: own process group; SIGKILL if the harness dies (even kill -9)."""
    os.setsid()
    if libc is not None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # A harness killed between the fork and the prctl sends no signal: the job would run on as an
    # orphan. Its parent is then no longer the harness, so the child takes the signal itself.
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def _child_setup(memory_bytes: int | None) -> Callable[[], None]:
    parent, libc = os.getpid(), _libc()

    def setup() -> None:
        _detach_and_die_with_parent(parent, libc)
        if memory_bytes is not None:
            # RLIMIT_DATA, not RLIMIT_AS: malloc arenas and thread stacks reserve far more address
            # space than they use, so an AS limit would fail healthy multi-threaded jobs.
            resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))

    return setup


Snapshot = dict[str, tuple[int, int, int]]


def snapshot_data(stage: Path) -> tuple[Snapshot, dict[str, Path]]:
    """(inode, size, mtime) of every entry the data mount shows, keyed by its path there, and
    where each key really lives; the stage's links are followed one level, as the job sees them."""
    seen: Snapshot = {}
    where: dict[str, Path] = {}
    roots: list[tuple[str, Path]] = [("", stage)]
    while roots:
        prefix, root = roots.pop()
        for folder, dirs, files in os.walk(root):
            for entry in (*dirs, *files):
                path = Path(folder) / entry
                try:
                    info = path.lstat()
                except OSError:
                    continue
                rel = str(path.relative_to(root))
                key = f"{prefix}/{rel}" if prefix else rel
                where[key] = path
                if stat.S_ISDIR(info.st_mode):
                    # a directory's times change with its entries, which are compared anyway
                    seen[key] = (info.st_ino, -1, -1)
                    continue
                seen[key] = (info.st_ino, info.st_size, info.st_mtime_ns)
                if not prefix and stat.S_ISLNK(info.st_mode) and path.is_dir():
                    roots.append((key, path.resolve()))
    return seen, where


class LocalProcess:
    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        log_handle: object,
        memory_limit: int | None = None,
        stage: Path | None = None,
        before: Snapshot | None = None,
    ) -> None:
        self.popen = popen
        self._log = log_handle
        self.memory_limit = memory_limit
        self._stage = stage
        self._before = before or {}

    def data_changes(self) -> list[str]:
        """What the job did to its data mount, which is read-only only by contract here (no
        sandbox). Entries it created are removed again; changed or deleted ones are reported."""
        if self._stage is None:
            return []
        self.send_signal(signal.SIGKILL)  # leftover children must not write while we look
        after, where = snapshot_data(self._stage)
        changes: list[str] = []
        removed: list[str] = []
        for key in sorted(set(after) - set(self._before)):
            if any(key.startswith(f"{gone}/") for gone in removed):
                continue  # inside a folder it created, removed with it
            path = where[key]
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as error:
                changes.append(f"created $INPAINT_DATA/{key} (could not remove it: {error})")
            else:
                removed.append(key)
                changes.append(f"created $INPAINT_DATA/{key} (removed again)")
        for key in sorted(set(self._before) - set(after)):
            changes.append(f"deleted $INPAINT_DATA/{key}")
        for key in sorted(set(self._before) & set(after)):
            if self._before[key] != after[key]:
                changes.append(f"changed $INPAINT_DATA/{key}")
        return changes

    def stdout_chunks(self) -> Iterator[bytes]:
        assert self.popen.stdout is not None
        while chunk := self.popen.stdout.read1(65536):  # type: ignore[attr-defined]
            yield chunk

    def send_signal(self, signum: int) -> None:
        # The whole process group: data-loader workers must stop too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)

    def wait(self, timeout: float | None) -> int | None:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def oom_killed(self) -> bool:
        return False

    def cleanup(self) -> None:
        if self.popen.poll() is None:
            self.send_signal(signal.SIGKILL)
            self.popen.wait()
        else:
            # Leftover children of a finished leader still hold the group.
            self.send_signal(signal.SIGKILL)
        if self.popen.stdout:
            self.popen.stdout.close()
        self._log.close()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class _PlainFolder:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


class LocalRunner:
    name = "local"

    def __init__(
        self, upstream_src: dict[str, Path] | None = None, reporter: Reporter | None = None
    ) -> None:
        self.upstream_src = upstream_src or {}
        self.reporter = reporter or SilentReporter(quiet=True)

    def upstream_for(self, model: str, folder: ImageFolder) -> Path | None:
        """The override for this model, else a verified clone at the pinned commit (cached)."""
        from harness.builder import upstream_checkout

        override = self.upstream_src.get(model) or self.upstream_src.get(folder.name)
        return upstream_checkout(folder, override, self.reporter, model)

    def unavailable(self, model: str, folder: ImageFolder) -> str | None:
        """Why the model cannot run locally: its upstream source cannot be had."""
        try:
            self.upstream_for(model, folder)
        except HarnessError as error:
            return f"{error.message} ({error.hint})" if error.hint else error.message
        return None

    def start(self, launch: Launch) -> LocalProcess:
        if launch.command == "score":
            # The metrics image folder: no model manifest, no upstream; `score.py JOB`.
            folder: Any = _PlainFolder(Path(launch.image).resolve())
            entry = ["python", "score.py"]
            upstream = None
        else:
            folder = ImageFolder.at(launch.image)
            entry = list(folder.manifest["entrypoint"])
            upstream = self.upstream_for(launch.model, folder)
        venv = venv_for(folder, self.reporter)
        stage = stage_data(
            {name: Path(path).resolve() for name, path in launch.mounts.data.items()},
            launch.mounts.outputs.resolve().parent
            / ".data-stage"
            # the step's key too: jobs side by side (several slots) share the parent folder
            / f"{launch.model}-{launch.command}-{launch.key[:12]}-{os.getpid()}",
        )
        for path in (launch.mounts.checkpoints, launch.mounts.outputs):
            path.mkdir(parents=True, exist_ok=True)
        python_path = [str(SDK_DIR)]
        env = {
            # The harness's own mount variables are replaced; others (e.g. test switches) pass.
            **{k: v for k, v in os.environ.items() if k not in _MOUNT_VARIABLES},
            ENV_DATA: str(stage),
            ENV_JOB: str(launch.mounts.job.resolve()),
            ENV_CHECKPOINTS: str(launch.mounts.checkpoints.resolve()),
            ENV_OUTPUTS: str(launch.mounts.outputs.resolve()),
            "INPAINT_CONTRACTS": str(contracts_dir()),
            CONTRACTS_ENV: str(contracts_dir()),
            "PYTHONPATH": os.pathsep.join(python_path),
            **({"INPAINT_UPSTREAM": str(Path(upstream).resolve())} if upstream else {}),
            "PYTHONUNBUFFERED": "1",
            "CUDA_VISIBLE_DEVICES": "" if launch.gpu is None else str(launch.gpu),
            **launch.env,
        }
        if entry and entry[0] in ("python", "python3"):
            entry[0] = str(venv / "bin" / "python")
        command = [] if launch.command == "score" else [launch.command]
        argv = [*entry, *command, str(launch.mounts.job.resolve())]
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_handle = open(launch.log_path, "ab")  # noqa: SIM115 - closed in cleanup()
        log.debug("local: %s (cwd %s)", argv, folder.path)
        # CUDA maps far more private memory than it uses: a GPU job gets no data limit.
        memory = launch.limits.memory_bytes if launch.gpu is None else None
        before = snapshot_data(stage)  # taken before the job can touch anything
        popen = subprocess.Popen(
            argv,
            cwd=folder.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_handle,
            stdin=subprocess.DEVNULL,
            preexec_fn=_child_setup(memory),
        )
        return LocalProcess(popen, log_handle, memory, stage, before[0])
