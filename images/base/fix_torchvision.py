"""Make PyPI's torchvision importable beside a CPU-only torch (offline CI base image only).

PyPI's Linux torchvision wheels are CUDA builds: their compiled extension needs CUDA libraries
that a `+cpu` torch lacks, and `torchvision/_meta_registrations.py` then registers fake kernels
for operators that were never loaded, which raises at import. We drop the unloadable compiled
parts and let those registrations fail quietly. `torchvision.models` and `transforms` (all lpips
and the VGG losses use) keep working; compiled ops such as `torchvision.ops.nms` do not.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path


def imports() -> bool:
    probe = "import torch, torchvision, torchvision.models"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def main() -> int:
    if imports():
        print("torchvision imports as it is")
        return 0
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        print("torchvision is not installed", file=sys.stderr)
        return 1
    package = Path(spec.origin).parent
    for compiled in package.glob("*.so"):
        compiled.unlink()
    shutil.rmtree(package.parent / "torchvision.libs", ignore_errors=True)
    meta = package / "_meta_registrations.py"
    text = meta.read_text()
    guard = (
        "\n# inpaint-bench CI: compiled ops are absent from this CPU image; skip their fakes.\n"
        "def _register_fake_or_skip(name, *args, **kwargs):\n"
        "    def apply(fn):\n"
        "        try:\n"
        "            return torch.library.register_fake(name, *args, **kwargs)(fn)\n"
        "        except RuntimeError:\n"
        "            return fn\n"
        "    return apply\n"
    )
    if "_register_fake_or_skip" not in text:
        text = text.replace("torch.library.register_fake(", "_register_fake_or_skip(")
        first_def = text.index("\ndef ")
        text = text[:first_def] + guard + text[first_def:]
        meta.write_text(text)
    if not imports():
        print("torchvision still does not import", file=sys.stderr)
        return 1
    print("torchvision patched: compiled ops removed, models and transforms work")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
