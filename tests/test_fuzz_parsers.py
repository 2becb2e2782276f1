"""Property-based fuzzing of every parser of user input: only the documented errors escape.

The harness's parsers may raise HarnessError subclasses (the CLI turns them into one-line
errors), the image side's job loaders JobInvalid or BadData; anything else would reach the user
as a traceback. This extends the fuzzing in test_config.py (YAML documents and text),
test_contract.py (event lines and JSON documents in memory) and test_data_check.py (bytes
corrupted in place) to raw bytes in files, whole commands, data manifests, images of every mode,
mask imports, both job loaders and the ledger.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from datatree import build_tree, make_profile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from harness.cli import cli
from harness.config import Profile, load_benchmark
from harness.contract import Kind, load_json_document, manifest_from_labels, read_events
from harness.data import photos
from harness.data.check import check_data
from harness.data.manifest import read_mask_manifest
from harness.data.pngs import read_mask, read_rgb
from harness.errors import ConfigError, ContractViolation, DataError, HarnessError, LedgerError
from harness.ledger import Ledger, check_ledger
from harness.progress import SilentReporter

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO / "images" / "metrics", REPO / "contracts" / "sdk"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import inpaint_sdk  # noqa: E402
import score  # noqa: E402

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FEW = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=16,
)
# Byte soups that hit parsers' edges: JSON-ish punctuation, deep nesting, BOMs, invalid UTF-8.
edgy_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.integers(1, 50_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 50_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b"\xef\xbb\xbf{}", b"NaN", b"[Infinity]", b'{"a": 1, "a": 2}', b"\xff\xfe"]),
)

# PyYAML's scanner is slow on deep nesting: a few thousand levels show the recursion limit.
yaml_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b"{a: " * n + b"1" + b"}" * n),
    st.sampled_from(
        [b"\xef\xbb\xbf{}", b"!!python/object:os.system {}", b"a: &x [*x]", b"\xff\xfe"]
    ),
)


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# --- benchmark.yaml: bytes that are not text, and the CLI on top -----------------------------


@FUZZ
@given(data=yaml_bytes)
def test_config_bytes_raise_only_config_errors(tmp_path_factory, data: bytes) -> None:
    path = write(tmp_path_factory.mktemp("yaml"), "benchmark.yaml", data)
    with pytest.raises(ConfigError) as info:
        load_benchmark(path)
    assert str(path) in info.value.message


def profile_document(data_root: str) -> dict[str, Any]:
    return {
        "benchmark_version": 1,
        "seed": 0,
        "metrics": ["psnr"],
        "models": {"m": {"image": "images/classical", "batch_size": 1}},
        "profiles": {
            "p": {
                "data_root": data_root,
                "image_size": 32,
                "train_budget": "1s",
                "models": ["m"],
                "sources": {"s": {"train": 1, "val": 0}},
                "masks": {"train": 1, "val": 0, "test": 1},
                "test_sets": {"t": 1},
            }
        },
    }


@FUZZ
@given(
    field=st.sampled_from(
        [
            "data_root",
            "image_size",
            "train_budget",
            "models",
            "sources",
            "masks",
            "test_sets",
            "model_overrides",
        ]
    ),
    value=json_values,
)
def test_fuzzed_profiles_resolve_or_fail_with_config_errors(
    tmp_path_factory, field: str, value: Any
) -> None:
    # Beyond test_config.py: a document that passes the schema must also resolve, since
    # `run` and `data` resolve the profile after loading.
    doc = profile_document("data")
    doc["profiles"]["p"][field] = value
    path = tmp_path_factory.mktemp("yaml") / "benchmark.yaml"
    path.write_text(json.dumps(doc))
    try:
        load_benchmark(path).profile("p")
    except ConfigError as error:
        assert str(path) in error.message


@FEW
@given(data=yaml_bytes)
def test_config_check_command_never_shows_a_traceback(tmp_path_factory, data: bytes) -> None:
    path = write(tmp_path_factory.mktemp("yaml"), "benchmark.yaml", data)
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


# --- contract files ----------------------------------------------------------------------


@FUZZ
@given(kind=st.sampled_from([Kind.MANIFEST, Kind.JOB, Kind.DESCRIBE]), data=edgy_bytes)
def test_contract_files_raise_only_contract_violations(
    tmp_path_factory, kind: Kind, data: bytes
) -> None:
    path = write(tmp_path_factory.mktemp("doc"), "doc.json", data)
    try:
        load_json_document(path, kind)
    except ContractViolation as error:
        assert error.message.startswith(str(path))


@FUZZ
@given(kind=st.sampled_from([Kind.MANIFEST, Kind.JOB, Kind.DESCRIBE]), doc=json_values)
def test_contract_files_of_any_json_raise_only_contract_violations(
    tmp_path_factory, kind: Kind, doc: Any
) -> None:
    path = write(tmp_path_factory.mktemp("doc"), "doc.json", json.dumps(doc).encode())
    try:
        load_json_document(path, kind)
    except ContractViolation as error:
        assert error.message.startswith(str(path))


@FUZZ
@given(lines=st.lists(edgy_bytes, max_size=5))
def test_event_logs_raise_only_contract_violations(tmp_path_factory, lines: list[bytes]) -> None:
    path = write(tmp_path_factory.mktemp("events"), "events.jsonl", b"\n".join(lines))
    try:
        read_events(path)
    except ContractViolation as error:
        assert str(path) in error.message


@FUZZ
@given(label=st.one_of(st.none(), st.text(max_size=200), json_values.map(json.dumps)))
def test_manifest_labels_raise_only_contract_violations(label: str | None) -> None:
    labels = None if label is None else {"dev.inpaint-bench.manifest": label}
    try:
        manifest_from_labels(labels, "img:tag")
    except ContractViolation as error:
        assert error.message.startswith("img:tag: label")


@FEW
@given(kind=st.sampled_from(["manifest", "job", "describe", "events"]), data=edgy_bytes)
def test_contract_check_command_never_shows_a_traceback(
    tmp_path_factory, kind: str, data: bytes
) -> None:
    path = write(tmp_path_factory.mktemp("doc"), "doc.json", data)
    result = CliRunner().invoke(cli, ["contract", "check", kind, str(path)])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


# --- data trees: manifests, images and masks -----------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Profile:
    profile = make_profile(
        tmp_path_factory.mktemp("tree") / "data",
        sources={"scenes": (2, 1)},
        masks=(1, 1, 2),
        test_sets={"faces_test": 2},
    )
    build_tree(profile)
    return profile


@FUZZ
@given(
    which=st.sampled_from(["manifest.json", "masks/test/manifest.json"]),
    data=st.one_of(edgy_bytes, json_values.map(lambda v: json.dumps(v).encode())),
)
def test_fuzzed_manifests_are_problems_never_exceptions(
    tree: Profile, which: str, data: bytes
) -> None:
    path = tree.data_root / which
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        problems = check_data(tree, SilentReporter(quiet=True))
    finally:
        path.write_bytes(original)
    assert any(p.path == path for p in problems) or data == original


@FUZZ
@given(
    files=st.dictionaries(
        st.text(max_size=30), st.one_of(st.text(max_size=70), json_values), max_size=4
    )
)
def test_manifest_entries_with_any_names_are_problems(tree: Profile, files: dict) -> None:
    # Names such as "../x", "/etc/passwd" or "a\\0b" must be reported, never opened.
    path = tree.data_root / "manifest.json"
    original = path.read_bytes()
    path.write_text(json.dumps({"files": files}))
    try:
        problems = check_data(tree, SilentReporter(quiet=True))
    finally:
        path.write_bytes(original)
    assert problems


@FUZZ
@given(data=st.one_of(edgy_bytes, json_values.map(lambda v: json.dumps(v).encode())))
def test_read_mask_manifest_raises_only_data_errors(tmp_path_factory, data: bytes) -> None:
    folder = tmp_path_factory.mktemp("masks")
    write(folder, "manifest.json", data)
    try:
        read_mask_manifest(folder)
    except DataError as error:
        assert str(folder) in error.message


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"]


@st.composite
def images(draw: st.DrawFn) -> bytes:
    """An image file of any mode, size and format PIL writes, or its first bytes only."""
    mode = draw(st.sampled_from(MODES))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    fmt = draw(st.sampled_from(["PNG", "TIFF", "BMP", "JPEG", "GIF"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    image = Image.frombytes(
        "RGB", size, rng.integers(0, 256, size[0] * size[1] * 3, np.uint8).tobytes()
    )
    try:
        image = image.convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
    data = buffer.getvalue()
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    return data if cut is None else data[:cut]


@FUZZ
@given(data=st.one_of(images(), edgy_bytes), which=st.sampled_from(["image", "mask"]))
def test_any_file_in_a_data_tree_is_a_problem_never_an_exception(
    tree: Profile, data: bytes, which: str
) -> None:
    rel = "sources/scenes/train/000000.png" if which == "image" else "masks/test/000001.png"
    path = tree.data_root / rel
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        problems = check_data(tree, SilentReporter(quiet=True))
    finally:
        path.write_bytes(original)
    assert problems or data == original


@FUZZ
@given(data=st.one_of(images(), edgy_bytes))
def test_the_harness_png_readers_raise_only_data_errors(tmp_path_factory, data: bytes) -> None:
    path = write(tmp_path_factory.mktemp("png"), "x.png", data)
    for reader in (read_rgb, read_mask):
        try:
            reader(path)
        except DataError as error:
            assert str(path) in error.message


@FUZZ
@given(data=st.one_of(images(), edgy_bytes))
def test_imported_masks_and_photos_decode_or_are_unreadable(tmp_path_factory, data: bytes) -> None:
    # What `data prepare` runs on each input file; a failure there becomes "unreadable" (a
    # DataError naming the file), so it must come from the decode, never from the conversion.
    from harness.data.import_pool import Unreadable, guarded

    path = write(tmp_path_factory.mktemp("in"), "x.png", data)
    mask = guarded(photos.open_mask, lambda gray: photos.mask_white(gray, 16), path)
    photo = guarded(lambda p: photos.open_photo(p, 16), lambda img: photos.photo_png(img, 16), path)
    assert isinstance(mask, Unreadable | photos.MaskReading)
    assert isinstance(photo, Unreadable | bytes)


# --- the image side's job loaders ----------------------------------------------------------


@FUZZ
@given(data=st.one_of(edgy_bytes, json_values.map(lambda v: json.dumps(v).encode())))
def test_score_job_loader_raises_only_job_invalid(tmp_path_factory, data: bytes) -> None:
    path = write(tmp_path_factory.mktemp("job"), "job.json", data)
    try:
        score.load_job(path)
    except inpaint_sdk.JobInvalid as error:
        assert str(path) in str(error)


@FUZZ
@given(
    data=st.one_of(edgy_bytes, json_values.map(lambda v: json.dumps(v).encode())),
    command=st.sampled_from(["train", "predict", "describe"]),
)
def test_sdk_job_loader_raises_only_job_invalid(
    tmp_path_factory, data: bytes, command: str
) -> None:
    path = write(tmp_path_factory.mktemp("job"), "job.json", data)
    try:
        inpaint_sdk.load_job(path, command)
    except inpaint_sdk.JobInvalid as error:
        assert str(path) in str(error)


@FUZZ
@given(
    patch=st.dictionaries(
        st.sampled_from(
            [
                "data",
                "batch_size",
                "image_size",
                "budget_s",
                "hyperparameters",
                "contract_version",
                "x",
            ]
        ),
        json_values,
        max_size=3,
    )
)
def test_sdk_loader_on_patched_jobs_raises_only_job_invalid(
    tmp_path_factory, patch: dict[str, Any]
) -> None:
    doc = json.loads((REPO / "tests" / "fixtures" / "contract" / "job_train.json").read_text())
    path = write(tmp_path_factory.mktemp("job"), "job.json", json.dumps({**doc, **patch}).encode())
    try:
        job = inpaint_sdk.load_job(path, "train")
    except inpaint_sdk.JobInvalid as error:
        assert str(path) in str(error)
    else:
        for key in job.get("data", {}):
            # Valid jobs never lead outside the data mount.
            assert job.data_path(key).is_relative_to(job.data_root.resolve())


# --- the ledger ----------------------------------------------------------------------------


class Intact:
    """A small real ledger's bytes (a class, so that hypothesis does not print them)."""

    data = b""

    def __repr__(self) -> str:
        return f"Intact({len(self.data)} bytes)"


@pytest.fixture(scope="module")
def ledger_bytes(tmp_path_factory) -> Intact:
    run_dir = tmp_path_factory.mktemp("ledger")
    with Ledger.in_run_dir(run_dir) as ledger:
        for i in range(40):
            ledger.begin(f"k{i}", "train", f"m{i}", {"i": i, "pad": "x" * 200})
            ledger.add_event(f"k{i}", 1, 1, {"event": "progress", "time": 1.0, "step": i})
            ledger.finish(f"k{i}", "done", result={"i": i})
    conn = sqlite3.connect(run_dir / "ledger.sqlite")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    intact = Intact()
    intact.data = (run_dir / "ledger.sqlite").read_bytes()
    return intact


@FUZZ
@given(data=st.data())
def test_damaged_ledgers_raise_only_ledger_errors(
    tmp_path_factory, ledger_bytes: Intact, data: st.DataObject
) -> None:
    how = data.draw(st.sampled_from(["random", "truncate", "flip", "zero page"]), label="how")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    damaged = bytearray(ledger_bytes.data)
    if how == "random":
        damaged = bytearray(data.draw(st.binary(min_size=1, max_size=4096), label="bytes"))
    elif how == "truncate":
        damaged = damaged[: rng.randrange(1, len(damaged))]
    elif how == "flip":
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
    else:
        start = rng.randrange(len(damaged) // 4096) * 4096
        damaged[start : start + 4096] = bytes(4096)
    run_dir = tmp_path_factory.mktemp("run")
    path = write(run_dir, "ledger.sqlite", bytes(damaged))
    try:
        check_ledger(path)
        with Ledger(path) as ledger:
            ledger.steps()
            ledger.score_rows()
    except LedgerError as error:
        assert str(path) in error.message or "ledger step" in error.message
    shutil.rmtree(run_dir)


def test_every_escaping_error_is_a_harness_error() -> None:
    # The CLI translates HarnessError alone; the errors the properties above allow must be it.
    for kind in (ConfigError, ContractViolation, DataError, LedgerError):
        assert issubclass(kind, HarnessError)
