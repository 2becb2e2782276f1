"""Which trained model a predict or score step uses: the training seed and, for a snapshot, the
training seconds it was kept at (contracts/README.md, "Snapshots").

A run trains each model once per seed of its profile; a model whose manifest claims snapshots
also keeps one at each of the profile's snapshot times. The top-level `seed` of benchmark.yaml
at the final checkpoint is the "plain" one: its labels and folders are those of a run before
seeds and snapshots existed, so old run folders and ledger keys stay as they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def seconds_text(seconds: float) -> str:
    """900.0 → "900", 1.5 → "1.5": up to three decimals, trailing zeros dropped (the contract's
    snapshot folder names, which the SDK writes the same way)."""
    return f"{float(seconds):.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Checkpoint:
    """One trained model of a run: `seed`, and `snapshot_s` (None: the final checkpoint)."""

    seed: int
    snapshot_s: float | None = None
    plain_seed: int = 0  # the profile's seed whose final checkpoint keeps the old names

    @property
    def plain(self) -> bool:
        return self.seed == self.plain_seed and self.snapshot_s is None

    @property
    def tag(self) -> str:
        """A folder-name suffix: "" (plain), "@seed1", "@900s" or "@seed1@900s". `@` is in no
        model or test set name (benchmark.yaml's name pattern), so paths never collide."""
        seed = "" if self.seed == self.plain_seed else f"@seed{self.seed}"
        return seed + ("" if self.snapshot_s is None else f"@{seconds_text(self.snapshot_s)}s")

    def label(self, source: str) -> str:
        """The step label's part in parentheses: "scenes", "scenes, seed 1, at 900s"."""
        parts = [source]
        if self.seed != self.plain_seed:
            parts.append(f"seed {self.seed}")
        if self.snapshot_s is not None:
            parts.append(f"at {seconds_text(self.snapshot_s)}s")
        return ", ".join(parts)


def to_predict(
    plain_seed: int, seed: int, asked: tuple[float, ...], kept: dict[str, Any]
) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints of one training to predict from: the final one, then each asked snapshot
    that the training kept (`kept`: its result's "snapshots", by seconds_text); also the asked
    ones it did not keep (an image without the capability keeps none and is not asked)."""
    found = [Checkpoint(seed, None, plain_seed)]
    found += [Checkpoint(seed, s, plain_seed) for s in asked if seconds_text(s) in kept]
    missing = [f"{seconds_text(s)}s" for s in asked if seconds_text(s) not in kept]
    return found, missing


def kept_snapshots(events: Iterable[dict[str, Any]]) -> dict[float, dict[str, Any]]:
    """The snapshots a train step's checkpoint events announce (every attempt's: a resumed run
    keeps the earlier ones): asked seconds → {"path", "trained_s", "step"}."""
    kept: dict[float, dict[str, Any]] = {}
    for event in events:
        seconds = event.get("snapshot_s") if event.get("event") == "checkpoint" else None
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            kept[float(seconds)] = {
                "path": event.get("path"),
                "trained_s": event.get("trained_s"),
                "step": event.get("step"),
            }
    return kept


def final_trained_s(events: Iterable[dict[str, Any]], fallback: float) -> float:
    """The training seconds of the final checkpoint: the last plain checkpoint event's
    `trained_s` (resumed time included), else `fallback` (an image that does not report it)."""
    trained = [
        e["trained_s"]
        for e in events
        if e.get("event") == "checkpoint"
        and e.get("snapshot_s") is None
        and isinstance(e.get("trained_s"), int | float)
    ]
    return float(trained[-1]) if trained else float(fallback)
