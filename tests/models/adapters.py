"""Shared helpers for the upstream-adapter tests (images/<name>/adapter.py).

`load_adapter("madf")` imports images/madf/adapter.py as a fresh module; `upstream_checkout("madf")`
returns Path($INPAINT_UPSTREAM_MADF) or skips the test with the reason to set it.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "contracts" / "sdk"

# Where each upstream lives and which commit the image pins (the manifests say the same).
UPSTREAMS = {
    "madf": (
        "https://github.com/MADF-inpainting/Pytorch-MADF",
        "6fdbf44df002bdf214100784dc83c53aa0e27e75",
    ),
    "aotgan": (
        "https://github.com/researchmm/AOT-GAN-for-Inpainting",
        "2cd1afd8fdfabb101c678f6062d14bc7d302509e",
    ),
    "tfill": (
        "https://github.com/lyndonzheng/TFill",
        "e05bc6b9dbc102624280864ae3c81d01b5614288",
    ),
}

_counter = itertools.count()


def _prepend(path: Path) -> None:
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def load_adapter(name: str) -> ModuleType:
    """Import images/<name>/adapter.py under a unique module name (never plain `adapter`).

    contracts/sdk and images/<name> go on sys.path so the adapter's own imports
    (`inpaint_sdk`, `inpaint_torch`, sibling modules) resolve as they do in the image.
    Each call returns a fresh module object.
    """
    folder = REPO / "images" / name
    path = folder / "adapter.py"
    if not path.is_file():
        raise FileNotFoundError(path)
    _prepend(SDK)
    _prepend(folder)
    module_name = f"_inpaint_adapter_{name}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def upstream_env(name: str) -> str:
    """The environment variable naming a checkout: INPAINT_UPSTREAM_MADF, ..._AOTGAN, ..._TFILL."""
    return "INPAINT_UPSTREAM_" + name.upper().replace("-", "_")


def upstream_reason(name: str) -> str:
    url, commit = UPSTREAMS[name]
    return f"set {upstream_env(name)} to a checkout of {url} at {commit}"


def upstream_checkout(name: str) -> Path:
    """Path($INPAINT_UPSTREAM_<NAME>), or skip the calling test with the reason to set it."""
    value = os.environ.get(upstream_env(name))
    if not value:
        pytest.skip(upstream_reason(name))
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"{upstream_env(name)}={value} is not a directory; " + upstream_reason(name))
    return path
