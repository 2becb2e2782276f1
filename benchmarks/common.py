"""Shared by the benchmarks: what machine ran them, and where their results go.

Each benchmark is a script (`python benchmarks/<name>.py`), compares inside one run on one
machine, prints its ratio lines, and writes benchmarks/results/<name>.json (machine, date,
command, measurements, targets met) for docs/performance.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def machine() -> dict[str, Any]:
    """CPU model, core count, memory, GPU (if torch sees one), Python and torch versions."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": len(os.sched_getaffinity(0)),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(
            line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line
        )
        meminfo = Path("/proc/meminfo").read_text().split()
        info["memory_gib"] = round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        pass
    with contextlib.suppress(metadata.PackageNotFoundError):
        info["torch"] = metadata.version("torch")
    # Only where the benchmark imported torch itself: importing it here would add ~500 MB to this
    # process, which children started later (scaling.py) would report as their own peak.
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__  # with its local label (+cu130, +cpu)
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def write_result(name: str, measurements: dict[str, Any], targets: dict[str, bool]) -> Path:
    """benchmarks/results/<name>.json; returns its path. `targets`: target text → met?"""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "revision": git_revision(),
        "machine": machine(),
        "measurements": measurements,
        "targets": targets,
    }
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def report_targets(targets: dict[str, bool]) -> None:
    for text, met in targets.items():
        print(f"  {'met ' if met else 'MISSED'}  {text}")


class Stopwatch:
    """`with Stopwatch() as w: ...; w.seconds`: wall seconds by perf_counter; `w.cpu_seconds`:
    this process's CPU time over the block (all threads; less sensitive to others' load)."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start
