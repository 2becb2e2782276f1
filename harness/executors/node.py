"""The node side of `--executor slurm`: run one launch inside a Slurm job through the runner
the login node chose (local, or docker: node_runners.py), with the job's events going to a
file the login-node harness follows; or build the run's report.

    python -m harness.executors.node RUN_DIR/slurm/<name>.launch.json

Writes RUN_DIR/slurm/<name>.events (created first thing, as the sign that this node sees the run
folder; then the job's stdout, appended as it comes) and, when the job has ended,
RUN_DIR/slurm/<name>.exit.json (exit code, data-mount changes or why the node could not start
it, and $SLURM_JOB_ID: a rerun adopts the job by it even if the login node died before recording
the ID) by atomic rename. Never writes the ledger: the login-node harness is its only writer (the
report job reads it read-only). SIGTERM (`scancel -b -s TERM`, sent by the harness at budget +
grace) is passed on to the job; SIGUSR1 (sent by the harness before it cancels the job) kills it,
which a container needs: the Docker engine runs it outside the Slurm job, where Slurm's own
SIGKILL does not reach.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from harness.data.atomic import atomic_write_text
from harness.errors import HarnessError
from harness.executors.node_report import job_id, report_main
from harness.executors.node_runners import runner_on_node
from harness.runners.base import Launch, Limits, Mounts


def launch_to_json(launch: Launch) -> dict[str, Any]:
    """A launch as JSON: paths as strings (the run folder is on a filesystem nodes share)."""
    return {
        "model": launch.model,
        "image": launch.image,
        "command": launch.command,
        "mounts": {
            "data": {k: str(v) for k, v in launch.mounts.data.items()},
            "job": str(launch.mounts.job),
            "checkpoints": str(launch.mounts.checkpoints),
            "outputs": str(launch.mounts.outputs),
        },
        "limits": {
            "setup_cap_s": launch.limits.setup_cap_s,
            "budget_s": launch.limits.budget_s,
            "grace_s": launch.limits.grace_s,
            "memory_bytes": launch.limits.memory_bytes,
            "cap_setting": launch.limits.cap_setting,
        },
        "log_path": str(launch.log_path),
        "gpu": launch.gpu,
        "env": launch.env,
        "key": launch.key,
        "run_id": launch.run_id,
    }


def launch_from_json(doc: dict[str, Any]) -> Launch:
    mounts = doc["mounts"]
    return Launch(
        model=doc["model"],
        image=doc["image"],
        command=doc["command"],
        mounts=Mounts(
            {k: Path(v) for k, v in mounts["data"].items()},
            Path(mounts["job"]),
            Path(mounts["checkpoints"]),
            Path(mounts["outputs"]),
        ),
        limits=Limits(**doc["limits"]),
        log_path=Path(doc["log_path"]),
        gpu=doc["gpu"],
        env=doc["env"],
        key=doc["key"],
        run_id=doc["run_id"],
    )


def node_gpu(requested: int | None, runner: str = "local") -> int | None:
    """The GPU Slurm gave this job, if one was asked, as the runner must name it. A local
    process sees the job's own numbering (CUDA_VISIBLE_DEVICES, relative to the job's devices
    where Slurm constrains them); the Docker engine runs outside the job's device cgroup, so a
    container's device request names the node's own index (SLURM_JOB_GPUS, never relative)."""
    if requested is None:
        return None
    names = ["CUDA_VISIBLE_DEVICES"]
    if runner == "docker":
        names.insert(0, "SLURM_JOB_GPUS")
    for name in names:
        first = os.environ.get(name, "").split(",")[0]
        if first.isdigit():
            return int(first)
    return requested


def _failed(spec: dict[str, Any], error: Exception) -> int:
    """The job could not start (no venv, no docker, no image on this node): its exit file says
    why, and the harness takes that as the step's reason."""
    traceback.print_exc()  # into the Slurm job's --output file
    message = str(error) if isinstance(error, HarnessError) else f"{type(error).__name__}: {error}"
    exit_info = {"exit_code": 1, "data_changes": [], "error": message} | job_id()
    atomic_write_text(Path(spec["exit"]), json.dumps(exit_info) + "\n")
    return 1


def main(spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    Path(spec["events"]).touch()
    if "report" in spec:
        return report_main(spec)
    launch = launch_from_json(spec["launch"])
    launch = dataclasses.replace(launch, gpu=node_gpu(launch.gpu, spec.get("runner", "local")))
    events = Path(spec["events"])
    try:
        process = runner_on_node(spec, launch.image).start(launch)
    except Exception as error:  # e.g. the model's venv cannot be made on this node
        return _failed(spec, error)

    def pass_on(signum: int, frame: object) -> None:
        print(f"node: {signal.Signals(signum).name} passed on to the job", file=sys.stderr)
        process.send_signal(signum)

    def kill(signum: int, frame: object) -> None:
        print("node: the harness cancels the job: killed", file=sys.stderr)
        process.send_signal(signal.SIGKILL)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGUSR1, kill)
    try:
        with open(events, "ab") as out:
            for chunk in process.stdout_chunks():
                out.write(chunk)
                out.flush()
        code = process.wait(None)
        # A container cannot write its read-only mounts; a local process can (and is caught).
        changes: list[str] = getattr(process, "data_changes", list)()
        oom = process.oom_killed()  # the container's memory limit, before it is removed
    finally:
        process.cleanup()
    exit_info = {"exit_code": code, "data_changes": changes, "oom_killed": oom} | job_id()
    atomic_write_text(Path(spec["exit"]), json.dumps(exit_info) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
