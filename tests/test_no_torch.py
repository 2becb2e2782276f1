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
        # A finder that refuses them, as a host without torch would: not sys.modules[name] =
        # None, which libraries that probe sys.modules for torch (scipy) take for a module.
        "class Blocked:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision', 'lpips'):\n"
        "            raise ImportError(f'{name} is blocked')\n"
        "sys.meta_path.insert(0, Blocked())\n"
        f"for module in {modules!r}:\n"
        "    importlib.import_module(module)\n"
        "from harness.cli import cli\n"
        "print('ok', len(sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
