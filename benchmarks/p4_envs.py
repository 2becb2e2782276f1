"""P4 environments: the local runner's environments made the old way (a whole torch per model
venv, pip's choice of torch) against the shared base (one torch per host, thin model venvs),
alternating in rounds, medians compared.

    .venv/bin/python benchmarks/p4_envs.py              # 3 rounds
    .venv/bin/python benchmarks/p4_envs.py --rounds 2

Each round, in alternating order: **old**: `python -m venv` and `pip install -r
images/gatedconv/requirements.txt` into it, as the runner did before the shared base; **new**:
in an empty $INPAINT_BENCH_VENVS, the runner's own `venv_for(gatedconv)` (the base, then the thin
venv over it: a fresh host's first environment), then `venv_for` for metrics and classical (the
further environments `make bench` needs, over the base already made). Disk by du; everything is
made under a temporary folder and removed after each round. pip's index is this host's (local
wheel files here), so the times are unpacking and installing, not downloading.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Stopwatch, machine, report_targets, write_result

sys.path.insert(0, str(REPO))

from harness.progress import SilentReporter
from harness.runners import envs


class Folder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.path = REPO / "images" / name


def mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0]) / 1024


def old_way(tmp: Path) -> dict[str, Any]:
    venv = tmp / "old-gatedconv"
    requirements = REPO / "images" / "gatedconv" / "requirements.txt"
    with Stopwatch() as watch:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "-r", str(requirements)], check=True, capture_output=True)
    torch = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {"seconds": watch.seconds, "mib": mib(venv), "torch": torch}


def new_way(tmp: Path) -> dict[str, Any]:
    root = tmp / "new"
    os.environ[envs.VENVS_ENV] = str(root)
    reporter = SilentReporter(quiet=True)
    with Stopwatch() as first:
        envs.venv_for(Folder("gatedconv"), reporter)
    with Stopwatch() as further:
        for name in ("metrics", "classical"):
            envs.venv_for(Folder(name), reporter)
    base, plan = envs.base_env()
    # installed distributions, not folders named torch (scipy has one)
    torches = sorted(str(p) for p in root.rglob("torch-*.dist-info"))
    return {
        "first_s": first.seconds,
        "further_s_each": further.seconds / 2,
        "base_mib": mib(base),
        "thin_mib_each": (mib(root) - mib(base)) / 3,
        "torch_installs": torches,
        "plan": plan.note,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    old: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        order = [("old", old_way, old), ("new", new_way, new)]
        if round_ % 2:
            order.reverse()
        for name, measure, into in order:
            tmp = Path(tempfile.mkdtemp(prefix=f"p4-envs-{name}-"))
            try:
                into.append(measure(tmp))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            print(f"  round {round_ + 1} {name}: {into[-1]}", flush=True)
    old_s = statistics.median(r["seconds"] for r in old)
    first_s = statistics.median(r["first_s"] for r in new)
    further_s = statistics.median(r["further_s_each"] for r in new)
    m: dict[str, Any] = {
        "rounds": args.rounds,
        "old": old,
        "new": new,
        "old_env_s_median": round(old_s, 1),
        "new_first_env_s_median": round(first_s, 1),
        "new_further_env_s_median": round(further_s, 2),
        "first_ratio": round(old_s / first_s, 2),
        "further_ratio": round(old_s / further_s, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"P4 environments ({machine().get('cpu', '?')}), {args.rounds} rounds, medians")
    print(f"  load average before/after: {m['load_before']} / {m['load_after']}")
    print(
        f"  old, a torch per venv ({old[0]['torch']}): {old_s:.1f} s, {old[0]['mib']:.0f} MiB each"
    )
    print(
        f"  new, first (base + thin venv; {new[0]['plan']}): {first_s:.1f} s"
        f" ({m['first_ratio']}x faster), base {new[0]['base_mib']:.0f} MiB"
    )
    print(
        f"  new, each further venv: {further_s:.2f} s ({m['further_ratio']}x faster),"
        f" {new[0]['thin_mib_each'] * 1024:.0f} KiB"
    )
    one_torch = all(len(r["torch_installs"]) == 1 for r in new)
    targets = {"one torch for all model environments (3 environments, 1 torch)": one_torch}
    report_targets(targets)
    path = write_result("p4_envs", m, targets)
    print(f"  wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
