"""images/metrics/score.py end to end on a tiny tree: CSV rows, sidecar, events, errors.

Runs in the dev venv (no torch) except the LPIPS-with-random-backbone test, which skips there.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import metrics
import numpy as np
import pytest
import score
from _helpers import assert_close, correlated, seed_all
from inpaint_sdk import BadData, Events, JobInvalid
from lpips_scorer import RANDOM_BACKBONE, WEIGHTS_MISSING, LPIPSScorer
from metrics import METRICS, PSNR_CAP_DB
from PIL import Image
from score import AREA_BINS, DEFAULT_METRICS, area_bin, load_job, score_pairs

ROOT = Path(__file__).resolve().parents[2]
SCORE_PY = ROOT / "images" / "metrics" / "score.py"
SIZE = 32  # ≥ 31 for LPIPS-alex (two max-pools), ≥ 11 for the Gaussian SSIM window
NUMPY_METRICS = [m for m in METRICS if not METRICS[m].needs_weights]


@pytest.mark.parametrize(
    ("fraction", "label"),
    [
        (0.0, None),
        (0.01, None),
        (0.0100001, "(0.01,0.1]"),
        (0.1, "(0.01,0.1]"),
        (0.1000001, "(0.1,0.2]"),
        (0.3, "(0.2,0.3]"),
        (0.5, "(0.4,0.5]"),
        (0.6, "(0.5,0.6]"),
        (0.6000001, None),
        (1.0, None),
    ],
)
def test_area_bin_boundaries(fraction: float, label: str | None) -> None:
    assert area_bin(fraction) == label


def test_area_bins_copy_the_harness() -> None:
    layout = pytest.importorskip("harness.data.layout")
    assert layout.AREA_BINS == AREA_BINS
    grid = [i / 1000 for i in range(1001)] + list(seed_all().random(200))
    assert [area_bin(x) for x in grid] == [layout.area_bin(x) for x in grid]


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, object]:
    """Four pairs: a model that composites (raw == composite), one that damages the known region,
    one whose mask is all known, and one exactly right."""
    rng = seed_all()
    gts, raws, holes = [], [], []
    for i in range(4):
        gt = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        hole = np.zeros((SIZE, SIZE), bool)
        hole[4 : 4 + 12 + i, 5:15] = True  # 120..150 of 1024 pixels: bin (0.1,0.2]
        fill = correlated(rng, gt, 0.9, 8.0)
        raw = np.where(hole[..., None], fill, gt)
        if i == 1:
            raw = np.where(hole[..., None], fill, 255 - gt)  # damaged known region
        if i == 2:
            hole[:] = False  # all known
        if i == 3:
            raw = gt.copy()  # exact
        name = f"{i:06d}.png"
        _png(tmp_path / "gt" / name, gt)
        _png(tmp_path / "pred" / name, raw)
        _png(tmp_path / "masks" / name, np.where(hole, 255, 0).astype(np.uint8))
        gts.append(gt), raws.append(raw), holes.append(hole)
    return {
        "root": tmp_path,
        "gt": np.stack(gts),
        "raw": np.stack(raws),
        "hole": np.stack(holes),
        "names": [f"{i:06d}.png" for i in range(4)],
    }


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _number(cell: str) -> float:
    return float(cell) if cell != "" else math.nan


def _events(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _assert_contract_events(events: list[dict[str, object]]) -> None:
    """Every event must pass contracts/v1/event.schema.json, as the harness's supervisor checks."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "contracts" / "v1" / "event.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for event in events:
        errors = [e.message for e in validator.iter_errors(event)]
        assert not errors, (event, errors)


def test_score_end_to_end_numpy_metrics(tree: dict[str, object]) -> None:
    root = tree["root"]
    assert isinstance(root, Path)
    stream = io.StringIO()
    result = score_pairs(
        root / "gt",
        root / "pred",
        root / "masks",
        root / "out" / "scores.csv",
        metrics=NUMPY_METRICS,
        events=Events(stream),
        workers=2,
    )
    rows = _read_csv(root / "out" / "scores.csv")
    assert list(rows[0]) == ["image", "variant", "hole_fraction", "bin", *NUMPY_METRICS]
    assert [(r["image"], r["variant"]) for r in rows] == [
        (n, v)
        for n in tree["names"]
        for v in ("composite", "raw")  # type: ignore[attr-defined]
    ]
    gt, raw, hole = tree["gt"], tree["raw"], tree["hole"]
    comp = metrics.composite(raw, gt, hole)  # type: ignore[arg-type]
    for variant, image in (("composite", comp), ("raw", raw)):
        mine = [r for r in rows if r["variant"] == variant]
        for name in NUMPY_METRICS:
            expected = METRICS[name].fn(image, gt, hole)  # type: ignore[misc]
            got = [_number(r[name]) for r in mine]
            np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0, err_msg=name)
        fractions = [_number(r["hole_fraction"]) for r in mine]
        np.testing.assert_array_equal(fractions, hole.mean(axis=(1, 2)))  # type: ignore[union-attr]
        assert [r["bin"] for r in mine] == ["(0.1,0.2]", "(0.1,0.2]", "", "(0.1,0.2]"]
    by = {(r["image"], r["variant"]): r for r in rows}
    # The damaged model: composite hides it, raw and known_pixel_dev show it.
    assert by[("000001.png", "composite")]["known_pixel_dev"] == "0.0"
    assert _number(by[("000001.png", "raw")]["known_pixel_dev"]) > 20
    # All-known mask: nothing to measure in the hole; exact image: the PSNR cap.
    assert by[("000002.png", "raw")]["l1_hole"] == by[("000002.png", "raw")]["psnr_hole"] == ""
    assert _number(by[("000003.png", "composite")]["psnr"]) == PSNR_CAP_DB
    meta = json.loads((root / "out" / "scores.meta.json").read_text())
    assert meta == result.metadata
    assert meta["n_pairs"] == 4 and meta["n_rows"] == 8
    assert meta["raw_equal_composite"] == 2  # 000000 composites itself, 000003 is exact
    assert meta["psnr_cap_db"] == PSNR_CAP_DB and meta["psnr_mse_floor"] == 1e-10
    assert set(meta["conventions"]) == set(NUMPY_METRICS)
    assert {"decode", "composite", "psnr", "ssim", "write_csv", "total"} <= set(meta["timings_s"])
    events = _events(stream)
    assert [e["event"] for e in events] == ["run_start", "progress", "run_stop"]
    assert events[0]["command"] == "score" and events[0]["config"]["step"] == "score"
    _assert_contract_events(events)
    assert events[-1] | {"time": 0} == {
        "event": "run_stop",
        "time": 0,
        "status": "completed",
        "reason": "done",
        "step": 1,
        "images_seen": 4,
        "message": None,
    }
    assert not list((root / "out").glob(".*tmp"))


def test_score_lpips_weights_missing_is_na(tree: dict[str, object]) -> None:
    root = tree["root"]
    assert isinstance(root, Path)
    stream = io.StringIO()
    (root / "weights").mkdir()
    result = score_pairs(
        root / "gt",
        root / "pred",
        root / "masks",
        root / "scores.csv",
        metrics=["psnr", "lpips", "lpips_vgg"],
        variants=["composite"],
        weights_dir=root / "weights",
        allow_random_backbone=False,
        events=Events(stream),
    )
    rows = _read_csv(root / "scores.csv")
    assert list(rows[0]) == [
        "image",
        "variant",
        "hole_fraction",
        "bin",
        "psnr",
        "lpips",
        "lpips_vgg",
        "lpips_weights",
        "lpips_vgg_weights",
    ]
    assert len(rows) == 4
    for row in rows:
        assert row["lpips"] == row["lpips_vgg"] == ""
        assert row["lpips_weights"] == row["lpips_vgg_weights"] == WEIGHTS_MISSING
        assert row["psnr"] != ""
    meta = result.metadata
    assert meta["lpips_weights"] == {"lpips": WEIGHTS_MISSING, "lpips_vgg": WEIGHTS_MISSING}
    assert "alexnet-owt-7be5be79.pth" in meta["lpips_provenance"]["lpips"]
    assert "vgg16-397923af.pth" in meta["lpips_provenance"]["lpips_vgg"]
    _assert_contract_events(_events(stream))
    warnings = [e for e in _events(stream) if e["event"] == "warning"]
    assert len(warnings) == 2 and all(WEIGHTS_MISSING in str(w["message"]) for w in warnings)


def test_score_lpips_random_backbone_end_to_end(tree: dict[str, object]) -> None:
    pytest.importorskip("torch", reason="LPIPS needs torch (the model venv has it)")
    pytest.importorskip("lpips")
    root = tree["root"]
    assert isinstance(root, Path)
    (root / "weights").mkdir()
    result = score_pairs(
        root / "gt",
        root / "pred",
        root / "masks",
        root / "scores.csv",
        metrics=["lpips"],
        lpips_batch_size=3,
        device="cpu",
        weights_dir=root / "weights",
        allow_random_backbone=True,
    )
    rows = _read_csv(root / "scores.csv")
    scorer = LPIPSScorer("alex", "cpu", 4, root / "weights", allow_random_backbone=True)
    gt, raw, hole = tree["gt"], tree["raw"], tree["hole"]
    comp = metrics.composite(raw, gt, hole)  # type: ignore[arg-type]
    for variant, image in (("composite", comp), ("raw", raw)):
        got = [_number(r["lpips"]) for r in rows if r["variant"] == variant]
        np.testing.assert_allclose(got, scorer(image, gt), rtol=0, atol=1e-5)  # type: ignore[arg-type]
    assert {r["lpips_weights"] for r in rows} == {RANDOM_BACKBONE}
    assert result.metadata["lpips_weights"] == {"lpips": RANDOM_BACKBONE}
    assert "NOT a real LPIPS" in result.metadata["conventions"]["lpips"]


def test_several_sets_in_one_pass_equal_each_set_scored_alone(tree: dict[str, object]) -> None:
    root = tree["root"]
    assert isinstance(root, Path)
    lpips = importlib.util.find_spec("torch") and importlib.util.find_spec("lpips")
    names = ["psnr", "ssim", "l1_hole", *(["lpips"] if lpips else [])]
    options = {"metrics": names, "device": "cpu", "lpips_batch_size": 3}
    options |= {"weights_dir": root / "weights", "allow_random_backbone": True}
    (root / "weights").mkdir()
    rng = seed_all()
    for k in (1, 2):  # two more "models": the first one's predictions, noised differently
        for name in tree["names"]:  # type: ignore[attr-defined]
            image = np.asarray(Image.open(root / "pred" / name))
            noise = rng.integers(-9 * k, 9 * k + 1, image.shape)
            _png(root / f"pred{k}" / name, np.clip(image + noise, 0, 255).astype(np.uint8))
    folders = ["pred", "pred1", "pred2"]
    sets = [score.PredictionSet(root / f, root / "many" / f"{f}.csv") for f in folders]
    together = score.score_sets(root / "gt", root / "masks", sets, **options)
    for folder, result in zip(folders, together, strict=True):
        alone = score_pairs(
            root / "gt", root / folder, root / "masks", root / "one" / f"{folder}.csv", **options
        )
        assert repr(result.rows) == repr(alone.rows), folder  # repr: NaN equals NaN
        assert _read_csv(root / "many" / f"{folder}.csv") == _read_csv(
            root / "one" / f"{folder}.csv"
        )
        assert result.metadata["sets_in_job"] == 3 and alone.metadata["sets_in_job"] == 1
    assert repr(together[0].rows) != repr(together[1].rows)


def test_missing_prediction_names_the_file(tree: dict[str, object]) -> None:
    root = tree["root"]
    assert isinstance(root, Path)
    (root / "pred" / "000002.png").unlink()
    (root / "pred" / "000003.png").unlink()
    with pytest.raises(BadData) as error:
        score_pairs(root / "gt", root / "pred", root / "masks", root / "s.csv", metrics=["psnr"])
    assert str(error.value) == (
        f"{root / 'pred' / '000002.png'}: no prediction for ground-truth image 000002.png "
        "(and 1 more)"
    )
    assert not (root / "s.csv").exists()


def test_prediction_of_the_wrong_size_names_the_file(tree: dict[str, object]) -> None:
    root = tree["root"]
    assert isinstance(root, Path)
    _png(root / "pred" / "000001.png", np.zeros((SIZE, SIZE + 1, 3), np.uint8))
    with pytest.raises(BadData, match=r"000001\.png: prediction is \(32, 33\)"):
        score_pairs(root / "gt", root / "pred", root / "masks", root / "s.csv", metrics=["psnr"])


def _job(root: Path, **fields: object) -> Path:
    doc = {
        "contract_version": "1",
        "ground_truth": "gt",
        "predictions": "pred",
        "masks": "masks",
        "output": "out/scores.csv",
        **fields,
    }
    path = root / "job.json"
    path.write_text(json.dumps(doc))
    return path


def test_load_job_fills_defaults_and_resolves_paths(tmp_path: Path) -> None:
    job = load_job(_job(tmp_path))
    assert job["ground_truth"] == str(tmp_path / "gt")
    assert job["sets"] == [
        {"predictions": str(tmp_path / "pred"), "output": str(tmp_path / "out" / "scores.csv")}
    ]
    assert job["metrics"] == list(DEFAULT_METRICS)
    assert job["variants"] == ["composite", "raw"]
    assert job["lpips"] == {"net": "alex", "batch_size": 32}
    assert job["device"] == "auto" and job["weights_dir"] is None
    assert job["allow_random_backbone"] is False and job["job_id"] == "score"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"extra": 1}, r"\(top level\): Additional properties are not allowed \('extra'"),
        ({"metrics": ["is"]}, r"metrics\.0: 'is' is not one of"),
        ({"lpips": {"net": "squeeze"}}, r"lpips\.net: 'squeeze' is not one of"),
        ({"contract_version": "2"}, r"contract_version: '1' was expected"),
        ({"output": "scores.tsv"}, r"output: 'scores.tsv' does not match"),
        ({"sets": [{"predictions": "p", "output": "o.csv"}]}, r"either predictions and output"),
        ({"sets": [{"predictions": "p"}]}, r"sets\.0: 'output' is a required property"),
    ],
)
def test_load_job_rejects_bad_fields_by_name(tmp_path: Path, fields: dict, message: str) -> None:
    pytest.importorskip("jsonschema")
    with pytest.raises(JobInvalid, match=message):
        load_job(_job(tmp_path, **fields))


def test_load_job_takes_sets_instead_of_predictions(tmp_path: Path) -> None:
    pytest.importorskip("jsonschema")
    doc = {"contract_version": "1", "ground_truth": "gt", "masks": "masks"}
    doc["sets"] = [{"predictions": f"p{i}", "output": f"s{i}.csv"} for i in range(2)]
    (tmp_path / "job.json").write_text(json.dumps(doc))
    job = load_job(tmp_path / "job.json")
    assert [s["output"] for s in job["sets"]] == [
        str(tmp_path / "s0.csv"),
        str(tmp_path / "s1.csv"),
    ]
    del doc["sets"][0]["output"]
    (tmp_path / "job.json").write_text(json.dumps(doc))
    with pytest.raises(JobInvalid, match=r"sets\.0: 'output' is a required property"):
        load_job(tmp_path / "job.json")


def _run(job: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "contracts" / "sdk")]))
    return subprocess.run(
        [sys.executable, str(SCORE_PY), str(job)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_main_writes_events_on_stdout_and_exits_by_outcome(tree: dict[str, object]) -> None:
    root = tree["root"]
    assert isinstance(root, Path)
    ok = _run(_job(root, metrics=["psnr", "ssim"], variants=["raw"]))
    assert ok.returncode == 0, ok.stderr
    events = [json.loads(line) for line in ok.stdout.splitlines()]
    assert [e["event"] for e in events] == ["run_start", "progress", "run_stop"]
    _assert_contract_events(events)
    assert len(_read_csv(root / "out" / "scores.csv")) == 4
    (root / "masks" / "000000.png").unlink()
    bad = _run(_job(root, metrics=["psnr"]))
    assert bad.returncode == 4
    stop = json.loads(bad.stdout.splitlines()[-1])
    assert (
        stop["status"] == "failed"
        and "no mask for ground-truth image 000000.png" in stop["message"]
    )
    invalid = _run(_job(root, metric=["psnr"]))
    assert invalid.returncode == 2 and "Additional properties" in invalid.stderr


def test_default_metrics_match_the_schema() -> None:
    schema = json.loads(score.SCHEMA.read_text())
    assert schema["properties"]["metrics"]["default"] == list(DEFAULT_METRICS)
    assert schema["properties"]["metrics"]["items"]["enum"] == [*METRICS, *score.SET_METRICS]


def test_lpips_in_the_pool_equals_lpips_in_one_thread(tree: dict[str, object]) -> None:
    # workers > 1 on the CPU: LPIPS as single-threaded pool tasks; workers = 1: torch's threads.
    torch = pytest.importorskip("torch", reason="LPIPS needs torch (the model venv has it)")
    pytest.importorskip("lpips")
    root = tree["root"]
    assert isinstance(root, Path)
    (root / "weights").mkdir()
    threads_before = torch.get_num_threads()
    options = {"metrics": ["lpips", "ssim"], "device": "cpu", "lpips_batch_size": 3}
    options |= {"weights_dir": root / "weights", "allow_random_backbone": True}
    runs = {
        workers: score_pairs(
            root / "gt", root / "pred", root / "masks", root / f"{workers}.csv", **options,
            workers=workers,
        )
        for workers in (1, 3)
    }  # fmt: skip
    assert torch.get_num_threads() == threads_before  # restored after scoring
    assert "lpips_in_pool" in runs[3].metadata["timings_s"]
    assert "lpips_in_pool" not in runs[1].metadata["timings_s"]
    for pooled, alone in zip(runs[3].rows, runs[1].rows, strict=True):
        assert_close(pooled["lpips"], alone["lpips"], 1e-6, f"lpips {alone['image']}")
        assert pooled["ssim"] == alone["ssim"] or math.isnan(alone["ssim"])


@pytest.mark.parametrize("workers", [1, 2])  # 1: two chunks of 2 images; 2: one chunk of 4
def test_cpu_job_scoring_while_lpips_builds_equals_building_first(
    tree: dict[str, object], workers: int
) -> None:
    # device "cpu": the first chunk's numpy metrics are queued while lpips is imported and built
    # in a second thread; "auto" (here without CUDA) builds first. Same rows either way.
    torch = pytest.importorskip("torch", reason="LPIPS needs torch (the model venv has it)")
    pytest.importorskip("lpips")
    if torch.cuda.is_available():
        pytest.skip("auto would score on the GPU here")
    root = tree["root"]
    assert isinstance(root, Path)
    (root / "weights").mkdir()
    options = {"metrics": ["psnr", "ssim", "lpips"], "lpips_batch_size": 1, "workers": workers}
    options |= {"weights_dir": root / "weights", "allow_random_backbone": True}
    runs = {
        device: score_pairs(
            root / "gt", root / "pred", root / "masks", root / f"{device}.csv", **options,
            device=device,
        )
        for device in ("cpu", "auto")
    }  # fmt: skip
    assert len(runs["cpu"].rows) == 2 * len(tree["names"])  # type: ignore[arg-type]
    assert repr(runs["cpu"].rows) == repr(runs["auto"].rows)  # repr: NaN equals NaN


def test_wrong_size_found_while_lpips_builds_names_the_file(tree: dict[str, object]) -> None:
    pytest.importorskip("torch", reason="LPIPS needs torch (the model venv has it)")
    pytest.importorskip("lpips")
    root = tree["root"]
    assert isinstance(root, Path)
    (root / "weights").mkdir()
    _png(root / "pred" / "000001.png", np.zeros((SIZE, SIZE + 1, 3), np.uint8))
    with pytest.raises(BadData, match=r"000001\.png: prediction is \(32, 33\)"):
        score_pairs(
            root / "gt", root / "pred", root / "masks", root / "s.csv",
            metrics=["ssim", "lpips"], device="cpu", weights_dir=root / "weights",
            allow_random_backbone=True,
        )  # fmt: skip
    assert not (root / "s.csv").exists()
