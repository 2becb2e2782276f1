"""The authors' code, imported from its pinned checkout without leaking its module names.

Checkouts use generic top-level names (`model`, `loss`, `util`, `data`) that other code in the
same process may own too: another checkout, or an adapter's own `model.py` in one pytest run.
Stdlib only.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inpaint_sdk import BadData


def checkout(marker: str, what: str, root: str | Path | None = None) -> Path:
    """`root`, else $INPAINT_UPSTREAM (default /inpaint/upstream, where the image copies it);
    BadData naming the folder unless it holds `marker`, a file only `what` has."""
    path = Path(root or os.environ.get("INPAINT_UPSTREAM", "/inpaint/upstream"))
    if not (path / marker).is_file():
        raise BadData(f"{path}: no {marker}; set INPAINT_UPSTREAM to a {what} checkout")
    return path


@contextmanager
def importing_from(folder: Path, packages: tuple[str, ...]) -> Iterator[Path]:
    """`folder` first on sys.path while importing its top-level `packages`; afterwards sys.path
    and sys.modules are as before, so the modules imported here live on only through the
    references the caller keeps."""

    def ours(name: str) -> bool:
        return name.partition(".")[0] in packages

    hidden = {name: sys.modules.pop(name) for name in list(sys.modules) if ours(name)}
    sys.path.insert(0, str(folder))
    for name in packages:
        package = folder / name
        if package.is_dir() and not (package / "__init__.py").is_file():
            # a namespace package (no __init__.py) loses to any module of its name further
            # down sys.path (PEP 420): bind it to `folder` explicitly
            spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = [str(package)]
            sys.modules[name] = importlib.util.module_from_spec(spec)
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if ours(n)]:
            del sys.modules[name]
        sys.modules.update(hidden)
