"""`run --executor slurm --runner docker`: each job runs on its node through the docker runner,
in the image the login node built; a node without the image (or without docker) fails the job
with the node, the image and what to do; a GPU job's device request names the node's own GPU
index from Slurm's allocation."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from datatree import tiny_run_args, write_tiny_benchmark
from dockerhost import engine_and_base
from runs import FAULTY
from slurmhost import STUCK_S, slurm_conf

from harness.errors import DockerUnavailable
from harness.executors import node_runners
from harness.executors.node import node_gpu
from harness.runners.sandbox import LABEL_RUN

BIN = Path(sys.executable).parent / "inpaint-bench"
CLASSICAL = Path(__file__).resolve().parents[1] / "images" / "classical"


def test_a_container_names_the_nodes_gpu_a_local_process_the_jobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Slurm constrained the job to the node's GPU 2, which the job itself sees as its 0.
    monkeypatch.setenv("SLURM_JOB_GPUS", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert node_gpu(0, "docker") == 2  # the engine runs outside the job's device cgroup
    assert node_gpu(0, "local") == 0
    assert node_gpu(None, "docker") is None
    monkeypatch.delenv("SLURM_JOB_GPUS")
    assert node_gpu(0, "docker") == 0


def test_a_node_without_docker_fails_the_job_naming_the_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("docker")
    monkeypatch.setenv("SLURMD_NODENAME", "gpu17")
    from harness.runners import docker as docker_runner

    monkeypatch.setattr(docker_runner, "engine_problem", lambda: "no Docker engine answers")
    settings = {"runtime": {}, "relax": {}}
    with pytest.raises(DockerUnavailable) as raised:
        node_runners.docker_on_node("inpaint-bench/classical:abc", settings, {})
    message = str(raised.value)
    assert "node gpu17: no Docker engine answers" in message
    assert "inpaint-bench/classical:abc" in message and "--runner local" in message


@pytest.mark.docker
def test_a_node_without_the_image_fails_the_job_saying_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine_and_base()
    monkeypatch.setenv("SLURMD_NODENAME", "gpu17")
    image = "inpaint-bench/classical:not-built-on-this-node"
    with pytest.raises(DockerUnavailable) as raised:
        node_runners.docker_on_node(image, {"runtime": {}, "relax": {}}, {})
    assert raised.value.message == f"node gpu17: image {image} is not in this node's Docker engine"
    assert "inpaint-bench images build" in str(raised.value.hint)
    assert f"docker save {image} | ssh gpu17 docker load" in str(raised.value.hint)
    assert "--runner local" in str(raised.value.hint)


def predictions(run_dir: Path) -> dict[str, bytes]:
    files = sorted((run_dir / "predictions").rglob("*.png"))
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in files}


def ledger(run_dir: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{run_dir / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.mark.docker
@pytest.mark.slow
def test_slurm_jobs_run_in_the_docker_image_and_match_a_local_docker_run(tmp_path: Path) -> None:
    slurm_conf()
    _, base = engine_and_base()
    env = {
        **os.environ,
        "INPAINT_BENCH_BASE_IMAGE": base,
        "INPAINT_BENCH_BUILD_ARGS": "BAKE_WEIGHTS=0",
        "INPAINT_RANDOM_LOSS_WEIGHTS": "1",
    }
    models = {"classical": {"image": str(CLASSICAL), "batch_size": 1}}
    config = write_tiny_benchmark(tmp_path, models, train=(2, 1), test=3)

    def run(run_dir: Path, *extra: str) -> None:
        argv = [str(BIN), *tiny_run_args(config, run_dir, "docker"), "-q", "--no-score", *extra]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=STUCK_S)
        assert done.returncode == 0, done.stdout + done.stderr

    run(tmp_path / "host")
    run(tmp_path / "slurm", "--executor", "slurm")

    slurm_dir = tmp_path / "slurm"
    assert predictions(slurm_dir) == predictions(tmp_path / "host") and predictions(slurm_dir)
    jobs = ledger(
        slurm_dir,
        "SELECT s.kind, j.job_id FROM external_jobs j JOIN steps s ON s.key = j.step_key",
    )
    assert sorted(kind for kind, _ in jobs) == ["describe", "predict", "train"]
    built = json.loads((slurm_dir / "run.json").read_text())["images"]["classical"]
    for kind, job_id in jobs:  # each ran on the node, in the image the login node built
        (spec,) = slurm_dir.glob(f"slurm/done/ib-*-{kind}.launch.json.{job_id}")
        doc = json.loads(spec.read_text())
        assert doc["runner"] == "docker"
        image = doc["launch"]["image"]
        assert image.startswith("inpaint-bench/classical:")
        inspected = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Id}}", image], capture_output=True, text=True
        )
        assert inspected.stdout.strip() == built["docker_image"]


@pytest.mark.docker
@pytest.mark.slow
def test_a_container_over_its_budget_on_a_node_gets_sigterm_then_is_killed(
    tmp_path: Path,
) -> None:
    # The container runs under the Docker engine, outside the Slurm job: Slurm's own SIGKILL
    # would not reach it, the node's kill on the harness's SIGUSR1 does.
    slurm_conf()
    _, base = engine_and_base()
    env = {**os.environ, "INPAINT_BENCH_BASE_IMAGE": base}
    fault = {"fault": "ignore_sigterm"}
    models = {"m0": {"image": str(FAULTY), "batch_size": 1, "hyperparameters": fault}}
    runtime = {"grace": "3s", "setup_cap": "2m"}
    config = write_tiny_benchmark(tmp_path, models, train=(2, 1), test=1, runtime=runtime)
    run_dir = tmp_path / "run"
    argv = [str(BIN), *tiny_run_args(config, run_dir, "docker"), "-q", "--no-score"]
    done = subprocess.run(
        [*argv, "--executor", "slurm"], env=env, capture_output=True, text=True, timeout=STUCK_S
    )
    assert done.returncode == 1, done.stdout + done.stderr
    ((reason, result),) = ledger(run_dir, "SELECT reason, result FROM steps WHERE kind = 'train'")
    assert reason.startswith("ignored SIGTERM for 3 s after its budget: killed"), reason
    assert json.loads(result)["signals"] == ["SIGTERM", "SIGKILL"]
    (out,) = run_dir.glob("slurm/done/ib-*-train.out.*")
    assert "node: the harness cancels the job: killed" in out.read_text()
    run_id = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:12]
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL_RUN}={run_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout == ""  # no container outlived its job
