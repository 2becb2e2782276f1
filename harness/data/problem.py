"""A problem found in a data tree, and how a message names many files without flooding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_SHOWN_NAMES = 5


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a data tree: where (None = the tree as a whole), what, what to do."""

    path: Path | None
    message: str
    hint: str


def shown_names(names: list[str]) -> str:
    """Join the first few of `names` and say how many more there are."""
    more = len(names) - _SHOWN_NAMES
    return ", ".join(names[:_SHOWN_NAMES]) + (f" and {more} more" if more > 0 else "")
