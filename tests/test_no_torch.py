"""The host harness installs and runs without torch: no harness module imports it."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import harness


def test_every_harness_module_imports_with_torch_blocked() -> None:
    modules = [m.name for m in pkgutil.walk_packages(harness.__path__, "harness.")]
    assert "harness.pipeline" in modules and "harness.runners.docker" in modules
    program = (
        "import sys, importlib\n"
        "for name in ('torch', 'torchvision', 'lpips'):\n"
        "    sys.modules[name] = None  # any import of it now raises ImportError\n"
        f"for module in {modules!r}:\n"
        "    importlib.import_module(module)\n"
        "from harness.cli import cli\n"
        "print('ok', len(sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
