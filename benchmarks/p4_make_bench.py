"""P4 `make bench` with the `sample` profile, as a new user sees it: a fresh clone of the repository
(`git clone`), then `make bench PROFILE=sample RUNNER=local` there, timed to the end, with a
per-stage breakdown and the disk it took.

    .venv/bin/python benchmarks/p4_make_bench.py           # the full thing, pip install included
    .venv/bin/python benchmarks/p4_make_bench.py --runner auto   # docker where its images build
    .venv/bin/python benchmarks/p4_make_bench.py --quick   # no install: this checkout's venv runs
                                                           # the clone's harness (PYTHONPATH)

Stages come from three clocks that agree (all wall time on this host): each output line of
`make` is stamped as it arrives (the harness's notes: profile, sample set, runner, run folder),
the clone's .venv/.installed marks the end of the install stage (the harness alone: what
`make bench` installs), and the run's ledger has every
pipeline step's start and end (inputs, describe, train, predict, score); what follows the last
step is the report.

Target: total wall time ≤ 10 minutes on this machine. The local runner is the default here, as a
host without the docker images sees it (`--runner auto` takes images already built on this host,
which a new user does not have). Disk: `du` of the clone's .venv, the environments, the data
and the run folder, taken before the temporary folder is removed. What is cached outside the
clone is reported, not removed: docker images and their build cache (docker runner), upstream
checkouts, pip's wheel cache. The environments (local runner) are built afresh in the temporary
folder (INPAINT_BENCH_VENVS), as a new user would, unless --cached-model-venvs; their pip time (the
shared torch, then each model's venv) is a stage of its own, taken out of the step that built
them. Models whose upstream source is given by INPAINT_UPSTREAM_<MODEL> run from it; models the
host cannot run (no upstream source offline) are skipped by the harness and listed: they are
not in the total.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, report_targets, write_result

TARGET_S = 600.0


def stamped_run(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[int, list]:
    """Run `argv`, stamping each line of its stdout and stderr (wall clock) as it arrives."""
    lines: list[tuple[float, str, str]] = []
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def read(stream: Any, name: str) -> None:
        for line in stream:
            lines.append((time.time(), name, line.rstrip("\n")))

    readers = [
        threading.Thread(target=read, args=(process.stdout, "out")),
        threading.Thread(target=read, args=(process.stderr, "err")),
    ]
    for reader in readers:
        reader.start()
    code = process.wait()
    for reader in readers:
        reader.join()
    lines.sort(key=lambda x: x[0])
    with log.open("w") as handle:
        for at, name, text in lines:
            handle.write(f"{at:.3f} {name} {text}\n")
    return code, lines


def first(lines: list[tuple[float, str, str]], prefix: str) -> float | None:
    return next((at for at, _, text in lines if text.startswith(prefix)), None)


def ledger_steps(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "ledger.sqlite"
    if not path.is_file():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT kind, label, status, started_at, finished_at, reason, result FROM steps"
            " ORDER BY started_at"
        ).fetchall()
    finally:
        conn.close()
    return [dict(r) for r in rows]


def venv_builds(lines: list[tuple[float, str, str]]) -> list[tuple[float, float, str]]:
    """(start, end, model) of each environment the local runner created (the shared torch and
    each model's venv over it): its note, then the ready marker it writes last."""
    builds = []
    for at, _, text in lines:
        match = re.match(r"creating the (.+?) environment in (\S+) \(", text)
        ready = Path(match.group(2)) / ".inpaint-bench-ready" if match else None
        if match and ready is not None and ready.is_file():
            builds.append((at, ready.stat().st_mtime, match.group(1)))
    return builds


def breakdown(
    start: float,
    end: float,
    installed: float | None,
    lines: list[tuple[float, str, str]],
    steps: list[dict[str, Any]],
    builds: list[tuple[float, float, str]],
) -> dict[str, float]:
    """Seconds per stage, in order; they add up to end - start."""
    marks: list[tuple[float, str]] = []  # (when a stage ends, its name)
    if installed is not None:
        marks.append((installed, "install: venv + harness (make bench's part of make install)"))
    profile_at = first(lines, "profile:")
    if profile_at is not None:
        marks.append((profile_at, "harness start (imports, config, profile choice)"))
    # `data check` has no note of its own: it ends where the runner choice begins
    data_end = min(
        (t for t in (first(lines, "building inpaint-bench/"), first(lines, "runner:")) if t),
        default=None,
    )
    if data_end is not None:
        sampled = first(lines, "building the sample set") is not None
        marks.append((data_end, "data sample + data check" if sampled else "data check"))
    folder_at = first(lines, "run folder:")
    if folder_at is not None:
        marks.append((folder_at, "runner choice (docker engine, image builds)"))
    if steps:
        marks.append((steps[0]["started_at"], "pipeline start"))
    for step in steps:
        kind, label = step["kind"], step["label"]
        if kind in ("train", "describe"):
            name = f"{kind} {label}"
        elif kind == "predict":
            name = f"predict {label.split(' ')[0]}"
        else:
            name = f"{kind} (all)"
        # gaps between steps (ledger writes, checks, renames) go to the step they precede
        marks.append((step["finished_at"] or step["started_at"], name))
    skips = [at for at, _, text in lines if text.startswith("skipping:")]
    if skips and (not marks or skips[-1] > marks[-1][0]):
        marks.append((skips[-1], "upstream fetch tries (skipped models)"))
    marks.append((end, "report (after the last step)"))
    stages: dict[str, float] = {}
    previous = start
    for at, name in marks:
        seconds = at - previous
        # a model venv built inside this stage is its own stage (it is pip, like the install)
        for b_start, b_end, model in builds:
            overlap = max(0.0, min(at, b_end) - max(previous, b_start))
            if overlap:
                stages[f"environment: {model} (pip)"] = overlap
                seconds -= overlap
        stages[name] = stages.get(name, 0.0) + seconds
        previous = at
    return stages


def cached_outside() -> dict[str, Any]:
    venvs = Path(os.environ.get("INPAINT_BENCH_VENVS", Path.home() / ".cache/inpaint-bench/venvs"))
    upstream = Path.home() / ".cache/inpaint-bench/upstream"
    info: dict[str, Any] = {
        "model_venvs": sorted(p.name for p in venvs.glob("*-*")) if venvs.is_dir() else [],
        "upstream_checkouts": sorted(p.name for p in upstream.iterdir())
        if upstream.is_dir()
        else [],
    }
    if shutil.which("docker"):
        out = subprocess.run(
            ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        info["docker_images"] = sorted(
            line for line in out.stdout.split() if line.startswith("inpaint-bench/")
        )
    return info


def disk_use(paths: dict[str, Path]) -> dict[str, float]:
    """MiB each path takes (du: hard links counted once within a path); the clone's own files
    exclude the folders listed before it that lie inside it."""
    use: dict[str, float] = {}
    for name, path in paths.items():
        if not path.exists():
            use[name] = 0.0
            continue
        inside = [p for p in paths.values() if p != path and p.is_relative_to(path)]
        excludes = [f"--exclude={p}" for p in inside]
        out = subprocess.run(
            ["du", "-sm", *excludes, str(path)], capture_output=True, text=True, check=True
        )
        use[name] = float(out.stdout.split()[0])
    use["total"] = sum(use.values())
    return use


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="skip the install: this checkout's venv runs the clone"
    )
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    parser.add_argument(
        "--runner",
        choices=["local", "auto", "docker"],
        default="local",
        help="make bench's RUNNER (default local: a new user's host has no images built)",
    )
    parser.add_argument(
        "--cached-model-venvs",
        action="store_true",
        help="reuse the per-model venvs in ~/.cache/inpaint-bench/venvs instead of building them"
        " afresh in the clone's temporary folder (as a new user would); implied by --quick",
    )
    args = parser.parse_args()
    fresh_venvs = not (args.cached_model_venvs or args.quick)

    before = cached_outside()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="p4-make-bench-"))
    clone = tmp / "inpaint-bench"
    try:
        started = time.time()
        subprocess.run(
            ["git", "clone", "--quiet", str(REPO), str(clone)], check=True, capture_output=True
        )
        cloned = time.time()
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env["CI"] = "true"  # plain notes on stderr, as in a log, not a live display
        # MADF's and AOT-GAN's VGG loss weights cannot be downloaded here: seeded random ones
        # cost the same (as in every benchmark); without this those models fail in seconds
        env.setdefault("INPAINT_RANDOM_LOSS_WEIGHTS", "1")
        if fresh_venvs:
            env["INPAINT_BENCH_VENVS"] = str(tmp / "model-venvs")
        if args.quick:
            bin_dir = REPO / ".venv" / "bin"
            env["PYTHONPATH"] = str(clone)
            argv = [
                str(bin_dir / "python"),
                "-c",
                "from harness.cli import cli; cli()",
                "run",
                "--config",
                "benchmark.yaml",
                "--profile",
                "sample",
                "--runner",
                args.runner,
            ]
        else:
            argv = ["make", "bench", "PROFILE=sample", f"RUNNER={args.runner}"]
        print(f"P4 in {clone}: {' '.join(argv)}", flush=True)
        code, lines = stamped_run(argv, clone, env, tmp / "make.log")
        ended = time.time()
        marker = clone / ".venv" / ".installed"
        installed = marker.stat().st_mtime if marker.is_file() and not args.quick else None
        run_dir = clone / "runs" / "sample"
        steps = ledger_steps(run_dir)
        run_info = json.loads((run_dir / "run.json").read_text()) if run_dir.is_dir() else {}
        builds = venv_builds(lines)
        stages = breakdown(cloned, ended, installed, lines, steps, builds)
        tail = [text for _, _, text in lines[-15:]]
        disk = disk_use(
            {
                ".venv (the harness)": clone / ".venv",
                "environments (shared torch + model venvs)": Path(
                    env.get("INPAINT_BENCH_VENVS", Path.home() / ".cache/inpaint-bench/venvs")
                ),
                "data/sample": clone / "data" / "sample",
                "runs/sample (the run folder)": run_dir,
                "the clone's files (git checkout)": clone,
            }
        )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    total = ended - started
    runner = next((t for _, _, t in lines if t.startswith("runner:")), "runner: ?")
    failed = [f"{s['kind']} {s['label']}: {s['reason']}" for s in steps if s["status"] == "failed"]
    m: dict[str, Any] = {
        "quick": args.quick,
        "fresh_model_venvs": fresh_venvs,
        "model_venvs_built": [
            {"model": model, "seconds": round(b_end - b_start, 1)}
            for b_start, b_end, model in builds
        ],
        "exit_code": code,
        "total_s": round(total, 1),
        "clone_s": round(cloned - started, 2),
        "install_s": round(installed - cloned, 1) if installed else None,
        "after_install_s": round(ended - (installed or cloned), 1),
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "runner": runner,
        "skipped": run_info.get("skipped", {}),
        "failed_steps": failed,
        "steps": [
            {
                "kind": s["kind"],
                "label": s["label"],
                "status": s["status"],
                "seconds": round((s["finished_at"] or s["started_at"]) - s["started_at"], 2),
            }
            for s in steps
        ],
        "disk_mib": disk,
        "random_loss_weights": env.get("INPAINT_RANDOM_LOSS_WEIGHTS") == "1",
        "upstream_from": {k: v for k, v in os.environ.items() if k.startswith("INPAINT_UPSTREAM_")},
        "cached_outside_the_clone_before": before,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"P4 make bench PROFILE=sample ({machine().get('cpu', '?')}); {runner}")
    print(f"  load average before/after: {m['load_before']} / {m['load_after']}")
    venvs = "built afresh" if fresh_venvs else "reused from ~/.cache/inpaint-bench/venvs"
    print(f"  per-model venvs (local runner): {venvs}")
    print(f"  exit code {code}; total {total:.1f} s = {total / 60:.2f} min (target ≤ 10 min)")
    width = max(len(k) for k in stages)
    for name, seconds in stages.items():
        print(f"  {name.ljust(width)}  {seconds:8.2f} s  {seconds / total:6.1%}")
    if m["install_s"] is not None:
        print(
            f"  without the install: {m['after_install_s']:.1f} s"
            f" ({m['after_install_s'] / total:.1%} of the total)"
        )
    print("  disk (du):")
    for name, mib in disk.items():
        print(f"    {name}: {mib / 1024:.2f} GiB")
    if m["skipped"]:
        # not in the total: on a host that can fetch their upstream source they would run
        print(f"  skipped models (NOT in the total): {', '.join(m['skipped'])}")
        for model, reason in m["skipped"].items():
            print(f"    {model}: {reason[:120]}")
    if failed:
        print("  failed steps:\n    " + "\n    ".join(failed))
    if code != 0:
        print("  last output:\n    " + "\n    ".join(tail))
    ran = len(run_info.get("models", [])) - len(m["skipped"])
    scope = f"{ran} of {len(run_info.get('models', []))} models ran"
    targets = {
        f"make bench PROFILE=sample: total ≤ {TARGET_S / 60:g} min ({scope})": total <= TARGET_S
    }
    if args.quick:
        targets = {"(--quick: no install; not the P4 figure)": total <= TARGET_S}
    report_targets(targets)
    suffix = "_quick" if args.quick else "" if fresh_venvs else "_cached_venvs"
    name = f"p4_make_bench{suffix}"
    path = write_result(name, m, targets)
    print(f"  wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
