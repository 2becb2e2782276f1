"""A catalogue of bad inputs, each through the real CLI: a clear error naming the file (and the
field or row) with what to do, a non-zero exit, no traceback, and no existing file touched.

Each case builds its bad input inside a small valid workspace (benchmark.yaml, a data tree, a run
folder) and returns the command line and the fragments its error must contain.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from datatree import build_tree, make_profile
from PIL import Image
from runs import FAULTY, REPO

from harness.cli import cli
from harness.data.pngs import write_png
from harness.ledger import Ledger

SIZE = 32
HINT = "hint:"
JOB_FIXTURE = REPO / "tests" / "fixtures" / "contract" / "job_train.json"


@dataclass
class Workspace:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "benchmark.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def document(self) -> dict:
        return yaml.safe_load(self.config.read_text())

    def write_config(self, document: dict) -> None:
        self.config.write_text(yaml.safe_dump(document, sort_keys=False))

    def png(self, rel: str) -> Path:
        return self.data / rel


@dataclass
class Case:
    args: list[str]
    expect: list[str]  # fragments the output must hold: the file, the field or row, the remedy
    subprocess: bool = False  # run as a separate program (the image-side entry points)
    exit_codes: tuple[int, ...] = field(default=())  # () = any non-zero


def workspace(root: Path) -> Workspace:
    ws = Workspace(root)
    profile = make_profile(
        ws.data,
        name="tiny",
        image_size=SIZE,
        sources={"scenes": (3, 1)},
        masks=(2, 1, 2),
        test_sets={"faces_test": 2},
    )
    build_tree(profile)
    ws.write_config(
        {
            "benchmark_version": 1,
            "seed": 0,
            "metrics": ["psnr"],
            "models": {"m0": {"image": str(FAULTY), "batch_size": 1}},
            "profiles": {
                "tiny": {
                    "data_root": "data",
                    "image_size": SIZE,
                    "train_budget": "1s",
                    "models": ["m0"],
                    "sources": {"scenes": {"train": 3, "val": 1}},
                    "masks": {"train": 2, "val": 1, "test": 2},
                    "test_sets": {"faces_test": 2},
                }
            },
        }
    )
    return ws


def config_check(ws: Workspace) -> list[str]:
    return ["config", "check", "--config", str(ws.config), "--profile", "tiny"]


def data_check(ws: Workspace) -> list[str]:
    return ["data", "check", "--config", str(ws.config), "--profile", "tiny", "-q"]


def run_args(ws: Workspace) -> list[str]:
    return [
        "run",
        "--config",
        str(ws.config),
        "--profile",
        "tiny",
        "--runner",
        "local",
        "--run-dir",
        str(ws.run_dir),
        "-q",
    ]


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height (8-bit RGB), with one empty IDAT chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def real_ledger(run_dir: Path) -> Path:
    """A ledger with a few rows, so that cutting it leaves a damaged database, not an empty one."""
    with Ledger.in_run_dir(run_dir) as ledger:
        for i in range(200):
            key = f"k{i:04d}"
            ledger.begin(key, "train", f"m{i}", {"pad": "x" * 500})
            ledger.finish(key, "done", result={"pad": "y" * 500})
    conn = sqlite3.connect(run_dir / "ledger.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return run_dir / "ledger.sqlite"


# --- benchmark.yaml ------------------------------------------------------------------------


def yaml_syntax_error(ws: Workspace) -> Case:
    ws.config.write_text(ws.config.read_text().replace("metrics:\n- psnr", "metrics: [psnr"))
    return Case(config_check(ws), [str(ws.config), "invalid YAML", HINT])


def yaml_duplicate_key(ws: Workspace) -> Case:
    ws.config.write_text(ws.config.read_text() + "seed: 1\n")
    return Case(config_check(ws), [str(ws.config), "duplicate key 'seed'", "keep one of them"])


def config_unknown_key(ws: Workspace) -> Case:
    doc = ws.document()
    doc["profiles"]["tiny"]["epochs"] = 3
    ws.write_config(doc)
    return Case(config_check(ws), [str(ws.config), "profiles.tiny.epochs", "unknown field", HINT])


def config_wrong_type(ws: Workspace) -> Case:
    doc = ws.document()
    doc["models"]["m0"]["batch_size"] = "four"
    ws.write_config(doc)
    return Case(config_check(ws), ["models.m0.batch_size", "expected integer", HINT])


def config_negative_budget(ws: Workspace) -> Case:
    doc = ws.document()
    doc["profiles"]["tiny"]["train_budget"] = "-5m"
    ws.write_config(doc)
    return Case(config_check(ws), ["profiles.tiny.train_budget", "duration", HINT])


def config_negative_batch_size(ws: Workspace) -> Case:
    doc = ws.document()
    doc["models"]["m0"]["batch_size"] = -2
    ws.write_config(doc)
    return Case(config_check(ws), ["models.m0.batch_size", "≥ 1", HINT])


def config_undefined_model(ws: Workspace) -> Case:
    doc = ws.document()
    doc["profiles"]["tiny"]["models"] = ["m0", "m9"]
    ws.write_config(doc)
    return Case(config_check(ws), ["profiles.tiny.models[1]", "unknown model 'm9'", HINT])


def model_name_traversal(ws: Workspace) -> Case:
    doc = ws.document()
    doc["models"]["../evil"] = {"image": str(FAULTY), "batch_size": 1}
    ws.write_config(doc)
    return Case(
        config_check(ws), [str(ws.config), "models: expected text matching", 'got "../evil"', HINT]
    )


def source_name_traversal(ws: Workspace) -> Case:
    doc = ws.document()
    sources = doc["profiles"]["tiny"]["sources"]
    sources["../../outside"] = sources.pop("scenes")
    ws.write_config(doc)
    return Case(
        config_check(ws),
        ["profiles.tiny.sources: expected text matching", 'got "../../outside"', HINT],
    )


def config_missing(ws: Workspace) -> Case:
    missing = ws.root / "nowhere.yaml"
    return Case(["config", "check", "--config", str(missing)], [str(missing), "not found", HINT])


def config_not_utf8(ws: Workspace) -> Case:
    ws.config.write_bytes(ws.config.read_bytes() + b"# caf\xe9\n")
    return Case(config_check(ws), [str(ws.config), "not UTF-8", "save the file as UTF-8"])


def config_zero_bytes(ws: Workspace) -> Case:
    ws.config.write_bytes(b"")
    return Case(config_check(ws), [str(ws.config), "expected object", HINT])


def unknown_model_folder(ws: Workspace) -> Case:
    doc = ws.document()
    doc["models"]["m0"]["image"] = "images/no-such-model"
    ws.write_config(doc)
    return Case(
        ["images", "list", "--config", str(ws.config)],
        [str(ws.root / "images" / "no-such-model"), "not a model image folder", HINT],
    )


def missing_data_root(ws: Workspace) -> Case:
    doc = ws.document()
    doc["profiles"]["tiny"]["data_root"] = "no-data-here"
    ws.write_config(doc)
    return Case(run_args(ws), [str(ws.root / "no-data-here"), "data folder not found", HINT])


# --- data trees ----------------------------------------------------------------------------


def zero_byte_png(ws: Workspace) -> Case:
    path = ws.png("sources/scenes/train/000001.png")
    path.write_bytes(b"")
    return Case(data_check(ws), [str(path), "empty file (0 bytes)", HINT])


def truncated_png(ws: Workspace) -> Case:
    path = ws.png("test/faces_test/000000.png")
    path.write_bytes(path.read_bytes()[:60])
    return Case(data_check(ws), [str(path), "corrupt or unreadable image", HINT])


def huge_png_header(ws: Workspace) -> Case:
    path = ws.png("test/faces_test/000001.png")
    path.write_bytes(png_header(100_000, 100_000))
    return Case(data_check(ws), [str(path), "too large to decode", "expected 32x32", HINT])


def symlink_out_of_the_tree(ws: Workspace) -> Case:
    outside = ws.root / "elsewhere.png"
    write_png(outside, np.zeros((SIZE, SIZE, 3), np.uint8))
    path = ws.png("sources/scenes/train/000002.png")
    path.unlink()
    path.symlink_to(outside)
    return Case(run_args(ws), [str(path), "symbolic link", "data check --profile tiny"])


def sixteen_bit_image(ws: Workspace) -> Case:
    path = ws.png("sources/scenes/val/000000.png")
    Image.fromarray(np.full((SIZE, SIZE), 40000, np.uint16)).save(path)
    return Case(data_check(ws), [str(path), "expected an 8-bit RGB image, got 16-bit", HINT])


def palette_image(ws: Workspace) -> Case:
    path = ws.png("sources/scenes/train/000000.png")
    Image.open(path).convert("P").save(path)
    return Case(data_check(ws), [str(path), "8-bit palette", HINT])


def mask_not_binary(ws: Workspace) -> Case:
    path = ws.png("masks/train/000001.png")
    pixels = np.zeros((SIZE, SIZE), np.uint8)
    pixels[:8] = 255
    pixels[8:10] = 128
    write_png(path, pixels)
    return Case(data_check(ws), [str(path), "mask is not binary", HINT])


def mask_wrong_size(ws: Workspace) -> Case:
    path = ws.png("masks/val/000000.png")
    write_png(path, np.where(np.arange(48)[:, None] < 10, 255, 0).repeat(48, 1).astype(np.uint8))
    return Case(data_check(ws), [str(path), "wrong size 48x48: expected 32x32", HINT])


def mask_inverted(ws: Workspace) -> Case:
    path = ws.png("masks/test/000000.png")
    pixels = np.full((SIZE, SIZE), 255, np.uint8)
    pixels[:6] = 0  # 19% known: read as a hole, it is 81% hole
    write_png(path, pixels)
    return Case(data_check(ws), [str(path), "mask looks inverted", "--mask-polarity hole-black"])


def mask_three_channels(ws: Workspace) -> Case:
    path = ws.png("masks/train/000000.png")
    write_png(path, np.zeros((SIZE, SIZE, 3), np.uint8))
    return Case(data_check(ws), [str(path), "mask has 3 channels", "data prepare"])


def image_mask_names_differ(ws: Workspace) -> Case:
    folder = ws.png("test/faces_test")
    (folder / "000001.png").rename(folder / "000007.png")
    return Case(
        data_check(ws), [str(folder), "do not pair 1:1 with masks/test", "000007.png", HINT]
    )


def data_manifest_invalid_json(ws: Workspace) -> Case:
    path = ws.data / "manifest.json"
    path.write_text('{"files": {')
    return Case(data_check(ws), [str(path), "unreadable manifest", HINT])


def data_manifest_traversal(ws: Workspace) -> Case:
    path = ws.data / "manifest.json"
    doc = json.loads(path.read_text())
    doc["files"]["../elsewhere.png"] = "0" * 64
    path.write_text(json.dumps(doc))
    return Case(data_check(ws), [str(path), "'../elsewhere.png'", "outside", HINT])


def mask_manifest_traversal(ws: Workspace) -> Case:
    path = ws.data / "masks" / "test" / "manifest.json"
    doc = json.loads(path.read_text())
    doc["masks"][0]["file"] = "../../sources/scenes/train/000000.png"
    path.write_text(json.dumps(doc))
    return Case(data_check(ws), [str(path), "../../sources", "outside", HINT])


def _photo_folder(ws: Workspace, name: str, count: int) -> Path:
    folder = ws.root / "photos" / name
    folder.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (40, 36), (20 * i, 90, 160)).save(folder / f"p{i}.png")
    return folder


def _prepare_args(ws: Workspace, *extra: str) -> list[str]:
    shutil.rmtree(ws.data)
    scenes = _photo_folder(ws, "scenes", 4)
    faces = _photo_folder(ws, "faces", 2)
    return [
        "data",
        "prepare",
        "--config",
        str(ws.config),
        "--profile",
        "tiny",
        "--source",
        f"scenes={scenes}",
        "--test-set",
        f"faces_test={faces}",
        "-q",
        *extra,
    ]


def prepare_huge_photo(ws: Workspace) -> Case:
    args = _prepare_args(ws)
    bomb = ws.root / "photos" / "scenes" / "p1.png"
    bomb.write_bytes(png_header(100_000, 100_000))
    return Case(args, [str(bomb), "unreadable image", "DecompressionBomb", "--skip-unreadable"])


def prepare_zero_byte_mask(ws: Workspace) -> Case:
    masks = ws.root / "photos" / "masks"
    args = _prepare_args(ws, "--masks", f"test={masks}")
    masks.mkdir()
    for i in range(2):
        write_png(
            masks / f"m{i}.png",
            np.where(np.arange(SIZE) < 8, 255, 0)[:, None].repeat(SIZE, 1).astype(np.uint8),
        )
    (masks / "m0.png").write_bytes(b"")
    return Case(args, [str(masks / "m0.png"), "unreadable image", "--skip-unreadable"])


def prepare_over_existing_tree(ws: Workspace) -> Case:
    scenes = _photo_folder(ws, "scenes", 4)
    faces = _photo_folder(ws, "faces", 2)
    args = [
        "data",
        "prepare",
        "--config",
        str(ws.config),
        "--profile",
        "tiny",
        "--source",
        f"scenes={scenes}",
        "--test-set",
        f"faces_test={faces}",
        "-q",
    ]
    return Case(args, [str(ws.data), "already exists", "--overwrite"])


def prepare_source_name_traversal(ws: Workspace) -> Case:
    args = _prepare_args(ws)
    index = args.index("--source") + 1
    args[index] = args[index].replace("scenes=", "../scenes=")
    return Case(args, ["--source", "'../scenes' is not one of scenes"], exit_codes=(2,))


def sample_over_existing_tree(ws: Workspace) -> Case:
    args = ["data", "sample", "--config", str(ws.config), "--profile", "tiny", "-q"]
    return Case(args, [str(ws.data), "already exists", "--overwrite"])


# --- contract documents: job files, manifests, event logs ----------------------------------


def _job(ws: Workspace, **patch: object) -> Path:
    doc = json.loads((JOB_FIXTURE).read_text())
    doc.update(patch)
    path = ws.root / "job.json"
    path.write_text(json.dumps(doc, indent=1))
    return path


def job_invalid_json(ws: Workspace) -> Case:
    path = ws.root / "job.json"
    path.write_text('{"contract_version": "1",\n "command": "train",,}\n')
    return Case(["contract", "check", "job", str(path)], [f"{path}:2:", "invalid JSON", HINT])


def job_schema_violation(ws: Workspace) -> Case:
    path = _job(ws, batch_size=0)
    return Case(["contract", "check", "job", str(path)], [str(path), "batch_size", HINT])


def job_unknown_contract_version(ws: Workspace) -> Case:
    path = _job(ws, contract_version="2")
    return Case(
        ["contract", "check", "job", str(path)], [str(path), "contract_version", '"1"', HINT]
    )


def job_path_traversal(ws: Workspace) -> Case:
    doc = json.loads((JOB_FIXTURE).read_text())
    path = _job(ws, data={**doc["data"], "train_images": "../../etc"})
    return Case(["contract", "check", "job", str(path)], [str(path), "data.train_images", HINT])


def manifest_zero_bytes(ws: Workspace) -> Case:
    path = ws.root / "manifest.json"
    path.write_bytes(b"")
    return Case(["contract", "check", "manifest", str(path)], [str(path), "invalid JSON", HINT])


def manifest_not_utf8(ws: Workspace) -> Case:
    path = ws.root / "manifest.json"
    path.write_bytes(b'{"name": "caf\xe9"}')
    return Case(["contract", "check", "manifest", str(path)], [str(path), "not UTF-8", HINT])


def manifest_name_traversal(ws: Workspace) -> Case:
    doc = json.loads((FAULTY / "manifest.json").read_text())
    doc["name"] = "../evil"
    path = ws.root / "manifest.json"
    path.write_text(json.dumps(doc))
    return Case(["contract", "check", "manifest", str(path)], [str(path), "name", HINT])


def events_garbage(ws: Workspace) -> Case:
    path = ws.root / "events.jsonl"
    path.write_bytes(b'{"event": "progress"}\nnot json\n\xff\xfe\n')
    return Case(
        ["contract", "check", "events", str(path)], [f"{path}:1", f"{path}:2", f"{path}:3", HINT]
    )


# --- the run's ledger ----------------------------------------------------------------------


def ledger_garbage_run(ws: Workspace) -> Case:
    ws.run_dir.mkdir()
    path = ws.run_dir / "ledger.sqlite"
    path.write_bytes(os.urandom(8192))
    (ws.run_dir / "run.json").write_text("{}\n")
    return Case(run_args(ws), [str(path), "ledger", HINT])


def ledger_truncated_run(ws: Workspace) -> Case:
    path = real_ledger(ws.run_dir)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    (ws.run_dir / "run.json").write_text("{}\n")
    return Case(run_args(ws), [str(path), "ledger", HINT])


def ledger_truncated_report(ws: Workspace) -> Case:
    path = real_ledger(ws.run_dir)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return Case(["report", str(ws.run_dir), "-q"], [str(path), "ledger", HINT])


def ledger_garbage_report(ws: Workspace) -> Case:
    ws.run_dir.mkdir()
    path = ws.run_dir / "ledger.sqlite"
    path.write_bytes(b"SQLite format 3\0" + os.urandom(4096))
    return Case(["report", str(ws.run_dir), "-q"], [str(path), "ledger", HINT])


def run_json_damaged_report(ws: Workspace) -> Case:
    ws.run_dir.mkdir()
    with Ledger.in_run_dir(ws.run_dir):
        pass  # a valid, empty ledger: the report gets as far as run.json
    path = ws.run_dir / "run.json"
    path.write_text('{"profile": "tiny", ')
    return Case(["report", str(ws.run_dir), "-q"], [str(path), "run.json", HINT])


# --- the image side: the scorer's and an adapter's job loaders -----------------------------


def score_job_nested_too_deep(ws: Workspace) -> Case:
    path = ws.root / "score_job.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    script = REPO / "images" / "metrics" / "score.py"
    return Case([str(script), str(path)], [str(path), "error:"], subprocess=True, exit_codes=(2,))


def adapter_job_path_traversal(ws: Workspace) -> Case:
    doc = json.loads((JOB_FIXTURE).read_text())
    path = _job(ws, data={**doc["data"], "train_images": "../../../etc"})
    script = FAULTY / "adapter.py"
    return Case(
        [str(script), "train", str(path)],
        [str(path), "data", "error:"],
        subprocess=True,
        exit_codes=(2,),
    )


CASES: list[Callable[[Workspace], Case]] = [
    yaml_syntax_error,
    yaml_duplicate_key,
    config_unknown_key,
    config_wrong_type,
    config_negative_budget,
    config_negative_batch_size,
    config_undefined_model,
    model_name_traversal,
    source_name_traversal,
    config_missing,
    config_not_utf8,
    config_zero_bytes,
    unknown_model_folder,
    missing_data_root,
    zero_byte_png,
    truncated_png,
    huge_png_header,
    symlink_out_of_the_tree,
    sixteen_bit_image,
    palette_image,
    mask_not_binary,
    mask_wrong_size,
    mask_inverted,
    mask_three_channels,
    image_mask_names_differ,
    data_manifest_invalid_json,
    data_manifest_traversal,
    mask_manifest_traversal,
    prepare_huge_photo,
    prepare_zero_byte_mask,
    prepare_over_existing_tree,
    prepare_source_name_traversal,
    sample_over_existing_tree,
    job_invalid_json,
    job_schema_violation,
    job_unknown_contract_version,
    job_path_traversal,
    manifest_zero_bytes,
    manifest_not_utf8,
    manifest_name_traversal,
    events_garbage,
    ledger_garbage_run,
    ledger_truncated_run,
    ledger_truncated_report,
    ledger_garbage_report,
    run_json_damaged_report,
    score_job_nested_too_deep,
    adapter_job_path_traversal,
]


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry under `root` (links not followed): its type, mtime and bytes or link target."""
    found: dict[str, tuple[str, int, bytes]] = {}
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(parent) / name
            info = path.lstat()
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", info.st_mtime_ns, os.readlink(path).encode())
            elif path.is_dir():
                found[rel] = ("dir", 0, b"")
            else:
                found[rel] = ("file", info.st_mtime_ns, path.read_bytes())
    return found


def invoke(case: Case, cwd: Path) -> tuple[int, str, str]:
    """Run the case; return (exit code, output, the traceback of any escaped exception)."""
    if case.subprocess:
        env = {**os.environ, "PYTHONPATH": str(REPO / "contracts" / "sdk")}
        done = subprocess.run(
            [sys.executable, *case.args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
            timeout=120,
        )
        return done.returncode, done.stderr, ""
    # `run` points SIGTERM at KeyboardInterrupt for its own process: keep pytest's handler.
    handler = signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(cli, case.args, catch_exceptions=True)
    finally:
        signal.signal(signal.SIGTERM, handler)
    escaped = ""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        escaped = "".join(traceback.format_exception(result.exception))
    return result.exit_code, result.output, escaped


@pytest.mark.parametrize("make", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_gives_a_clear_error_and_changes_nothing(
    tmp_path: Path, make: Callable[[Workspace], Case]
) -> None:
    ws = workspace(tmp_path)
    case = make(ws)
    before = snapshot(tmp_path)
    code, output, escaped = invoke(case, tmp_path)
    assert not escaped, f"an exception escaped the CLI:\n{escaped}"
    assert "Traceback" not in output, output
    assert code != 0, output
    if case.exit_codes:
        assert code in case.exit_codes, output
    for fragment in case.expect:
        assert fragment in output, f"{fragment!r} not in:\n{output}"
    after = snapshot(tmp_path)
    changed = sorted(k for k in before if after.get(k) != before[k])
    created = sorted(set(after) - set(before))
    assert not changed, f"changed or removed: {changed}"
    assert not created, f"created: {created}"


def test_the_catalogue_has_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20
    assert len({c.__name__ for c in CASES}) == len(CASES)
