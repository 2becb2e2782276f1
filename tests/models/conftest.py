"""Let tests/models/*.py import `adapters` (this folder) and `runs`/`datatree` (tests/)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):  # tests/models (adapters.py), tests (runs.py, datatree.py)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
