"""Real containers on a real engine: validate, an end-to-end run, the budget kill, the sandbox.

These run wherever a Docker engine answers and an offline-capable base image is named by
$INPAINT_BENCH_BASE_IMAGE (`.ci/docker-setup.sh` builds one; CI sets it). Otherwise they skip.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from dockerhost import engine_and_base
from runs import REPO, faulty, reference, tiny_run_profile

from harness.config import Runtime
from harness.conformance import Conformance
from harness.ledger import Ledger
from harness.pipeline import Pipeline
from harness.progress import SilentReporter
from harness.runners.base import Launch, Limits, Mounts
from harness.runners.sandbox import container_user

pytestmark = pytest.mark.docker
docker = pytest.importorskip("docker")

from harness.runners.docker import DockerRunner  # noqa: E402

PROBE = REPO / "tests" / "fixtures" / "images" / "probe"


@pytest.fixture(scope="module")
def runner() -> DockerRunner:
    client, base = engine_and_base()
    return DockerRunner(reporter=SilentReporter(quiet=True), client=client, base_image=base)


@pytest.mark.parametrize("model", ["classical", "gatedconv"])
def test_reference_images_pass_validate_in_the_sandbox(
    runner: DockerRunner, model: str, tmp_path: Path
) -> None:
    report = Conformance(str(REPO / "images" / model), runner, tmp_path).run()
    checks = {c.name: (c.status, c.detail) for c in report.checks}
    assert report.passed, checks
    sandbox = checks["works with no network, a read-only root and an arbitrary uid"]
    assert sandbox[0] == "pass", sandbox


def test_end_to_end_run_train_predict_score(runner: DockerRunner, tmp_path: Path) -> None:
    profile = tiny_run_profile(tmp_path, [reference("gatedconv", 4.0)], size=32)
    summary = Pipeline(profile, tmp_path / "run", runner, SilentReporter(quiet=True)).run()
    assert not summary.failed, [(s.label, s.reason) for s in summary.failed]
    kinds = {s.kind for s in summary.steps}
    assert {"train", "predict", "score"} <= kinds
    with Ledger.in_run_dir(tmp_path / "run") as ledger:
        train = next(s for s in ledger.steps("train"))
        rows = ledger.score_rows()
    assert train.result and train.result["steps"] > 0
    assert train.result["folder_hash"].startswith("sha256:")
    assert train.result["docker_image"].startswith("sha256:")
    assert {r["metric"] for r in rows} >= {"psnr", "known_pixel_dev"}
    predictions = tmp_path / "run" / "predictions" / "scenes" / "gatedconv" / "faces_test"
    # The files belong to the invoking user, even where the container ran as `nobody`.
    assert all(p.stat().st_uid == os.getuid() for p in predictions.glob("*.png"))

    from harness.progress import SilentReporter as Quiet
    from harness.report.build import build_report

    report = build_report(tmp_path / "run", Quiet(quiet=True))
    assert (report.path / "report.html").is_file()
    assert "gatedconv" in report.main_markdown and "faces_test" in report.main_markdown


def test_budget_kill_of_a_container_that_ignores_sigterm(
    runner: DockerRunner, tmp_path: Path
) -> None:
    profile = tiny_run_profile(tmp_path, [faulty("stubborn", "ignore_sigterm", 1.0)], grace_s=2.0)
    summary = Pipeline(profile, tmp_path / "run", runner, SilentReporter(quiet=True)).run()
    train = next(s for s in summary.steps if s.kind == "train")
    assert train.status == "failed"
    assert "ignored SIGTERM for 2 s after its budget: killed" in train.reason
    client = runner.client
    assert client.containers.list(all=True, filters={"label": "dev.inpaint-bench.run"}) == []


PROBE_ATTEMPTS = {
    "tcp_out",
    "tcp_host",
    "dns",
    "docker_socket",
    "write_data",
    "write_root",
    "write_app",
    "write_job",
    "write_outside_outputs",
    "read_shadow",
    "read_host_paths",
    "find_ground_truth",
    "setuid_root",
    "setgid_root",
    "chown_root",
    "user_namespace",
    "setuid_binaries",
    "fork_bomb",
    "fill_tmp",
}


def test_inside_the_sandbox_nothing_escapes(runner: DockerRunner, tmp_path: Path) -> None:
    # Small pids and /tmp limits, so the probe's bounded fork bomb and /tmp filler hit them.
    runtime = Runtime(pids_limit=64, tmp_bytes=64 << 20)
    sandboxed = DockerRunner(
        runtime,
        reporter=SilentReporter(quiet=True),
        client=runner.client,
        base_image=runner.base_image,
    )
    inputs, masks, outputs = (tmp_path / n for n in ("inputs", "masks", "outputs"))
    for folder in (inputs, masks, outputs, tmp_path / "job", tmp_path / "ck"):
        folder.mkdir()
    (inputs / "000000.png").write_bytes(b"")
    # A test set's ground truth on the host: the probe must find it neither by path nor by name.
    truth = tmp_path / "data" / "test" / "faces_test" / f"truth-{uuid.uuid4().hex}.png"
    truth.parent.mkdir(parents=True)
    truth.write_bytes(b"ground truth")
    job = tmp_path / "job" / "job.json"
    job.write_text(
        json.dumps(
            {
                "contract_version": "1",
                "command": "predict",
                "job_id": "probe",
                "seed": 0,
                "device": "cpu",
                "image_size": 32,
                "batch_size": 1,
                "hyperparameters": {},
                "data": {"inputs": "inputs", "masks": "masks"},
            }
        )
    )
    launch = Launch(
        "probe",
        str(PROBE),
        "predict",
        Mounts({"inputs": inputs, "masks": masks}, job, tmp_path / "ck", outputs),
        Limits(300, 120, 5),
        tmp_path / "probe.log",
        env={
            "PROBE_HOST_PATHS": os.pathsep.join([str(truth), str(REPO / "benchmark.yaml")]),
            "PROBE_MARKER": truth.name,
            "PROBE_FORK_TRIES": "256",
            "PROBE_TMP_CAP_MB": "256",
        },
        key="probe-" + "0" * 20,
        run_id="probe",
    )
    from harness.supervisor import supervise

    process = sandboxed.start(launch)
    try:
        outcome = supervise(process, launch)
    finally:
        process.cleanup()
    assert outcome.ok, (outcome.reason, (tmp_path / "probe.log").read_text()[-2000:])
    probe = json.loads((outputs / "probe.json").read_text())
    assert (probe["uid"], probe["gid"]) == container_user()
    assert probe["uid"] != 0, "no container runs as root, even when the harness does"
    attempts = probe["attempts"]
    assert set(attempts) == PROBE_ATTEMPTS  # every attempt reported
    succeeded = {
        name: result for name, result in attempts.items() if not result.startswith("refused")
    }
    assert succeeded == {}  # zero successes
    assert "stopped after" in attempts["fork_bomb"]
    assert int(attempts["fork_bomb"].split("stopped after ")[1].split()[0]) < 64
    assert "ENOSPC after" in attempts["fill_tmp"]
    assert int(attempts["fill_tmp"].split("ENOSPC after ")[1].split()[0]) <= 64
    assert "none of 2 host path(s) exists in here" in attempts["read_host_paths"]
    assert "not among the" in attempts["find_ground_truth"]
    assert probe["write_tmp"].startswith("SUCCEEDED")  # the tmpfs is the one writable place
    assert set(probe["capabilities"].values()) == {"0000000000000000"}
    assert probe["no_new_privs"] == "1"
    assert sorted(probe["data_files"]) == ["inputs", "inputs/000000.png", "masks"]
    assert not (inputs / "planted.txt").exists()


def test_a_cuda_job_asks_the_engine_for_its_gpu(runner: DockerRunner, tmp_path: Path) -> None:
    """The container the runner creates for a job on GPU 1 carries a device request for it (this
    engine has no NVIDIA runtime, so it is created and inspected, never started)."""
    job = tmp_path / "job" / "job.json"
    job.parent.mkdir()
    job.write_text("{}")
    mounts = Mounts({}, job, tmp_path / "ck", tmp_path / "out")
    for folder in (tmp_path / "ck", tmp_path / "out"):
        folder.mkdir()
    launch = Launch(
        "classical",
        str(REPO / "images" / "classical"),
        "predict",
        mounts,
        Limits(60, 60, 5),
        tmp_path / "log",
        gpu=1,
        key="gpu-request-" + uuid.uuid4().hex,
        run_id="gpu-test",
    )
    image = runner.image_for(launch)
    kwargs = runner.container_kwargs(runner.spec(launch, image))
    kwargs.pop("detach")
    container = runner.client.containers.create(**kwargs)
    try:
        container.reload()
        requests = container.attrs["HostConfig"]["DeviceRequests"]
    finally:
        container.remove(force=True)
    assert len(requests) == 1
    assert requests[0]["DeviceIDs"] == ["1"] and requests[0]["Capabilities"] == [["gpu"]]
    assert container.name.startswith("inpaint-bench-gpu-test")


def _recipe_digest(folder: Path, torch_variant: str) -> str:
    """images/base/build.sh's recipe digest: `sha256sum` of each file (C-sorted), then the
    variant, all hashed again."""
    import hashlib

    files = sorted(
        "./" + str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.suffix != ".pyc"
    )
    listing = "".join(
        f"{hashlib.sha256((folder / f).read_bytes()).hexdigest()}  {f}\n" for f in files
    )
    return hashlib.sha256(f"{listing}{torch_variant}\n".encode()).hexdigest()


def test_the_base_ci_tests_is_built_from_the_committed_recipe(runner: DockerRunner) -> None:
    """The image CI builds and tests is the one a GPU host runs, minus the torch wheel: its base
    comes from images/base as committed, not from a recipe of CI's own."""
    labels = runner.client.images.get(runner.base_image).labels
    variant = labels["dev.inpaint-bench.base.torch"]
    assert variant in {"cpu", "cuda"}
    assert labels["dev.inpaint-bench.base.recipe"] == _recipe_digest(
        REPO / "images" / "base", variant
    )
