"""A Slurm job's own job file and outputs folder, where a rerun of the harness cannot wipe them.

The steps prepare each attempt in a fresh work folder (the old one removed, predictions going to
`outputs-<attempt>`), which is right for a job that died with the harness. A Slurm job outlives
the harness, and its rerun adopts it: had the job used the step's work folder, the rerun would
have removed its job file and outputs (running or ended) and looked for them under the new
attempt's name. So the node runs the job on a copy of its job file in
RUN_DIR/slurm/<name>.job/job.json and with its outputs in RUN_DIR/slurm/<name>.outputs, and
when the job has ended the harness that follows it (the submitter, or the rerun that adopted it)
moves the outputs into the folder its own launch names.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from harness.data.atomic import atomic_write_text
from harness.runners.base import Launch


def job_folders(base: Path) -> tuple[Path, Path]:
    """(job file, outputs folder) of the Slurm job RUN_DIR/slurm/<name> = base."""
    return base.with_suffix(".job") / "job.json", base.with_suffix(".outputs")


def _moved(value: Any, old: str, new: str) -> Any:
    """`value` with every path string under `old` moved under `new`."""
    if isinstance(value, str) and (value == old or value.startswith(old + "/")):
        return new + value[len(old) :]
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    return value


def on_own_folders(launch: Launch, base: Path) -> Launch:
    """The launch the node runs: its job file copied, its outputs folder the job's own. A job
    file that names the outputs folder itself (the metrics job under a host runner writes its
    CSVs to the path in it) names the job's own folder in the copy."""
    job, outputs = job_folders(base)
    shutil.rmtree(outputs, ignore_errors=True)
    outputs.mkdir(parents=True)
    doc = json.loads(launch.mounts.job.read_text())
    doc = _moved(doc, str(launch.mounts.outputs.resolve()), str(outputs.resolve()))
    job.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(job, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    mounts = dataclasses.replace(launch.mounts, job=job, outputs=outputs)
    return dataclasses.replace(launch, mounts=mounts)


def hand_over_outputs(base: Path, outputs: Path) -> None:
    """Move the ended job's outputs into `outputs`, the folder the following harness's launch
    names (what is there under the same names is replaced). Idempotent."""
    _, own = job_folders(base)
    if not own.is_dir():
        return
    outputs.mkdir(parents=True, exist_ok=True)
    for entry in own.iterdir():
        target = outputs / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        entry.replace(target)
    own.rmdir()
