"""Which runner a Slurm job uses on its node: the one the login node chose (`--runner`), named
in the launch file with what it needs there.

The docker runner does not build on a node: the login node built the image (`images build`,
content-tagged) and the node's own engine must hold that very tag. A node where docker does
not answer or the image is missing fails the job with the node, the image and what to do.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Any

from harness.config import Runtime
from harness.errors import DockerUnavailable, HarnessError
from harness.runners.base import Runner
from harness.runners.local import LocalRunner


def node_name() -> str:
    """The node as Slurm names it (what `sinfo` and `squeue` show), else its hostname."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def docker_settings(runner: Any) -> dict[str, Any]:
    """What the node's docker runner needs from the login node's: the sandbox's limits and
    relaxations (benchmark.yaml's runtime), as JSON."""
    return {
        "runtime": dataclasses.asdict(runner.runtime),
        "relax": dataclasses.asdict(runner.relax),
    }


def runtime_from_json(doc: dict[str, Any]) -> Runtime:
    tuples = {k: tuple(v) for k, v in doc.items() if isinstance(v, list)}
    return Runtime(**(doc | tuples))


def missing_image_hint(image: str, node: str) -> str:
    return (
        f"build it on {node} with `inpaint-bench images build` (same checkout, same base image, "
        f"so the same tag), or copy it there (`docker save {image} | ssh {node} docker load`), "
        "or run with --runner local"
    )


def docker_on_node(image: str, settings: dict[str, Any], upstream: dict[str, Path]) -> Runner:
    """The docker runner on this node, once its engine answers and holds `image`."""
    node = node_name()
    try:
        import docker

        from harness.runners.docker import DockerRunner, engine_problem
        from harness.runners.sandbox import Relaxations
    except ImportError as error:
        raise DockerUnavailable(
            f"node {node}: the docker runner is unavailable for image {image}: {error}",
            "pip install 'inpaint-bench[docker]' in the environment the nodes run, "
            "or run with --runner local",
        ) from None
    problem = engine_problem()
    if problem is not None:
        raise DockerUnavailable(
            f"node {node}: {problem}, so image {image} cannot run there",
            f"start Docker on {node}, exclude the node ($INPAINT_SLURM_ARGS=--exclude={node}), "
            "or run with --runner local",
        )
    client = docker.from_env(timeout=120)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise DockerUnavailable(
            f"node {node}: image {image} is not in this node's Docker engine",
            missing_image_hint(image, node),
        ) from None
    runtime = runtime_from_json(settings["runtime"])
    return DockerRunner(runtime, Relaxations(**settings["relax"]), upstream, client=client)


def runner_on_node(spec: dict[str, Any], image: str) -> Runner:
    """The runner a launch file names ("local" when it names none: a file from before
    docker ran on the nodes)."""
    upstream = {k: Path(v) for k, v in spec.get("upstream", {}).items()}
    name = spec.get("runner", "local")
    if name == "docker":
        return docker_on_node(image, spec["docker"], upstream)
    if name != "local":
        raise HarnessError(
            f"node {node_name()}: the launch file names runner {name!r}",
            "submit the run again with this harness version (--runner local or docker)",
        )
    return LocalRunner(upstream)
