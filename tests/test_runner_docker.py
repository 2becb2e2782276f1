"""The docker runner's sandbox as data, and its calls to the Docker SDK (fake client)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.config import Runtime
from harness.errors import DockerUnavailable
from harness.runners.base import Launch, Limits, Mounts
from harness.runners.sandbox import Relaxations, container_name, container_spec

docker = pytest.importorskip("docker")

from harness.runners.docker import DockerRunner  # noqa: E402


def predict_launch(tmp_path: Path, gpu: int | None = None) -> Launch:
    for name in ("inputs", "masks", "ck", "out", "job"):
        (tmp_path / name).mkdir(exist_ok=True)
    (tmp_path / "job" / "job.json").write_text("{}")
    return Launch(
        model="gatedconv",
        image="inpaint-bench/gatedconv:abc",
        command="predict",
        mounts=Mounts(
            {"inputs": tmp_path / "inputs", "masks": tmp_path / "masks"},
            tmp_path / "job" / "job.json",
            tmp_path / "ck",
            tmp_path / "out",
        ),
        limits=Limits(60, 60, 5),
        log_path=tmp_path / "log.txt",
        gpu=gpu,
        key="k" * 64,
        run_id="r" * 12,
    )


def test_sandbox_defaults(tmp_path: Path) -> None:
    spec = container_spec(
        predict_launch(tmp_path), "img", Runtime(), "run1", "key1", uid_gid=(1234, 5678)
    )
    assert spec.network_disabled and spec.read_only
    assert spec.user == "1234:5678"
    assert spec.cap_drop == ["ALL"] and spec.security_opt == ["no-new-privileges"]
    assert "/tmp" in spec.tmpfs and spec.init
    assert spec.mem_limit == Runtime().memory_bytes and spec.pids_limit == Runtime().pids_limit
    kwargs = spec.run_kwargs()
    assert kwargs["memswap_limit"] == kwargs["mem_limit"] and kwargs["network_mode"] == "none"
    mounts = {m.target: (m.source, m.read_only) for m in spec.mounts}
    assert mounts["/inpaint/data/inputs"] == ((tmp_path / "inputs").resolve(), True)
    assert mounts["/inpaint/data/masks"][1] is True
    assert mounts["/inpaint/job"] == ((tmp_path / "job").resolve(), True)
    assert mounts["/inpaint/checkpoints"][1] is False and mounts["/inpaint/outputs"][1] is False
    assert spec.command == ["predict", "/inpaint/job/job.json"]
    assert spec.environment["HOME"] == "/tmp"


def test_ground_truth_is_never_mounted_for_predict(tmp_path: Path) -> None:
    spec = container_spec(predict_launch(tmp_path), "img", Runtime(), "run1", "key1")
    sources = {str(m.source) for m in spec.mounts}
    assert not any("/test/" in s or s.endswith("/test") for s in sources)


def test_relaxations_are_explicit(tmp_path: Path) -> None:
    relax = Relaxations(network=True, writable_root=True, keep_capabilities=True, run_as_root=True)
    spec = container_spec(predict_launch(tmp_path), "img", Runtime(), "run1", "key1", relax)
    assert not spec.network_disabled and not spec.read_only
    assert spec.cap_drop == [] and spec.user == "0:0"
    assert spec.security_opt == ["no-new-privileges"]
    assert relax.active() == ["network", "writable_root", "keep_capabilities", "run_as_root"]


def test_container_names_are_deterministic() -> None:
    assert container_name("r" * 20, "k" * 64) == f"inpaint-bench-{'r' * 12}-{'k' * 12}"


class FakeContainer:
    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs
        self.attrs = {"State": {"Running": False, "ExitCode": 0, "OOMKilled": False}}
        self.removed = False
        self.signals: list[int] = []

    def logs(self, **kwargs: Any) -> Any:
        return iter([b'{"event": "run_start"}\n'] if kwargs.get("stdout") else [])

    def kill(self, signal: int) -> None:
        self.signals.append(signal)

    def reload(self) -> None:
        return None

    def wait(self, timeout: float | None = None) -> dict[str, int]:
        return {"StatusCode": 0}

    def remove(self, force: bool = False) -> None:
        self.removed = True


class FakeClient:
    def __init__(self, runtimes: dict[str, Any] | None = None) -> None:
        self.created: list[FakeContainer] = []
        self.runtimes = runtimes or {"runc": {}}

        class Containers:
            def __init__(inner) -> None:
                pass

            def run(inner, **kwargs: Any) -> FakeContainer:
                container = FakeContainer(kwargs)
                self.created.append(container)
                return container

            def get(inner, name: str) -> FakeContainer:
                raise docker.errors.NotFound("no such container")

            def list(inner, **kwargs: Any) -> list[FakeContainer]:
                return []

        self.containers = Containers()

    def info(self) -> dict[str, Any]:
        return {"Runtimes": self.runtimes}


def test_runner_starts_a_sandboxed_container_and_removes_it(tmp_path: Path) -> None:
    client = FakeClient()
    runner = DockerRunner(client=client)
    process = runner.start(predict_launch(tmp_path))
    kwargs = client.created[0].kwargs
    assert kwargs["image"] == "inpaint-bench/gatedconv:abc"
    assert kwargs["detach"] and kwargs["init"] and kwargs["network_disabled"]
    assert kwargs["read_only"] and kwargs["cap_drop"] == ["ALL"]
    assert kwargs["labels"]["dev.inpaint-bench.run"] == "r" * 12
    assert "device_requests" not in kwargs
    assert b"".join(process.stdout_chunks()) == b'{"event": "run_start"}\n'
    process.send_signal(15)
    assert client.created[0].signals == [15]
    process.cleanup()
    assert client.created[0].removed


def test_gpu_without_nvidia_runtime_is_a_clear_error(tmp_path: Path) -> None:
    runner = DockerRunner(client=FakeClient())
    with pytest.raises(DockerUnavailable, match="no 'nvidia' runtime"):
        runner.start(predict_launch(tmp_path, gpu=0))


def test_gpu_uses_a_device_request(tmp_path: Path) -> None:
    client = FakeClient({"runc": {}, "nvidia": {}})
    DockerRunner(client=client).start(predict_launch(tmp_path, gpu=1))
    request = client.created[0].kwargs["device_requests"][0]
    assert request["DeviceIDs"] == ["1"] and request["Capabilities"] == [["gpu"]]


class NotingReporter:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def track(self, items: Any, total: Any, description: str) -> Any:
        return iter(items)

    def note(self, message: str) -> None:
        self.notes.append(message)


def test_auto_falls_back_to_local_when_no_image_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.builder
    import harness.runners.docker as docker_runner
    from harness.errors import HarnessError
    from harness.running import choose_runner

    def failing_build(folder: Path, *args: Any, **kwargs: Any) -> str:
        raise HarnessError(
            f"{folder.name}: the image does not build: getting the base image b failed (no host)",
            "build the base",
        )

    monkeypatch.setattr(docker_runner, "engine_problem", lambda client=None: None)
    monkeypatch.setattr(docker_runner.docker, "from_env", lambda **kw: FakeClient())
    monkeypatch.setattr(harness.builder, "build_image", failing_build)
    reporter = NotingReporter()
    folder = Path(__file__).resolve().parents[1] / "images" / "gatedconv"
    runner = choose_runner("auto", {}, reporter, images=[folder])
    assert runner.name == "local"
    reason = (
        "gatedconv: the image does not build: getting the base image b failed (no host) "
        "(build the base)"
    )
    assert reporter.notes == [
        f"skipping gatedconv: its image does not build: {reason}",
        f"runner: local (the Docker engine answers but no model image builds: {reason})",
    ]
    with pytest.raises(HarnessError, match="--runner docker: the Docker engine answers but"):
        choose_runner("docker", {}, reporter, images=[folder])


def test_one_model_image_that_does_not_build_is_skipped_and_docker_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.builder
    import harness.runners.docker as docker_runner
    from harness.errors import HarnessError
    from harness.images import ImageFolder
    from harness.running import choose_runner
    from harness.scoring import METRICS_FOLDER

    def build(folder: Path, *args: Any, **kwargs: Any) -> str:
        if folder.name == "classical":
            raise HarnessError("classical: the image does not build: x failed", "fix x")
        return f"inpaint-bench/{folder.name}:1"

    monkeypatch.setattr(docker_runner, "engine_problem", lambda client=None: None)
    monkeypatch.setattr(docker_runner.docker, "from_env", lambda **kw: FakeClient())
    monkeypatch.setattr(harness.builder, "build_image", build)
    images = Path(__file__).resolve().parents[1] / "images"
    folders = [images / "classical", images / "gatedconv", METRICS_FOLDER]
    for requested in ("auto", "docker"):
        reporter = NotingReporter()
        runner = choose_runner(requested, {}, reporter, images=folders)
        assert runner.name == "docker"
        assert reporter.notes[-1] == (
            "runner: docker (an engine answers and the images build; "
            "1 model image(s) do not and are skipped)"
        )
        reason = runner.unavailable("classical", ImageFolder.at(images / "classical"))
        assert reason == "classical: the image does not build: x failed (fix x)"
        assert runner.unavailable("gatedconv", ImageFolder.at(images / "gatedconv")) is None


def test_a_metrics_image_that_does_not_build_stops_the_docker_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.builder
    import harness.runners.docker as docker_runner
    from harness.errors import HarnessError
    from harness.running import choose_runner
    from harness.scoring import METRICS_FOLDER

    def build(folder: Path, *args: Any, **kwargs: Any) -> str:
        if folder == METRICS_FOLDER:
            raise HarnessError("metrics: the image does not build: y failed")
        return "inpaint-bench/x:1"

    monkeypatch.setattr(docker_runner, "engine_problem", lambda client=None: None)
    monkeypatch.setattr(docker_runner.docker, "from_env", lambda **kw: FakeClient())
    monkeypatch.setattr(harness.builder, "build_image", build)
    folders = [Path(__file__).resolve().parents[1] / "images" / "gatedconv", METRICS_FOLDER]
    with pytest.raises(HarnessError, match="metrics's image does not build: metrics: the image"):
        choose_runner("docker", {}, NotingReporter(), images=folders)
    assert choose_runner("auto", {}, NotingReporter(), images=folders).name == "local"


def test_auto_uses_docker_when_the_images_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.builder
    import harness.runners.docker as docker_runner
    from harness.running import choose_runner

    built: list[Path] = []
    monkeypatch.setattr(docker_runner, "engine_problem", lambda client=None: None)
    monkeypatch.setattr(docker_runner.docker, "from_env", lambda **kw: FakeClient())
    monkeypatch.setattr(
        harness.builder,
        "build_image",
        lambda folder, *a, **k: built.append(folder) or "inpaint-bench/x:1",
    )
    reporter = NotingReporter()
    folder = Path(__file__).resolve().parents[1] / "images" / "classical"
    runner = choose_runner("auto", {}, reporter, images=[folder])
    assert runner.name == "docker" and built == [folder]
    assert reporter.notes[-1] == "runner: docker (an engine answers and the images build)"
