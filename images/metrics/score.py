"""Score a model's predictions against the ground truth: one CSV row per (image, variant).

    python score.py JOB.json                       # here, with PYTHONPATH=contracts/sdk
    python /inpaint/app/score.py /inpaint/job.json # in the metrics image (the ENTRYPOINT)

The job (score_job.schema.json) names three folders whose PNGs pair by file name: ground truth,
predictions and masks (255 = hole); or, with `sets`, several models' prediction folders of the
same ground truth, each with its own CSV, scored in one pass (the ground truth is decoded and
its LPIPS features computed once). Each file is decoded once, by a thread pool over all CPUs,
one chunk ahead of the scoring. On the CPU the same pool runs the LPIPS trunk (one torch thread
per task) beside the numpy metrics; on a GPU, LPIPS, PSNR and SSIM run there (device_metrics.py)
while the pool decodes.
Every metric is computed on two variants of each prediction: `composite` (the prediction in the
hole, the ground truth elsewhere) and `raw` (the file as the model wrote it). Where the two are
equal (models that composite themselves) the raw scores are copied, not recomputed.

Outputs: the CSV (tidy: image, variant, hole_fraction, bin, one column per metric, and
`<lpips column>_weights`), written to a temporary name and renamed; a sidecar `<stem>.meta.json`
with conventions, the PSNR cap, LPIPS weight provenance, stage timings and counts; and JSON-line
events on stdout (run_start, progress, warning, run_stop) valid under the model contract's event
schema (run_start's command is "predict", its config says step "score"). An empty CSV cell is a
missing value (NaN): no hole (or no known) pixels, or LPIPS weights missing.
`fid` (fid.py), when the job asks for it, is a set-level metric: no CSV column, but one value per
variant over the whole set in the sidecar, {"fid": {"composite", "raw", "status", "images"}},
null with status `n/a (weights missing)` when pytorch-fid or its Inception weights are absent.
Exit codes as the SDK's: 0 done, 1 failure, 2 invalid job, 4 bad data (e.g. a missing prediction).

Modules (each under ~400 lines): this file (the job: load, validate, run, exit code),
set_scoring.py (score_sets and the chunk loop), image_decoding.py (pairing and decoding the
PNGs), group_scoring.py (every metric of one batch), lpips_trunks.py (the LPIPS scorers),
fid_accumulator.py (FID over the set) and score_outputs.py (CSV, sidecar, timings); beneath them
metrics.py (the numpy metrics and METRICS), lpips_scorer.py (LPIPSScorer), device_metrics.py
(PSNR and SSIM in torch) and fid.py (the Inception features and the Fréchet distance).
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inpaint_sdk import (
    EXIT_BAD_DATA,
    EXIT_FAILURE,
    EXIT_INVALID_JOB,
    EXIT_OK,
    BadData,
    Events,
    JobInvalid,
    claim_stdout,
    read_job_json,
)
from score_outputs import AREA_BINS, ScoreResult, area_bin, write_csv
from set_scoring import (
    DEFAULT_METRICS,
    EVENT_COMMAND,
    PROGRESS_EVERY_S,
    SET_METRICS,
    VARIANTS,
    PredictionSet,
    score_pairs,
    score_sets,
)

# What tests, benchmarks and the harness import from `score` (it was one module once).
__all__ = [
    "AREA_BINS",
    "DEFAULT_METRICS",
    "EVENT_COMMAND",
    "PROGRESS_EVERY_S",
    "SCHEMA",
    "SET_METRICS",
    "VARIANTS",
    "PredictionSet",
    "ScoreResult",
    "area_bin",
    "load_job",
    "main",
    "score_job",
    "score_pairs",
    "score_sets",
    "write_csv",
]

SCHEMA = Path(__file__).resolve().parent / "score_job.schema.json"


# --- job -------------------------------------------------------------------------------------


def _with_defaults(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """Fill each absent property with the schema's default, recursing into objects."""
    out = dict(doc)
    for name, prop in schema.get("properties", {}).items():
        if name not in out and "default" in prop:
            out[name] = json.loads(json.dumps(prop["default"]))
        if prop.get("type") == "object" and isinstance(out.get(name), dict):
            out[name] = _with_defaults(prop, out[name])
    return out


def load_job(path: Path) -> dict[str, Any]:
    """Read, validate (score_job.schema.json) and complete a job; paths become absolute."""
    doc = read_job_json(path)
    schema = json.loads(SCHEMA.read_text())
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.path])
    if errors:
        where = ".".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise JobInvalid(f"{path}: {where}: {errors[0].message}")
    if ("predictions" in doc) == ("sets" in doc):
        raise JobInvalid(f"{path}: give either predictions and output, or sets (not both)")
    job = _with_defaults(schema, doc)
    base = Path(path).resolve().parent
    if "sets" not in job:
        job["sets"] = [{"predictions": job.pop("predictions"), "output": job.pop("output")}]
    for key in ("ground_truth", "masks", "weights_dir"):
        if job[key] is not None:
            job[key] = str(base / job[key])
    job["sets"] = [{k: str(base / v) for k, v in s.items()} for s in job["sets"]]
    return job


# --- entry point -----------------------------------------------------------------------------


def score_job(job: dict[str, Any], events: Events) -> list[ScoreResult]:
    return score_sets(
        Path(job["ground_truth"]),
        Path(job["masks"]),
        [PredictionSet(Path(s["predictions"]), Path(s["output"])) for s in job["sets"]],
        metrics=job["metrics"],
        variants=job["variants"],
        lpips_net=job["lpips"]["net"],
        lpips_batch_size=job["lpips"]["batch_size"],
        device=job["device"],
        weights_dir=Path(job["weights_dir"]) if job["weights_dir"] else None,
        allow_random_backbone=job["allow_random_backbone"],
        job_id=job["job_id"],
        events=events,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    events = claim_stdout()
    if len(argv) != 2:
        print(f"usage: {argv[0]} JOB.json", file=sys.stderr)
        return EXIT_INVALID_JOB
    failed = {"status": "failed", "reason": "error", "step": 0, "images_seen": 0}
    try:
        score_job(load_job(Path(argv[1])), events)
    except (JobInvalid, BadData) as error:
        events.emit("run_stop", **failed, message=str(error))
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID_JOB if isinstance(error, JobInvalid) else EXIT_BAD_DATA
    except Exception as error:
        traceback.print_exc()
        events.emit("run_stop", **failed, message=f"{type(error).__name__}: {error}"[:2000])
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
