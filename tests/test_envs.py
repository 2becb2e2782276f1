"""The local runner's environments: one shared torch per host, thin model venvs over it.

No network and no real torch: a stand-in `torch` wheel (a few bytes, version 2.13.0+cpu) and a
tiny package are written here, and pip installs them with --no-index from this folder, through
the same code that makes the real base and model environments.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.runners import envs

# the module's host fixture replaces these; the plan test needs the real ones
REAL_TORCH_PLAN = envs.torch_plan
REAL_RECIPE = envs.BASE_RECIPE


def write_wheel(folder: Path, name: str, version: str, module: str) -> Path:
    """A pure-Python wheel holding one module that knows its version."""
    dist = f"{name.replace('-', '_')}-{version}"
    wheel = folder / f"{dist}-py3-none-any.whl"
    files = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n",
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{dist}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}.dist-info/RECORD", record)
    return wheel


@dataclass
class Notes:
    lines: list[str]

    def track(self, items, total, description):  # type: ignore[no-untyped-def]
        yield from items

    def note(self, message: str) -> None:
        self.lines.append(message)


@dataclass(frozen=True)
class FakeHost:
    root: Path
    wheels: Path
    torch_wheel: Path


@dataclass(frozen=True)
class Folder:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHost]:
    """A host whose base recipe is the stand-in torch, made under a temporary venv root."""
    root = tmp_path_factory.mktemp("host")
    wheels = root / "wheels"
    wheels.mkdir()
    torch_wheel = write_wheel(wheels, "torch", "2.13.0+cpu", "torch")
    write_wheel(wheels, "inpaint-tiny", "0.1", "inpaint_tiny")
    recipe = root / "recipe"
    recipe.mkdir()
    (recipe / "requirements.txt").write_text("--no-index\n")
    plan = envs.TorchPlan("cpu", (str(torch_wheel),), ("torch==2.13.0",), note="stand-in")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(envs.VENVS_ENV, str(root / "venvs"))
        patch.setattr(envs, "BASE_RECIPE", recipe)
        patch.setattr(envs, "torch_plan", lambda variant: plan)
        envs._plan.cache_clear()
        yield FakeHost(root, wheels, torch_wheel)
    envs._plan.cache_clear()


def model(host: FakeHost, name: str, *requirements: str) -> Folder:
    folder = host.root / "images" / name
    folder.mkdir(parents=True, exist_ok=True)
    options = f"--no-index\n--find-links {host.wheels}\n"
    (folder / "requirements.txt").write_text(options + "".join(f"{r}\n" for r in requirements))
    return Folder(folder)


def ask(venv: Path, code: str) -> str:
    python = venv / "bin" / "python"
    return subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_a_model_env_imports_the_shared_torch_and_pip_adds_only_what_is_missing(
    host: FakeHost,
) -> None:
    notes = Notes([])
    venv = envs.venv_for(model(host, "shared", "torch>=2.5", "inpaint-tiny==0.1"), notes)
    base, _ = envs.base_env()
    torch_file = Path(ask(venv, "import torch; print(torch.__file__)"))
    assert torch_file.is_relative_to(base), torch_file
    assert ask(venv, "import torch; print(torch.__version__)") == "2.13.0+cpu"
    # what the base lacks went into the model's own site-packages, and only that
    own = envs.site_packages(venv)
    tiny = Path(ask(venv, "import inpaint_tiny; print(inpaint_tiny.__file__)"))
    assert any(tiny.is_relative_to(p) for p in own), (tiny, own)
    installed = sorted(p.name for p in own[0].iterdir() if p.suffix != ".pth")
    assert installed == ["inpaint_tiny", "inpaint_tiny-0.1.dist-info"]
    log = venv.with_name(venv.name + ".pip.log").read_text()
    assert "Requirement already satisfied: torch>=2.5" in log
    assert (
        "Successfully installed inpaint-tiny-0.1" in log
        and "torch-2.13.0" not in log.split("Successfully installed")[-1]
    )
    # one torch on the host: the base's is the only one
    assert sorted(p.relative_to(host.root) for p in host.root.rglob("torch/__init__.py")) == [
        torch_file.relative_to(host.root)
    ]


def test_progress_is_noted_while_an_environment_is_created(host: FakeHost) -> None:
    notes = Notes([])
    envs.venv_for(model(host, "noted", "inpaint-tiny==0.1", "torch"), notes)
    said = "\n".join(notes.lines)
    assert "creating the noted environment in" in said
    assert "  noted: Processing inpaint_tiny-0.1-py3-none-any.whl (" in said
    assert "  noted: Successfully installed inpaint-tiny-0.1 (" in said
    assert notes.lines[-1].startswith("noted environment ready (")


def test_the_env_key_changes_with_requirements_and_with_the_base(
    host: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = model(host, "keyed", "torch")
    first = envs.venv_for(folder)
    made = (first / envs.READY).stat().st_mtime_ns
    assert envs.venv_for(folder) == first
    assert (first / envs.READY).stat().st_mtime_ns == made  # reused, not made again
    other = model(host, "other-folder", "torch")
    assert envs.venv_for(other) == first  # same requirements: shared
    model(host, "keyed", "torch", "inpaint-tiny")
    changed = envs.venv_for(folder)
    assert changed != first and ask(changed, "import inpaint_tiny; print('ok')") == "ok"
    # the same requirements over another base (another torch) are another venv
    gpu_plan = envs.TorchPlan("cuda", (str(host.torch_wheel),), (), note="stand-in cuda")
    monkeypatch.setattr(envs, "torch_plan", lambda variant: gpu_plan)
    envs._plan.cache_clear()
    try:
        over_cuda = envs.venv_for(folder)
        assert over_cuda not in (first, changed)
        assert envs.base_env()[0].name.startswith("base-cuda-")
    finally:
        envs._plan.cache_clear()


def test_a_venv_made_the_old_way_is_not_taken_for_a_new_one(host: FakeHost) -> None:
    folder = model(host, "old", "torch")
    # the key before the shared base: requirements and Python version only
    wanted = (folder.path / "requirements.txt").read_bytes()
    old_key = hashlib.sha256(wanted + sys.version.encode()).hexdigest()[:16]
    old = envs.venv_root() / f"req-{old_key}"
    old.mkdir(parents=True)
    (old / envs.READY).write_text("torch==2.14.1 of its own\n")
    venv = envs.venv_for(folder)
    assert venv != old and (venv / envs.READY).read_text() != (old / envs.READY).read_text()
    assert (venv / "lib").is_dir() and not (old / "lib").exists()  # the old one is left alone


def test_a_silent_pip_gets_a_heartbeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    heard = tmp_path / "heard"

    class Listener(Notes):
        def note(self, message: str) -> None:
            super().note(message)
            if "still working" in message:
                heard.touch()

    # stands in for pip unpacking a large wheel: no output until it is told it was heard
    waits = (
        "import pathlib, time\n"
        f"while not pathlib.Path({str(heard)!r}).exists(): time.sleep(0.01)\n"
        "print('Successfully installed big-1.0')\n"
    )
    monkeypatch.setattr(envs, "HEARTBEAT_S", 0.05)
    notes = Listener([])
    envs.run_pip([sys.executable, "-c", waits], "big", tmp_path / "venv", notes)
    assert any(line.startswith("  big: still working, ") for line in notes.lines), notes.lines
    assert notes.lines[-1].startswith("  big: Successfully installed big-1.0 (")


def test_a_pip_failure_names_its_log_and_shows_the_end(tmp_path: Path) -> None:
    fails = (
        "import sys; print('ERROR: No matching distribution found for nothing-here'); sys.exit(1)"
    )
    with pytest.raises(HarnessError) as caught:
        envs.run_pip([sys.executable, "-c", fails], "broken", tmp_path / "venv", Notes([]))
    log = tmp_path / "venv.pip.log"
    assert str(log) in caught.value.message and "exit 1" in caught.value.message
    assert "No matching distribution found for nothing-here" in caught.value.message
    assert "No matching distribution found" in log.read_text()
    assert caught.value.hint and "pip" in caught.value.hint


def test_the_torch_variant_follows_nvidia_smi_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(envs.TORCH_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    envs._probe_gpu.cache_clear()
    assert envs.torch_variant() == "cpu"
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)'\n")
    smi.chmod(0o755)
    envs._probe_gpu.cache_clear()
    assert envs.torch_variant() == "cuda"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2; exit 9\n")  # driver, no GPU
    envs._probe_gpu.cache_clear()
    assert envs.torch_variant() == "cpu"
    envs._probe_gpu.cache_clear()
    monkeypatch.setenv(envs.TORCH_ENV, "cuda")
    assert envs.torch_variant() == "cuda"
    monkeypatch.setenv(envs.TORCH_ENV, "rocm")
    with pytest.raises(HarnessError, match="INPAINT_BENCH_TORCH='rocm': expected cpu or cuda"):
        envs.torch_variant()


def test_the_cpu_plan_takes_the_newest_local_wheel_and_pins_its_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for version in ("2.9.0", "2.20.0"):  # 2.20 > 2.9 as versions, not as strings
        (tmp_path / f"torch-{version}+cpu-{tag}-{tag}-manylinux_2_28_x86_64.whl").touch()
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setattr(envs, "BASE_RECIPE", REAL_RECIPE)
    plan = REAL_TORCH_PLAN("cpu")
    assert plan.packages[0] == str(
        tmp_path / f"torch-2.20.0+cpu-{tag}-{tag}-manylinux_2_28_x86_64.whl"
    )
    assert plan.pins == ("torch==2.20.0", "torchvision==0.35.*")
    assert plan.fix_torchvision and plan.index == ()
    cuda = REAL_TORCH_PLAN("cuda")
    pinned = (envs.BASE_RECIPE / "torch-cuda.txt").read_text()
    assert cuda.pins and all(pin in pinned for pin in cuda.pins)
    assert cuda.packages == ("torch", "torchvision") and not cuda.fix_torchvision
