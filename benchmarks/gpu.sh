#!/usr/bin/env bash
# The GPU part of `make perf`, as one prepared script for a lent, offline NVIDIA machine:
#   P3 on CUDA (each adapter's iteration against the authors' at 256 px, batch 8),
#   P1 on CUDA: the torch PSNR/SSIM (images/metrics/device_metrics.py) against skimage and the
#   numpy path on the GPU itself, then our scorer against the seed's method and the LPIPS trunk
#   floor (each in its own process, alternated for 3 rounds, medians; ≈ 2-3 min),
#   real CUDA training of madf, aotgan and tfill through the harness (local runner, sample data).
# PARTS picks what runs (default "p3 p1 train"; e.g. PARTS=p1 for the P1 GPU check alone).
# Needs: python3 with torch, torchvision, lpips, scikit-image, pillow, pytest, click, pyyaml, rich;
# wheels for what is missing in $WHEELS; the authors' checkouts in $UPSTREAM/{madf,aotgan,tfill};
# data/sample. Writes its logs and results to $OUT (default /tmp/ib-gpu).
set -u
OUT=${OUT:-/tmp/ib-gpu}
PARTS=${PARTS:-"p3 p1 train"}
part() { [[ " $PARTS " == *" $1 "* ]]; }
UPSTREAM=${UPSTREAM:-$PWD/.device/upstream}
WHEELS=${WHEELS:-.device/whl}
mkdir -p "$OUT"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile "$WHEELS"/*.whl || exit 1
fi
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 INPAINT_RANDOM_LOSS_WEIGHTS=1
export TORCH_HOME=/tmp/ib-gpu-torch-home  # empty: nothing is downloaded, LPIPS reads n/a
export INPAINT_UPSTREAM_MADF=$UPSTREAM/madf INPAINT_UPSTREAM_AOTGAN=$UPSTREAM/aotgan
export INPAINT_UPSTREAM_TFILL=$UPSTREAM/tfill
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
    nproc
} >"$OUT/machine.txt" 2>&1

if part p3; then
    timeout "${P3_TIMEOUT:-140}" python3 -W ignore benchmarks/p3_step_rate.py --device cuda \
        >"$OUT/p3.log" 2>&1
    grep -E "it/s|met|MISSED" "$OUT/p3.log"
    cp benchmarks/results/p3_step_rate_cuda.json "$OUT/" 2>/dev/null
fi

if part p1; then
    # The CUDA cases of the device-metric tests run here (they exist only where CUDA is).
    timeout "${P1_TEST_TIMEOUT:-120}" python3 -m pytest -q -p no:cacheprovider \
        tests/metrics/test_device_metrics.py >"$OUT/p1_tests.log" 2>&1
    echo "device metric tests exit: $?" >>"$OUT/p1_tests.log"
    tail -4 "$OUT/p1_tests.log"
    timeout "${P1_TIMEOUT:-300}" python3 -W ignore benchmarks/p1_scoring.py --device cuda \
        --images 300 --rounds 3 >"$OUT/p1.log" 2>&1
    cat "$OUT/p1.log"
    cp benchmarks/results/p1_scoring_cuda.json "$OUT/" 2>/dev/null
fi
part train || exit 0

# Real training through the harness: the sample profile's data, the three upstream models,
# a 15 s budget each, on GPU 0. The local runner's environments become one wrapper around
# this python3 (the machine is offline: pip cannot install the requirements).
timeout "${RUN_TIMEOUT:-280}" python3 - "$UPSTREAM" >"$OUT/run.log" 2>&1 <<'EOF'
import os
import sys
from pathlib import Path

import yaml

import harness.runners.local as local
from harness.cli import cli

upstream = sys.argv[1]


def wrapper_venv(folder, reporter=None) -> Path:
    venv = Path("/tmp/ib-gpu-venv")
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    return venv


local.venv_for = wrapper_venv
config = yaml.safe_load(Path("benchmark.yaml").read_text())
models = os.environ.get("GPU_MODELS", "madf aotgan tfill").split()
gpu = dict(config["profiles"]["sample"], models=models, train_budget="15s")
gpu.pop("model_overrides", None)  # the seed report's batch sizes: 4, 4, 8
# paths in a config are relative to its folder: make them absolute for one in /tmp
gpu["data_root"] = str(Path(gpu["data_root"]).resolve())
for model in config["models"].values():
    model["image"] = str(Path(model["image"]).resolve())
config["profiles"] = {"gpu": gpu}
Path("/tmp/ib-gpu.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
argv = ["run", "--config", "/tmp/ib-gpu.yaml", "--profile", "gpu", "--runner", "local"]
argv += ["--gpu", "0", "--run-dir", "/tmp/ib-gpu-run", "--quiet"]
for name in ("madf", "aotgan", "tfill"):
    argv += ["--upstream-src", f"{name}={upstream}/{name}"]
cli(argv, standalone_mode=False)
EOF
echo "harness run exit: $?" >>"$OUT/run.log"
python3 - "$OUT" <<'EOF'
import json
import sqlite3
import sys

rows = sqlite3.connect("/tmp/ib-gpu-run/ledger.sqlite").execute(
    "SELECT kind, label, status, result FROM steps ORDER BY rowid"
).fetchall()
steps = [{"kind": k, "label": l, "status": s, "result": json.loads(r or "{}")} for k, l, s, r in rows]
with open(f"{sys.argv[1]}/run_steps.json", "w") as handle:
    json.dump(steps, handle, indent=1)
for step in steps:
    r = step["result"]
    if step["kind"] == "train":
        rate = r.get("steps", 0) / max(r.get("train_s") or 1e-9, 1e-9)
        print(f"train {step['label']}: {step['status']}, {r.get('steps')} steps in "
              f"{r.get('train_s')} s = {rate:.2f} it/s ({r.get('reason')})")
    else:
        print(f"{step['kind']} {step['label']}: {step['status']} {r.get('reason', '')}")
EOF
tail -5 "$OUT/run.log"
