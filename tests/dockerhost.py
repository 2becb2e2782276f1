"""The Docker engine and offline base image the real-container tests need, or a skip saying why.

CI (`.ci/docker-setup.sh`) provides both and sets $INPAINT_BENCH_BASE_IMAGE; elsewhere these
tests skip with the reason (and CI turns any such skip into a failure).
"""

from __future__ import annotations

import os
from typing import Any

import pytest


def engine_and_base() -> tuple[Any, str]:
    """(a docker-py client, the base image name), or skip the calling test with the reason."""
    docker = pytest.importorskip("docker")
    from harness.runners.docker import engine_problem

    problem = engine_problem()
    if problem:
        pytest.skip(problem)
    base = os.environ.get("INPAINT_BENCH_BASE_IMAGE")
    if not base:
        pytest.skip("set INPAINT_BENCH_BASE_IMAGE to an offline base image (.ci/docker-setup.sh)")
    client = docker.from_env(timeout=300)
    try:
        client.images.get(base)
    except docker.errors.ImageNotFound:
        pytest.skip(f"{base}: base image not in the engine; run .ci/docker-setup.sh")
    return client, base
