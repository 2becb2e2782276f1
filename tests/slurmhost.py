"""The one-node Slurm the Slurm tests need, or a skip saying why.

CI (`.ci/slurm-setup.sh`) starts munge, slurmctld and slurmd on this machine and exports
$SLURM_CONF; elsewhere these tests skip with the reason (and CI turns any such skip into a
failure).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

# How long a one-CPU job may wait and run on the test cluster before the test fails (a stuck
# cluster), not a timing: every wait below ends as soon as the state it waits for is seen.
STUCK_S = 300.0
USABLE = {"idle", "mix", "alloc"}  # sinfo's compact states of a node that takes jobs
SETTLING = {"comp", "unk"}  # completing a job, or not yet registered: usable soon
FLAGS = "*~#!%$@^-"  # what sinfo appends to a state: not responding, powered down, ...
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def slurm_conf() -> Path:
    """The cluster's slurm.conf, or skip the calling test with the reason."""
    if shutil.which("sbatch") is None:
        pytest.skip(
            "no Slurm here (sbatch): run `export SLURM_CONF=$(.ci/slurm-setup.sh | tail -1)`"
        )
    conf = os.environ.get("SLURM_CONF")
    if not conf or not Path(conf).is_file():
        pytest.skip("set SLURM_CONF to a running cluster's slurm.conf (.ci/slurm-setup.sh)")
    deadline = time.monotonic() + STUCK_S
    while True:
        states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
        seen = set(states.stdout.split())
        if states.returncode == 0 and USABLE & seen:
            return Path(conf)
        # A node still completing an earlier test's job (Slurm kills what is left of it, which
        # can take KillWait) or still registering takes jobs again once it is done: wait for it.
        settling = {state.rstrip(FLAGS) for state in seen} & SETTLING
        if states.returncode != 0 or not settling or time.monotonic() >= deadline:
            waited = f" after {STUCK_S:g} s" if settling else ""
            found = states.stdout.strip() or states.stderr.strip()
            pytest.skip(f"{conf}: no node takes jobs{waited} (sinfo: {found})")
        time.sleep(0.5)


def job_state(job_id: str) -> str:
    """The job's state as slurmctld reports it (kept for MinJobAge after it ends)."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    )
    fields = dict(f.split("=", 1) for f in shown.stdout.split() if "=" in f)
    return fields["JobState"]


def wait_finished(job_id: str) -> str:
    deadline = time.monotonic() + STUCK_S
    while (state := job_state(job_id)) not in FINISHED:
        assert time.monotonic() < deadline, f"job {job_id} still {state} after {STUCK_S} s"
        time.sleep(0.2)
    return state
