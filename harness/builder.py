"""`inpaint-bench images build`: assemble a build context and build it with BuildKit.

The context holds the image folder, the adapter SDK (`sdk/`), the contract schemas
(`contracts/v1/`) and, for wrapped models, the authors' code at the pinned commit (`upstream/`),
cloned at build time and verified, or taken from `--upstream-src`. Nothing upstream is ever
committed here. The manifest becomes the image label `dev.inpaint-bench.manifest`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.build_errors import explain
from harness.contract import MANIFEST_LABEL, contracts_dir
from harness.errors import DockerUnavailable, HarnessError
from harness.images import SDK_DIR, ImageFolder
from harness.progress import Reporter, SilentReporter

CACHE_ENV = "INPAINT_BENCH_CACHE"
BASE_IMAGE_ENV = "INPAINT_BENCH_BASE_IMAGE"
BUILD_ARGS_ENV = "INPAINT_BENCH_BUILD_ARGS"
DOCKER_CLI_ENV = "INPAINT_BENCH_DOCKER_CLI"
BASE_LABEL = "dev.inpaint-bench.base-image"
BASE_ID_LABEL = "dev.inpaint-bench.base-image-id"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".pytest_cache")


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "inpaint-bench"))


def docker_cli() -> str:
    """Debian's 20.10 client has the engine's BuildKit; a newer static client without buildx
    silently falls back to the legacy builder, so prefer /usr/bin/docker when it is there."""
    if os.environ.get(DOCKER_CLI_ENV):
        return os.environ[DOCKER_CLI_ENV]
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


def _git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise HarnessError(f"git {' '.join(args)}: {result.stderr.strip()[-500:]}")
    return result.stdout.strip()


def upstream_checkout(
    folder: ImageFolder, override: Path | None, reporter: Reporter, name: str | None = None
) -> Path | None:
    """The authors' source at the manifest's pinned commit: the override, or a verified clone."""
    upstream = folder.manifest.get("upstream")
    if upstream is None:
        return None
    commit = upstream["commit"]
    if override is not None:
        override = Path(override)
        if (override / ".git").exists():
            head = _git("rev-parse", "HEAD", cwd=override)
            if head != commit:
                raise HarnessError(
                    f"{override}: checkout is at {head[:12]}, {folder.name}'s manifest pins "
                    f"{commit[:12]}",
                    f"git -C {override} checkout {commit}",
                )
        return override
    target = cache_root() / "upstream" / f"{folder.name}-{commit[:12]}"
    if target.is_dir():
        return target
    reporter.note(f"fetching {upstream['url']} at {commit[:12]}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=_mkdir(target.parent)))
    try:
        _git("clone", "--quiet", upstream["url"], str(tmp / "src"))
        _git("checkout", "--quiet", commit, cwd=tmp / "src")
        head = _git("rev-parse", "HEAD", cwd=tmp / "src")
        if head != commit:
            raise HarnessError(f"{upstream['url']}: checked out {head}, expected {commit}")
        os.replace(tmp / "src", target)
    except HarnessError as error:
        cause = re.sub(r"^.*?fatal: (unable to access '[^']*': )?", "", error.message, flags=re.S)
        raise HarnessError(
            f"{name or folder.name}: cannot fetch its upstream source ({cause})",
            f"on an offline host pass --upstream-src {name or folder.name}=PATH or set "
            f"INPAINT_UPSTREAM_{(name or folder.name).upper().replace('-', '_')}=PATH (also "
            f"read by `make bench`), PATH a checkout of {upstream['url']} at {commit}",
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def assemble_context(folder: Path, upstream: Path | None, into: Path) -> str:
    """Fill `into` with the build context; return the sha256 of everything in it."""
    shutil.copytree(folder, into, ignore=_IGNORED, dirs_exist_ok=True)
    shutil.copytree(SDK_DIR, into / "sdk", ignore=_IGNORED)
    shutil.copytree(contracts_dir(), into / "contracts" / "v1", ignore=_IGNORED)
    if upstream is not None:
        shutil.copytree(upstream, into / "upstream", ignore=_IGNORED, symlinks=True)
    digest = hashlib.sha256()
    for path in sorted(p for p in into.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(into)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def image_tag(
    name: str, context_digest: str, base_image: str | None, build_args: dict[str, str]
) -> str:
    args = ",".join(f"{k}={v}" for k, v in sorted(build_args.items()))
    key = hashlib.sha256(f"{context_digest}\0{base_image or ''}\0{args}".encode()).hexdigest()
    return f"inpaint-bench/{name}:{key[:16]}"


def build_command(
    context: Path,
    tag: str,
    manifest: dict[str, Any] | None,
    base_image: str | None,
    pip_ca: Path | None,
    build_args: dict[str, str] | None = None,
) -> list[str]:
    command = [docker_cli(), "build", "--progress", "plain", "-t", tag]
    if manifest is not None:
        command += ["--label", f"{MANIFEST_LABEL}={json.dumps(manifest, sort_keys=True)}"]
    if base_image:
        command += ["--build-arg", f"BASE_IMAGE={base_image}"]
    for key, value in sorted((build_args or {}).items()):
        command += ["--build-arg", f"{key}={value}"]
    if pip_ca is not None:
        # A secret, never a build argument: build arguments are visible in `docker history`.
        command += ["--secret", f"id=pipca,src={pip_ca}"]
    return [*command, str(context)]


def pip_ca_bundle() -> Path | None:
    """The CA bundle pip uses here (TLS-intercepting proxies), if any."""
    for candidate in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@dataclass(frozen=True)
class BuildTarget:
    """A model image folder (with a manifest) or the metrics image folder (without one)."""

    name: str
    path: Path
    manifest: dict[str, Any] | None

    @classmethod
    def at(cls, path: Path) -> BuildTarget:
        path = Path(path).resolve()
        if (path / "manifest.json").is_file():
            folder = ImageFolder.at(path)
            return cls(folder.name, folder.path, folder.manifest)
        if not (path / "Dockerfile").is_file():
            raise HarnessError(f"{path}: neither a model image folder nor a Dockerfile folder")
        return cls(path.name, path, None)


def build_image(
    path: Path,
    upstream_override: Path | None = None,
    base_image: str | None = None,
    reporter: Reporter | None = None,
    client: Any = None,
    build_args: dict[str, str] | None = None,
) -> str:
    """Build `images/<name>` (reused when an image of the same content exists); return its tag.

    `base_image` and `build_args` default to $INPAINT_BENCH_BASE_IMAGE and
    $INPAINT_BENCH_BUILD_ARGS (`K=V,K=V`), so an offline host sets them once.
    """
    reporter = reporter or SilentReporter(quiet=True)
    client = client if client is not None else _client()
    target = BuildTarget.at(path)
    if not (target.path / "Dockerfile").is_file():
        raise HarnessError(f"{target.path}: no Dockerfile", "see docs/adding-a-model.md")
    base_image = base_image or os.environ.get(BASE_IMAGE_ENV) or None
    build_args = {**env_build_args(), **(build_args or {})}
    upstream = None
    if target.manifest is not None:
        upstream = upstream_checkout(ImageFolder(target.path), upstream_override, reporter)
    with tempfile.TemporaryDirectory(prefix=f"inpaint-bench-build-{target.name}-") as tmp:
        context = Path(tmp) / "context"
        digest = assemble_context(target.path, upstream, context)
        base_ref = base_image or dockerfile_base(target.path / "Dockerfile")
        base_id = _image_id(client, base_ref) if client is not None and base_ref else None
        # The base's ID, not just its name: a rebuilt base under the same tag rebuilds the image.
        tag = image_tag(target.name, digest, base_id or base_image, build_args)
        if client is not None and _exists(client, tag):
            return tag
        command = build_command(
            context, tag, target.manifest, base_image, pip_ca_bundle(), build_args
        )
        if base_ref:  # provenance: what this image was built FROM
            labels = {BASE_LABEL: base_ref, BASE_ID_LABEL: base_id or "unknown"}
            command[2:2] = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
        reporter.note(f"building {tag}")
        logs = cache_root() / "build-logs" / f"{target.name}.log"
        _mkdir(logs.parent)
        with open(logs, "w") as handle:
            try:
                result = subprocess.run(
                    command,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "DOCKER_BUILDKIT": "1"},
                )
            except FileNotFoundError:
                raise DockerUnavailable(
                    f"{command[0]}: docker CLI not found", "install Docker, or use --runner local"
                ) from None
        if result.returncode != 0:
            failure = explain(logs.read_text(errors="replace"), target.path / "Dockerfile")
            raise HarnessError(
                f"{target.name}: the image does not build: {failure.step} failed"
                + (f" ({failure.cause})" if failure.cause else "")
                + f"; log: {logs}",
                failure.hint,
            )
    return tag


def dockerfile_base(dockerfile: Path) -> str | None:
    """The default of `ARG BASE_IMAGE=` in a Dockerfile (what it builds FROM unless overridden)."""
    try:
        text = dockerfile.read_text()
    except OSError:
        return None
    match = re.search(r"^ARG BASE_IMAGE=(\S+)", text, re.M)
    return match.group(1) if match else None


def env_build_args() -> dict[str, str]:
    pairs = [p for p in os.environ.get(BUILD_ARGS_ENV, "").split(",") if p.strip()]
    return dict(p.split("=", 1) for p in pairs if "=" in p)


def _client() -> Any:
    """A Docker SDK client when one can be had: to reuse built images and resolve base IDs."""
    try:
        import docker

        return docker.from_env(timeout=60)
    except Exception:  # no SDK or no engine: `docker build` itself will say what is wrong
        return None


def _image_id(client: Any, ref: str) -> str | None:
    from docker.errors import DockerException

    try:
        return str(client.images.get(ref).id)
    except DockerException:
        return None


def _exists(client: Any, tag: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True
