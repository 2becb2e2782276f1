"""Let tests/metrics/*.py import `metrics` and `score` (images/metrics), the SDK and `_helpers`."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (HERE, ROOT / "images" / "metrics", ROOT / "contracts" / "sdk"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
