"""The node side of `--executor slurm`: run one launch through the local runner inside a Slurm
job, with the job's events going to a file the login-node harness follows.

    python -m harness.executors.node RUN_DIR/slurm/<name>.launch.json

Writes RUN_DIR/slurm/<name>.events (created first thing, as the sign that this node sees the run
folder; then the job's stdout, appended as it comes) and, when the job has ended,
RUN_DIR/slurm/<name>.exit.json (exit code, data-mount changes, $SLURM_JOB_ID: a rerun adopts the
job by it even if the login node died before recording the ID) by atomic rename.
Never touches the ledger: the login-node harness is its only writer. SIGTERM (`scancel -b -s
TERM`, sent by the harness at budget + grace) is passed on to the job's process group.
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
from harness.runners.base import Launch, Limits, Mounts
from harness.runners.local import LocalRunner


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


def node_gpu(requested: int | None) -> int | None:
    """The GPU Slurm gave this job (its first CUDA_VISIBLE_DEVICES entry), if one was asked."""
    if requested is None:
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0]
    return int(visible) if visible.isdigit() else requested


def main(spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    launch = launch_from_json(spec["launch"])
    launch = dataclasses.replace(launch, gpu=node_gpu(launch.gpu))
    events = Path(spec["events"])
    events.touch()
    job_id = {"job_id": os.environ.get("SLURM_JOB_ID")}
    runner = LocalRunner({k: Path(v) for k, v in spec["upstream"].items()})
    try:
        process = runner.start(launch)
    except Exception as error:  # e.g. the model's venv cannot be made on this node
        traceback.print_exc()  # into the Slurm job's --output file
        exit_info = {
            "exit_code": 1,
            "data_changes": [],
            "error": f"{type(error).__name__}: {error}",
        } | job_id
        atomic_write_text(Path(spec["exit"]), json.dumps(exit_info) + "\n")
        return 1

    def pass_on(signum: int, frame: object) -> None:
        print(f"node: {signal.Signals(signum).name} passed on to the job", file=sys.stderr)
        process.send_signal(signum)

    signal.signal(signal.SIGTERM, pass_on)
    try:
        with open(events, "ab") as out:
            for chunk in process.stdout_chunks():
                out.write(chunk)
                out.flush()
        code = process.wait(None)
        changes = process.data_changes()
    finally:
        process.cleanup()
    atomic_write_text(
        Path(spec["exit"]), json.dumps({"exit_code": code, "data_changes": changes} | job_id) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
