"""The docker runner's sandbox as data: a pure function from a launch to a container spec.

Defaults: no network, read-only root with a size-limited tmpfs /tmp, the invoking user's
uid:gid, all capabilities dropped, no-new-privileges, pids/memory/shm limits, data and job
read-only. A
default is relaxed only through an explicit `Relaxations` setting, which the caller logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import Runtime
from harness.contract import (
    CHECKPOINTS_MOUNT,
    DATA_MOUNT,
    ENV_CHECKPOINTS,
    ENV_DATA,
    ENV_JOB,
    ENV_OUTPUTS,
    JOB_PATH,
    OUTPUTS_MOUNT,
)
from harness.runners.base import Launch

LABEL_RUN = "dev.inpaint-bench.run"
LABEL_JOB = "dev.inpaint-bench.job"


@dataclass(frozen=True)
class Relaxations:
    """Explicit exceptions to the sandbox defaults (each one is logged when used)."""

    network: bool = False
    writable_root: bool = False
    keep_capabilities: bool = False
    run_as_root: bool = False

    def active(self) -> list[str]:
        return [name for name, on in vars(self).items() if on]


@dataclass(frozen=True)
class BindMount:
    source: Path
    target: str
    read_only: bool


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    name: str
    command: list[str]
    mounts: list[BindMount]
    user: str
    environment: dict[str, str]
    network_disabled: bool
    read_only: bool
    tmpfs: dict[str, str]
    cap_drop: list[str]
    security_opt: list[str]
    mem_limit: int
    shm_size: int
    pids_limit: int
    init: bool = True
    gpu: int | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for docker-py's `containers.create` (minus device requests)."""
        return {
            "image": self.image,
            "name": self.name,
            "command": self.command,
            "volumes": {
                str(m.source): {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                for m in self.mounts
            },
            "user": self.user,
            "environment": self.environment,
            "network_disabled": self.network_disabled,
            "network_mode": "none" if self.network_disabled else "bridge",
            "read_only": self.read_only,
            "tmpfs": self.tmpfs,
            "cap_drop": self.cap_drop,
            "security_opt": self.security_opt,
            "mem_limit": self.mem_limit,
            # memswap equal to memory: no swap, so the memory limit is real
            "memswap_limit": self.mem_limit,
            "shm_size": self.shm_size,
            "pids_limit": self.pids_limit,
            "init": self.init,
            "labels": self.labels,
            "detach": True,
        }


NOBODY = (65534, 65534)


def container_user() -> tuple[int, int]:
    """The invoking user's uid:gid; when that is root, `nobody`, so no container runs as root
    (the runner hands the writable mounts to it and takes them back afterwards)."""
    uid, gid = os.getuid(), os.getgid()
    return NOBODY if uid == 0 else (uid, gid)


def container_name(run_id: str, job_key: str) -> str:
    """Deterministic, so a rerun after a harness crash finds and removes a leftover container."""
    return f"inpaint-bench-{run_id[:12]}-{job_key[:12]}"


def container_spec(
    launch: Launch,
    image: str,
    runtime: Runtime,
    run_id: str,
    job_key: str,
    relax: Relaxations = Relaxations(),
    uid_gid: tuple[int, int] | None = None,
) -> ContainerSpec:
    uid, gid = uid_gid if uid_gid is not None else container_user()
    mounts = [
        BindMount(Path(src).resolve(), f"{DATA_MOUNT}/{name}", True)
        for name, src in sorted(launch.mounts.data.items())
    ]
    job_dir = launch.mounts.job.resolve().parent
    mounts += [
        # The job's folder, read-only; the job file must be called job.json there.
        BindMount(job_dir, str(Path(JOB_PATH).parent), True),
        BindMount(launch.mounts.checkpoints.resolve(), CHECKPOINTS_MOUNT, False),
        BindMount(launch.mounts.outputs.resolve(), OUTPUTS_MOUNT, False),
    ]
    environment = {
        ENV_DATA: DATA_MOUNT,
        ENV_JOB: JOB_PATH,
        ENV_CHECKPOINTS: CHECKPOINTS_MOUNT,
        ENV_OUTPUTS: OUTPUTS_MOUNT,
        "HOME": "/tmp",
        "PYTHONUNBUFFERED": "1",
        **launch.env,
    }
    return ContainerSpec(
        image=image,
        name=container_name(run_id, job_key),
        # The metrics image takes only the job; model images take the command, then the job.
        command=[JOB_PATH] if launch.command == "score" else [launch.command, JOB_PATH],
        mounts=mounts,
        user="0:0" if relax.run_as_root else f"{uid}:{gid}",
        environment=environment,
        network_disabled=not relax.network,
        read_only=not relax.writable_root,
        # Sized, so a model that fills /tmp gets ENOSPC instead of eating the host's memory.
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={runtime.tmp_bytes}"},
        cap_drop=[] if relax.keep_capabilities else ["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit=runtime.memory_bytes,
        shm_size=runtime.shm_bytes,
        pids_limit=runtime.pids_limit,
        gpu=launch.gpu,
        labels={LABEL_RUN: run_id, LABEL_JOB: job_key},
    )
