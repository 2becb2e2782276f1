"""P4 per-job overhead of the wrapped models: where a train, predict or describe job of madf,
aotgan and tfill spends the time that is not the model's own computing, old code against new.

    python benchmarks/p4_job_overhead.py --old /tmp/old-checkout            # 2 rounds
    python benchmarks/p4_job_overhead.py --old /tmp/old-checkout --rounds 3 --models madf

`--old` is a plain copy of an earlier revision (`git archive REV | tar -x -C DIR`); the new code
is this checkout. Each job runs as the local runner runs it (the adapter's entrypoint in a fresh
interpreter, cwd the image folder, PYTHONPATH the SDK, upstream from $INPAINT_UPSTREAM_<MODEL>,
seeded random loss-network weights) on the sample profile's data (128 px, the profile's batch
sizes), one training source. Per model and round, old and new alternate (the order flips each
round) and run the same jobs: train (a short budget, `--budget`: setup and the checkpoint save
are what is measured), predict of 12 images from that checkpoint, describe as the harness writes
it (128 px and the 256 px reference, latency runs as `harness.jobs.describe_job` asks on the
CPU). Times come from the jobs' own event timestamps, relative to the spawn:

- train `to_run_start`: interpreter, imports, data, building the nets and the warm-up step;
  `save_s`: the final checkpoint (run_stop's time minus the last progress event's, which the
  loop emits right before it); `exit_s`: from run_stop to the process's exit;
- predict `to_first_batch`: to the first progress event (a batch of images written);
- describe `total`.

Medians over the rounds; the 1-minute load before each job is recorded. Results in
benchmarks/results/p4_job_overhead.json.

    python benchmarks/p4_job_overhead.py --old /tmp/old-checkout --parts --rounds 3

`--parts` times only the parts this change touched, each in a fresh interpreter of the old and
the new tree in turn (order flipped each round), on one MADF checkpoint trained here
(`--checkpoint`, else a one-step training of the new tree makes one): `save` (the checkpoint
written again by `save_checkpoint`), `predict_setup` (`load_checkpoint` and the predict network
loaded from it, as predict builds it), `describe_extra` (describe's parameter counts and the
network for the 256 px reference: what describe spends besides the forwards). Results in
benchmarks/results/p4_job_overhead_parts.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, write_result

sys.path.insert(0, str(REPO))

from harness.config import load_benchmark
from harness.jobs import describe_job

MODELS = ("madf", "aotgan", "tfill")
CHECKPOINTS = {"madf": "madf.pt", "aotgan": "aotgan.pt", "tfill": "tfill.pt"}


def sample_data(into: Path) -> Path:
    """The bundled sample set (`inpaint-bench data sample`), built under `into`."""
    shutil.copy(REPO / "benchmark.yaml", into / "benchmark.yaml")
    cli = Path(sys.executable).parent / "inpaint-bench"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([str(cli), "data", "sample", "-q"], cwd=into, env=env, check=True)
    return into / "data" / "sample"


def run_job(tree: Path, model: str, doc: dict[str, Any], work: Path, data: Path) -> dict:
    """Spawn `tree`'s adapter for `doc` as the local runner does; the events with their times
    relative to the spawn, and the exit."""
    job = work / f"{doc['command']}.json"
    job.write_text(json.dumps(doc))
    env = {
        **os.environ,
        "INPAINT_DATA": str(data),
        "INPAINT_JOB": str(job),
        "INPAINT_CHECKPOINTS": str(work / "checkpoints"),
        "INPAINT_OUTPUTS": str(work / "outputs" / doc["command"]),
        "INPAINT_CONTRACTS": str(tree / "contracts" / "v1"),
        "PYTHONPATH": str(tree / "contracts" / "sdk"),
        "INPAINT_UPSTREAM": os.environ.get(
            f"INPAINT_UPSTREAM_{model.upper()}", f"/work/shared/upstream/{model}"
        ),
        "INPAINT_RANDOM_LOSS_WEIGHTS": "1",
        "PYTHONUNBUFFERED": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    load = os.getloadavg()[0]
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "adapter.py", doc["command"], str(job)],
        cwd=tree / "images" / model,
        env=env,
        capture_output=True,
        text=True,
    )
    end = time.time()
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0:
        raise SystemExit(f"{tree} {model} {doc['command']} failed:\n{proc.stderr[-3000:]}")
    at = {e["event"]: e["time"] - start for e in reversed(events)}  # first of each kind
    return {"events": events, "at": at, "start": start, "total": end - start, "load": load}


def jobs_for(model: str, budget_s: float) -> tuple[dict, dict, dict]:
    profile = load_benchmark(REPO / "benchmark.yaml").profile("sample")
    entry = next(m for m in profile.models if m.name == model)
    manifest = json.loads((REPO / "images" / model / "manifest.json").read_text())
    common = {
        "contract_version": "1",
        "job_id": "overhead",
        "seed": 0,
        "device": "cpu",
        "image_size": profile.image_size,
        "batch_size": entry.batch_size,
        "hyperparameters": manifest.get("defaults", {}).get("hyperparameters", {}),
    }
    train = {
        **common,
        "command": "train",
        "budget_s": budget_s,
        "progress_every_s": 2,
        "checkpoint_every_s": 600,
        "resume": False,
        "data": {
            "train_images": "sources/scenes/train",
            "train_masks": "masks/train",
            "val_images": "sources/scenes/val",
            "val_masks": "masks/val",
        },
    }
    predict = {
        **common,
        "command": "predict",
        "data": {"inputs": "test/scenes_test", "masks": "masks/test"},
        "output_dir": ".",
    }
    describe = {**describe_job("overhead", profile, entry, "cpu", manifest), "command": "describe"}
    return train, predict, describe


def one_round(tree: Path, model: str, jobs: tuple[dict, dict, dict], data: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        work = Path(tmp)
        train_doc, predict_doc, describe_doc = jobs
        train = run_job(tree, model, train_doc, work, data)
        stop = train["at"]["run_stop"]
        progress = [e["time"] - train["start"] for e in train["events"] if e["event"] == "progress"]
        checkpoint = work / "checkpoints" / CHECKPOINTS[model]
        size = checkpoint.stat().st_size
        predict = run_job(tree, model, predict_doc, work, data)
        describe = run_job(tree, model, describe_doc, work, data)
    return {
        "train_to_run_start": train["at"]["run_start"],
        "train_save_s": stop - progress[-1],
        "train_exit_s": train["total"] - stop,
        "train_total": train["total"],
        "checkpoint_mib": size / 2**20,
        "predict_to_first_batch": predict["at"]["progress"],
        "predict_total": predict["total"],
        "describe_total": describe["total"],
        "load": [train["load"], predict["load"], describe["load"]],
    }


PART_CODE = {
    "save": """
payload = inpaint_torch.load_checkpoint(CHECKPOINT)
payload.pop("contract_version")
start = time.perf_counter()
inpaint_torch.save_checkpoint(WORK / "again.pt", payload)
""",
    "predict_setup": """
start = time.perf_counter()
saved = inpaint_torch.load_checkpoint(CHECKPOINT)
cfg = MODEL.Config.from_saved(saved["config"])
network = MODEL.generator(cfg, saved, CTX)
""",
    "describe_extra": """
cfg = MODEL.Config.from_job({"image_size": 128, "batch_size": 1})
network = MODEL.generator(cfg, None, CTX)
start = time.perf_counter()
MODEL.parameters(cfg, network)
if getattr(MODEL, "network_depends_on_size", True):  # the old tree rebuilt it per size
    network = None
    reference = MODEL.Config.from_job({"image_size": 256, "batch_size": 1})
    network = MODEL.generator(reference, None, CTX)
""",
}
PART_PRELUDE = """
import io, sys, time
from pathlib import Path
import adapter, inpaint_torch
from inpaint_loop import Context
from inpaint_sdk import Events
MODEL, CTX = adapter.MODEL, Context(Events(io.StringIO()))
CHECKPOINT, WORK = Path(sys.argv[1]), Path(sys.argv[2])
"""


def time_part(tree: Path, part: str, checkpoint: Path) -> dict[str, float]:
    """One part in a fresh interpreter of `tree`'s MADF adapter: its seconds and the load."""
    code = PART_PRELUDE + PART_CODE[part] + "\nprint(time.perf_counter() - start)\n"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tree / "contracts" / "sdk"), "."]),
        "INPAINT_UPSTREAM": os.environ.get("INPAINT_UPSTREAM_MADF", "/work/shared/upstream/madf"),
        "INPAINT_RANDOM_LOSS_WEIGHTS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="overhead-part-") as work:
        out = subprocess.run(
            [sys.executable, "-c", code, str(checkpoint), work],
            cwd=tree / "images" / "madf",
            env=env,
            capture_output=True,
            text=True,
        )
    if out.returncode != 0:
        raise SystemExit(f"{tree} {part} failed:\n{out.stderr[-3000:]}")
    return {"seconds": float(out.stdout.split()[-1]), "load": load}


def parts(args: argparse.Namespace, trees: dict[str, Path]) -> int:
    with tempfile.TemporaryDirectory(prefix="overhead-data-") as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            data = sample_data(Path(tmp))
            train, _, _ = jobs_for("madf", 1.0)
            work = Path(tmp) / "train"
            work.mkdir()
            run_job(REPO, "madf", {**train, "max_steps": 1}, work, data)
            checkpoint = work / "checkpoints" / CHECKPOINTS["madf"]
        runs: dict[str, dict[str, list[dict]]] = {p: {"old": [], "new": []} for p in PART_CODE}
        for number in range(args.rounds):
            for part in PART_CODE:
                order = ("old", "new") if number % 2 == 0 else ("new", "old")
                for which in order:
                    result = time_part(trees[which], part, checkpoint)
                    runs[part][which].append(result)
                    print(part, which, result, flush=True)
        size = checkpoint.stat().st_size
    medians = {
        part: {which: statistics.median(r["seconds"] for r in rs) for which, rs in sides.items()}
        for part, sides in runs.items()
    }
    for part, sides in medians.items():
        ratio = sides["old"] / sides["new"]
        print(f"madf {part:15} old {sides['old']:7.2f} s  new {sides['new']:7.2f} s  {ratio:.1f}x")
    write_result(
        "p4_job_overhead_parts",
        {"runs": runs, "medians": medians, "checkpoint_bytes": size, "machine": machine()},
        {},
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="a copy of the old revision")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--budget", type=float, default=3.0, help="train budget_s")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--parts", action="store_true", help="time the changed parts only")
    parser.add_argument("--checkpoint", type=Path, help="--parts: a MADF checkpoint to use")
    args = parser.parse_args()
    trees = {"old": args.old.resolve(), "new": REPO}
    if args.parts:
        return parts(args, trees)
    runs: dict[str, dict[str, list[dict]]] = {m: {"old": [], "new": []} for m in args.models}
    with tempfile.TemporaryDirectory(prefix="overhead-data-") as tmp:
        data = sample_data(Path(tmp))
        for model in args.models:
            jobs = jobs_for(model, args.budget)
            for number in range(args.rounds):
                order = ("old", "new") if number % 2 == 0 else ("new", "old")
                for which in order:
                    result = one_round(trees[which], model, jobs, data)
                    runs[model][which].append(result)
                    print(model, which, json.dumps({k: v for k, v in result.items()}), flush=True)
    medians = {
        model: {
            which: {
                key: statistics.median(r[key] for r in results)
                for key in results[0]
                if key != "load"
            }
            for which, results in sides.items()
        }
        for model, sides in runs.items()
    }
    for model, sides in medians.items():
        for key in sides["old"]:
            print(f"{model:7} {key:24} old {sides['old'][key]:8.2f}  new {sides['new'][key]:8.2f}")
    write_result(
        "p4_job_overhead",
        {"runs": runs, "medians": medians, "budget_s": args.budget, "machine": machine()},
        {},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
