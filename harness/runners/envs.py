"""The local runner's Python environments: one shared torch per host, one thin venv per model.

A model image's requirements.txt names torch, torchvision and the usual numeric packages; a venv
per model that installs them all costs 4-6 GB each (the CUDA build of torch brings 3.2 GB of
NVIDIA libraries). Instead the host has one **base** environment, the local twin of the docker
base image (images/base: torch, torchvision and the packages every image shares), made once per
torch variant: the CPU wheel where no GPU answers, the CUDA build pinned in
images/base/torch-cuda.txt where one does. Each model's venv sees the base through a `.pth` file
in its site-packages (after its own packages, so a model can still override one), and pip
installs there only what the base lacks. A model venv's name hashes its requirements, the
Python version and the base it sits on, so a changed requirements.txt, a new base or a venv
made the old way (a whole torch of its own) never stands in for another.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness.errors import HarnessError
from harness.images import REPO
from harness.progress import Reporter, SilentReporter

VENVS_ENV = "INPAINT_BENCH_VENVS"
TORCH_ENV = "INPAINT_BENCH_TORCH"  # cpu or cuda: overrides the GPU probe
BASE_RECIPE = REPO / "images" / "base"
READY = ".inpaint-bench-ready"
BASE_LINK = "inpaint-bench-base.pth"
# PyTorch's own index of CPU builds, for hosts whose pip has no local CPU wheel.
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The longest pip may run without a line in the log: large wheels unpack for a minute or more.
HEARTBEAT_S = 15.0
# pip's lines worth a note: one per package fetched, the install step and its result.
_SHOWN = ("Collecting", "Processing", "Building wheel", "Installing", "Successfully", "ERROR")


class _Folder(Protocol):
    @property
    def path(self) -> Path: ...

    @property
    def name(self) -> str: ...


def venv_root() -> Path:
    """Where environments live: $INPAINT_BENCH_VENVS or ~/.cache/inpaint-bench/venvs."""
    default = Path.home() / ".cache" / "inpaint-bench" / "venvs"
    return Path(os.environ.get(VENVS_ENV, default))


def torch_variant() -> str:
    """`cuda` where nvidia-smi lists a GPU, else `cpu`; $INPAINT_BENCH_TORCH decides if set."""
    chosen = os.environ.get(TORCH_ENV, "").strip().lower()
    if chosen:
        if chosen not in ("cpu", "cuda"):
            raise HarnessError(
                f"${TORCH_ENV}={chosen!r}: expected cpu or cuda", f"unset {TORCH_ENV} or fix it"
            )
        return chosen
    return _probe_gpu()


@functools.cache
def _probe_gpu() -> str:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "cpu"
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "cpu"
    return "cuda" if listed.returncode == 0 and "GPU" in listed.stdout else "cpu"


def find_links() -> list[Path]:
    """The local folders pip's configuration (or $PIP_FIND_LINKS) offers wheels from."""
    found = os.environ.get("PIP_FIND_LINKS", "").split()
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    found += re.findall(r"find-links='([^']*)'", listed.stdout)
    folders = [Path(f.removeprefix("file://")) for part in found for f in part.split()]
    return [f for f in dict.fromkeys(folders) if f.is_dir()]


def local_cpu_wheel() -> Path | None:
    """The newest CPU torch wheel for this Python in pip's find-links, as build.sh takes it."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = [w for d in find_links() for w in d.glob(f"torch-*+cpu-{tag}-*.whl")]

    def version(wheel: Path) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", wheel.name.split("-")[1].split("+")[0]))

    return max(wheels, key=version, default=None)


@dataclass(frozen=True)
class TorchPlan:
    """How the base gets its torch: what pip installs, under which pins, from where."""

    variant: str
    packages: tuple[str, ...]
    pins: tuple[str, ...]
    index: tuple[str, ...] = ()  # extra pip arguments for the torch step
    fix_torchvision: bool = False  # PyPI's torchvision is a CUDA build: patch it beside +cpu
    note: str = field(default="", compare=False)


def torch_plan(variant: str) -> TorchPlan:
    if variant == "cuda":
        pins = tuple(
            line.strip()
            for line in (BASE_RECIPE / "torch-cuda.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
        return TorchPlan("cuda", ("torch", "torchvision"), pins, note="CUDA build (GPU found)")
    wheel = local_cpu_wheel()
    if wheel is None:
        return TorchPlan(
            "cpu", ("torch", "torchvision"), (), ("--index-url", CPU_INDEX), note=CPU_INDEX
        )
    version = wheel.name.split("-")[1].split("+")[0]
    minor = int(version.split(".")[1])
    # torchvision 0.(minor+15) goes with torch 2.minor; pinning both keeps pip off CUDA torch
    pins = (f"torch=={version}", f"torchvision==0.{minor + 15}.*")
    return TorchPlan("cpu", (str(wheel), "torchvision"), pins, (), True, f"CPU wheel {wheel}")


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def _plan(variant: str, links: str) -> TorchPlan:
    return torch_plan(variant)


def base_env() -> tuple[Path, TorchPlan]:
    """Where the base for this host's torch variant lives (made or not) and how it is made."""
    # probed once per process (every job start asks); the environment variables are the key
    plan = _plan(torch_variant(), os.environ.get("PIP_FIND_LINKS", ""))
    recipe = (BASE_RECIPE / "requirements.txt").read_bytes()
    key = _digest(repr(plan).encode(), recipe, sys.version.encode())
    return venv_root() / f"base-{plan.variant}-{key}", plan


def ensure_base(reporter: Reporter) -> Path:
    """The base environment, made on first use (under a lock: runs and tests share it)."""
    base, plan = base_env()
    return _once(base, lambda tmp: _create_base(tmp, plan, reporter))


def venv_for(folder: _Folder, reporter: Reporter | None = None) -> Path:
    """A venv with the folder's requirements.txt over the shared base, reused while unchanged."""
    reporter = reporter or SilentReporter(quiet=True)
    requirements = folder.path / "requirements.txt"
    wanted = requirements.read_bytes() if requirements.is_file() else b""
    base = ensure_base(reporter)
    # Keyed by requirements and base alone: folders that need the same packages share one venv.
    venv = venv_root() / f"req-{_digest(wanted, sys.version.encode(), base.name.encode())}"
    # No pip of its own: the base's pip and setuptools (newer than venv's seed) serve it too.
    return _once(
        venv,
        lambda tmp: _create_model_venv(tmp, requirements, base, folder, reporter),
        with_pip=False,
    )


def _once(target: Path, create: Callable[[Path], None], with_pip: bool = True) -> Path:
    if (target / READY).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # One creator at a time: two runs (or tests) building the same venv would corrupt it.
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / READY).is_file():
            return target
        shutil.rmtree(target, ignore_errors=True)
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            venv = [sys.executable, "-m", "venv", str(tmp)]
            venv += [] if with_pip else ["--without-pip"]
            subprocess.run(venv, check=True, capture_output=True)
            create(tmp)
            # venvs hard-code their own path in scripts; we only ever call bin/python directly
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def site_packages(venv: Path) -> list[Path]:
    """The venv's purelib and platlib folders, as its own python reports them."""
    probe = "import sysconfig; print(sysconfig.get_path('purelib'), sysconfig.get_path('platlib'))"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    return [Path(p) for p in dict.fromkeys(out.split())]


def _create_base(tmp: Path, plan: TorchPlan, reporter: Reporter) -> None:
    final = tmp.with_name(tmp.name.removesuffix(".partial"))
    reporter.note(
        f"creating the shared torch environment in {final} ({plan.note}; once per host,"
        " every model environment reuses it)"
    )
    started = time.monotonic()
    pins = tmp / "torch-pins.txt"
    pins.write_text("".join(f"{pin}\n" for pin in plan.pins))
    python = str(tmp / "bin" / "python")
    recipe = BASE_RECIPE / "requirements.txt"
    pip = [python, "-m", "pip", "install", "-c", str(pins)]
    if plan.index:  # torch from its own index, the shared packages from pip's usual one
        run_pip([*pip, *plan.index, *plan.packages], "shared torch", final, reporter)
        run_pip([*pip, "-r", str(recipe)], "shared torch", final, reporter)
    else:
        run_pip([*pip, *plan.packages, "-r", str(recipe)], "shared torch", final, reporter)
    if plan.fix_torchvision:
        fix = subprocess.run(
            [python, str(BASE_RECIPE / "fix_torchvision.py")], capture_output=True, text=True
        )
        if fix.returncode != 0:
            raise HarnessError(
                f"{BASE_RECIPE / 'fix_torchvision.py'}: torchvision does not import beside the CPU"
                f" torch in {final}:\n{fix.stdout}{fix.stderr}",
                f"set {TORCH_ENV}=cuda to use the CUDA build, or report the torchvision version",
            )
    ready = {"torch": plan.variant, "packages": list(plan.packages), "pins": list(plan.pins)}
    (tmp / READY).write_text(json.dumps(ready, indent=1) + "\n")
    reporter.note(f"shared torch environment ready ({time.monotonic() - started:.0f} s)")


def _create_model_venv(
    tmp: Path, requirements: Path, base: Path, folder: _Folder, reporter: Reporter
) -> None:
    final = tmp.with_name(tmp.name.removesuffix(".partial"))
    reporter.note(
        f"creating the {folder.name} environment in {final} (once; reused after; torch from"
        f" {base.name})"
    )
    started = time.monotonic()
    # Appended to sys.path after the venv's own site-packages: the base fills in what is missing.
    link = "".join(f"{path}\n" for path in site_packages(base))
    for own in site_packages(tmp):
        (own / BASE_LINK).write_text(link)
    if requirements.is_file():
        python = str(tmp / "bin" / "python")
        pip = [python, "-m", "pip", "install", "-r", str(requirements)]
        run_pip(pip, folder.name, final, reporter)
        own_torch = [p / "torch" for p in site_packages(tmp) if (p / "torch").is_dir()]
        if own_torch:
            reporter.note(
                f"warning: {requirements} needs a torch the shared base lacks, so {final} has its"
                f" own ({own_torch[0]}): align its torch pins with images/base to share one"
            )
    made = {"base": base.name, "requirements": str(requirements.resolve())}
    (tmp / READY).write_text(json.dumps(made, indent=1) + "\n")
    reporter.note(f"{folder.name} environment ready ({time.monotonic() - started:.0f} s)")


def _summary(line: str) -> str | None:
    """One short line for a pip line worth showing: `Collecting numpy>=1.26`, without the
    `(from -r ...)` that follows; a local wheel by its file name."""
    text = line.strip()
    if not text.startswith(_SHOWN):
        return None
    text = re.sub(r" \(from .*\)$", "", text)
    text = re.sub(r"^Processing /\S*/", "Processing ", text)
    return text if len(text) <= 150 else text[:147] + "..."


def run_pip(argv: list[str], what: str, venv: Path, reporter: Reporter) -> None:
    """Run pip, noting a line per package it fetches and a heartbeat while it is otherwise silent
    (unpacking torch takes minutes); its whole output goes to `<venv>.pip.log`."""
    argv = [*argv, "--progress-bar", "off", "--disable-pip-version-check"]
    log = venv.with_name(venv.name + ".pip.log")
    started = time.monotonic()
    last_note = started
    last_step = "starting pip"
    tail: deque[str] = deque(maxlen=30)
    with open(log, "ab") as handle:
        handle.write(f"$ {' '.join(argv)}\n".encode())
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        pending = b""
        while True:
            wait = max(0.0, last_note + HEARTBEAT_S - time.monotonic())
            readable, _, _ = select.select([process.stdout], [], [], wait)
            if not readable:
                elapsed = time.monotonic() - started
                reporter.note(f"  {what}: still working, {elapsed:.0f} s ({last_step})")
                last_note = time.monotonic()
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            handle.write(chunk)
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                tail.append(line)
                if summary := _summary(line):
                    last_step = f"after: {summary[:60]}"
                    elapsed = time.monotonic() - started
                    reporter.note(f"  {what}: {summary} ({elapsed:.0f} s)")
                    last_note = time.monotonic()
        code = process.wait()
    if code != 0:
        raise HarnessError(
            f"pip install for the {what} environment failed (exit {code}); the end of its"
            f" output ({log}):\n" + "\n".join(tail),
            "check the requirements and that pip can reach its index (pip config list)",
        )
