"""The one-node Slurm of CI (.ci/slurm-setup.sh) runs batch jobs: the ground the Slurm
executor's tests stand on."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from slurmhost import job_state, slurm_conf, wait_finished


def test_the_one_node_cluster_runs_a_batch_job_with_its_resources(tmp_path: Path) -> None:
    slurm_conf()
    script = tmp_path / "job.sh"
    script.write_text('#!/bin/bash\necho "$SLURM_JOB_ID $SLURM_CPUS_ON_NODE" > out.txt\n')
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--chdir", str(tmp_path), "--cpus-per-task", "1", str(script)],
        capture_output=True,
        text=True,
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    assert wait_finished(job_id) == "COMPLETED"
    seen_id, cpus = (tmp_path / "out.txt").read_text().split()
    assert seen_id == job_id
    assert 1 <= int(cpus) <= len(os.sched_getaffinity(0))


def test_a_job_waits_for_its_dependency(tmp_path: Path) -> None:
    slurm_conf()
    gate = tmp_path / "gate"
    first = tmp_path / "first.sh"
    # The first job holds until the test opens the gate: the second must stay pending until then.
    first.write_text(
        f"#!/bin/bash\nwhile [ ! -e {gate} ]; do sleep 0.1; done\necho one > one.txt\n"
    )
    second = tmp_path / "second.sh"
    second.write_text("#!/bin/bash\ncat one.txt > two.txt\n")

    def sbatch(*args: str) -> str:
        done = subprocess.run(
            ["sbatch", "--parsable", "--chdir", str(tmp_path), *args],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().split(";")[0]

    one = sbatch(str(first))
    two = sbatch(f"--dependency=afterok:{one}", str(second))
    assert job_state(two) == "PENDING"
    gate.touch()
    assert wait_finished(one) == "COMPLETED"
    assert wait_finished(two) == "COMPLETED"
    assert (tmp_path / "two.txt").read_text() == "one\n"
