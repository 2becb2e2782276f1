"""The docker runner: each job in its model's image, through the Docker SDK for Python.

Named containers, started detached with --init; the harness keeps its own clock (supervisor)
and always removes its containers, also when it is interrupted. The only module that imports
`docker`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from harness.config import Runtime
from harness.errors import DockerUnavailable
from harness.progress import Reporter, SilentReporter
from harness.runners.base import Launch
from harness.runners.sandbox import LABEL_RUN, ContainerSpec, Relaxations, container_spec

log = logging.getLogger(__name__)
INSTALL_URL = "https://docs.docker.com/engine/install/"
# The host's switches a container must see too: with random loss-network weights (an image
# built with BAKE_WEIGHTS=0), every output of the model says so.
FORWARDED_ENV = ("INPAINT_RANDOM_LOSS_WEIGHTS",)


def engine_problem(client: Any = None) -> str | None:
    """None when a Docker engine answers, else why not, in words."""
    try:
        client = client or docker.from_env(timeout=10)
        client.ping()
    except (DockerException, OSError) as error:
        return f"no Docker engine answers ({type(error).__name__}); see {INSTALL_URL}"
    return None


def gpu_problem(client: Any) -> str | None:
    runtimes = client.info().get("Runtimes", {}) or {}
    if "nvidia" not in runtimes:
        return (
            "a GPU was asked for but this Docker engine has no 'nvidia' runtime; install the "
            "NVIDIA Container Toolkit, or leave out --gpu to run on the CPU"
        )
    return None


def chown_tree(paths: list[Path], uid: int, gid: int) -> None:
    for root in paths:
        for path in [root, *root.rglob("*")]:
            with contextlib.suppress(OSError):
                os.lchown(path, uid, gid)


class DockerProcess:
    def __init__(
        self,
        container: Any,
        log_path: Path,
        give_back: list[Path] | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self.container = container
        self.log_path = log_path
        self.give_back = give_back or []
        self.memory_limit = memory_limit  # what an OOM kill's reason names
        self._stderr = threading.Thread(target=self._copy_stderr, daemon=True)
        self._stderr.start()

    def _copy_stderr(self) -> None:
        with contextlib.suppress(DockerException, OSError), open(self.log_path, "ab") as handle:
            for chunk in self.container.logs(stdout=False, stderr=True, stream=True, follow=True):
                handle.write(chunk)
                handle.flush()

    def stdout_chunks(self) -> Iterator[bytes]:
        with contextlib.suppress(DockerException, OSError):
            yield from self.container.logs(stdout=True, stderr=False, stream=True, follow=True)

    def send_signal(self, signum: int) -> None:
        with contextlib.suppress(NotFound, APIError):
            self.container.kill(signal=int(signum))

    def wait(self, timeout: float | None) -> int | None:
        if timeout == 0:
            with contextlib.suppress(NotFound, APIError):
                self.container.reload()
                state = self.container.attrs["State"]
                return None if state.get("Running") else int(state.get("ExitCode", -1))
            return -1
        try:
            result = self.container.wait(timeout=timeout) if timeout else self.container.wait()
        except Exception:  # requests' ReadTimeout / ConnectionError: still running
            return None
        return int(result.get("StatusCode", -1))

    def oom_killed(self) -> bool:
        with contextlib.suppress(NotFound, APIError):
            self.container.reload()
            return bool(self.container.attrs["State"].get("OOMKilled"))
        return False

    def cleanup(self) -> None:
        with contextlib.suppress(NotFound, APIError):
            self.container.remove(force=True)
        self._stderr.join(timeout=5)
        # Root ran the harness and `nobody` the container: the files go back to the invoker.
        chown_tree(self.give_back, os.getuid(), os.getgid())


class DockerRunner:
    name = "docker"

    def __init__(
        self,
        runtime: Runtime | None = None,
        relax: Relaxations | None = None,
        upstream_src: dict[str, Path] | None = None,
        reporter: Reporter | None = None,
        client: Any = None,
        base_image: str | None = None,
    ) -> None:
        self.client = client or docker.from_env(timeout=120)
        self.runtime = runtime or Runtime()
        self.relax = relax or Relaxations()
        self.upstream_src = upstream_src or {}
        self.base_image = base_image
        self.reporter = reporter or SilentReporter(quiet=True)
        self.images: dict[str, str] = {}  # image folder → built image reference
        self.build_problems: dict[str, str] = {}  # image folder → why it does not build
        if self.relax.active():
            relaxed = ", ".join(self.relax.active())
            self.reporter.note(f"sandbox relaxed by configuration: {relaxed}")

    def image_for(self, launch: Launch) -> str:
        """The built image for `launch.image` (a folder is built once, then reused)."""
        key = str(Path(launch.image).resolve())
        if key in self.images:
            return self.images[key]
        from harness.builder import build_image  # imported late: builds shell out to docker

        ref = build_image(
            Path(launch.image),
            self.upstream_src.get(launch.model),
            self.base_image,
            self.reporter,
            self.client,
        )
        self.images[key] = ref
        return ref

    def spec(self, launch: Launch, image: str) -> ContainerSpec:
        return container_spec(
            launch,
            image,
            self.runtime,
            launch.run_id or "adhoc",
            launch.key or launch.model,
            self.relax,
            launch.uid_gid,
        )

    def image_id(self, folder: str) -> str | None:
        """The content digest (image ID) of the image built for `folder`, for the results."""
        return self.provenance(folder).get("docker_image")

    def provenance(self, folder: str) -> dict[str, str]:
        """What ran for `folder`: the image ID, and the base image (name and ID) it was built
        FROM, read from the labels the builder put on it."""
        from harness.builder import BASE_ID_LABEL, BASE_LABEL

        tag = self.images.get(str(Path(folder).resolve()))
        if tag is None:
            return {}
        try:
            image = self.client.images.get(tag)
        except DockerException:
            return {}
        labels = image.labels or {}
        found = {
            "docker_image": str(image.id),
            "base_image": labels.get(BASE_LABEL, ""),
            "base_image_id": labels.get(BASE_ID_LABEL, ""),
        }
        return {k: v for k, v in found.items() if v}

    def build_all(self, folders: list[Path]) -> str | None:
        """Build every image a run needs up front. A model image that does not build is
        recorded with its reason and skipped by the run (`unavailable`); None, or why the
        run cannot use this runner at all: the metrics image does not build, or no model does.
        A model whose upstream source cannot be had is left to the run, which skips it."""
        from harness.builder import build_image
        from harness.errors import HarnessError
        from harness.images import ImageFolder

        models = 0
        for folder in folders:
            is_model = (folder / "manifest.json").is_file()
            if is_model:
                image = ImageFolder.at(folder)
                if self.unavailable(image.name, image) is not None:
                    continue
            try:
                self.images[str(folder.resolve())] = build_image(
                    folder,
                    self.upstream_src.get(folder.name),
                    self.base_image,
                    self.reporter,
                    self.client,
                )
            except HarnessError as error:
                reason = str(error).replace("\n  hint: ", " (") + (")" if error.hint else "")
                if not is_model:
                    name = folder.name
                    return f"the Docker engine answers but {name}'s image does not build: {reason}"
                self.build_problems[str(folder.resolve())] = reason
                self.reporter.note(f"skipping {folder.name}: its image does not build: {reason}")
                continue
            models += is_model
        if self.build_problems and not models:
            first = next(iter(self.build_problems.values()))
            return f"the Docker engine answers but no model image builds: {first}"
        return None

    def unavailable(self, model: str, folder: Any) -> str | None:
        """Why the model's image cannot be run here: it did not build, or its upstream source
        cannot be had."""
        from harness.builder import upstream_checkout
        from harness.errors import HarnessError

        problem = self.build_problems.get(str(Path(folder.path).resolve()))
        if problem is not None:
            return problem
        override = self.upstream_src.get(model) or self.upstream_src.get(folder.name)
        try:
            upstream_checkout(folder, override, self.reporter, model)
        except HarnessError as error:
            return f"{error.message} ({error.hint})" if error.hint else error.message
        return None

    def image_labels(self, ref: str) -> dict[str, str]:
        try:
            image = self.client.images.get(ref)
        except ImageNotFound:
            raise DockerUnavailable(
                f"{ref}: image not found", "build it with `inpaint-bench images build`"
            ) from None
        return dict(image.labels or {})

    def remove_leftovers(self, run_id: str) -> int:
        """Remove containers a killed harness left behind for this run folder."""
        found = self.client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
        for container in found:
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True)
        return len(found)

    @staticmethod
    def container_kwargs(spec: ContainerSpec) -> dict[str, Any]:
        """docker-py's `containers.run` arguments for a spec: a CUDA job asks the engine for its
        GPU with a device request (the NVIDIA Container Toolkit serves it)."""
        kwargs = spec.run_kwargs()
        if spec.gpu is not None:
            kwargs["device_requests"] = [
                docker.types.DeviceRequest(device_ids=[str(spec.gpu)], capabilities=[["gpu"]])
            ]
        return kwargs

    def start(self, launch: Launch) -> DockerProcess:
        image = launch.image if not Path(launch.image).is_dir() else self.image_for(launch)
        forwarded = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        launch = dataclasses.replace(launch, env={**forwarded, **launch.env})
        spec = self.spec(launch, image)
        if spec.gpu is not None:
            problem = gpu_problem(self.client)
            if problem:
                raise DockerUnavailable(problem)
        kwargs = self.container_kwargs(spec)
        with contextlib.suppress(NotFound):
            self.client.containers.get(spec.name).remove(force=True)
        writable = [launch.mounts.checkpoints, launch.mounts.outputs]
        for path in writable:
            path.mkdir(parents=True, exist_ok=True)
        user = tuple(int(x) for x in spec.user.split(":"))
        give_back = []
        if os.getuid() == 0 and user != (0, 0):
            chown_tree(writable, *user)
            give_back = writable
        launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            container = self.client.containers.run(**kwargs)
        except ImageNotFound:
            raise DockerUnavailable(
                f"{image}: image not found", "build it with `inpaint-bench images build`"
            ) from None
        except APIError as error:
            raise DockerUnavailable(f"{image}: the engine refused to start it: {error}") from None
        return DockerProcess(container, launch.log_path, give_back, spec.mem_limit)
