"""The complexity tables: at the run's size and at 256 px (the reference), in Markdown, HTML, CSV
and LaTeX, each table narrow enough for a LaTeX column; "n/a (uncounted: …)" for a model that
counted no FLOPs, "n/a (CPU)" for peak memory on the CPU; old describe documents (one size, no
per_size) still render."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from reportfixture import (
    DESCRIBE_FAILURE,
    FAILED,
    FLOPS,
    MODELS,
    SIZE,
    SKIPPED,
    BuiltReport,
    shared_report,
)

from harness.contract import validate_describe
from harness.ledger import Ledger, content_key
from harness.report import build_report, complexity, render

MIB = 2**20


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltReport:
    return shared_report(tmp_path_factory)


def markdown_tables(text: str) -> Iterator[tuple[str, list[str], list[list[str]]]]:
    """(caption, header, rows) of each Markdown table in `text`."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and not lines[i - 1].startswith("|"):
            block = []
            for row in lines[i:]:
                if not row.startswith("|"):
                    break
                block.append([c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]])
            yield lines[i - 2], block[0], block[2:]


def table_of(markdown: str, opening: str) -> dict[str, dict[str, str]]:
    """The Markdown table whose caption opens with `opening`, as {model: {header: cell}}."""
    _caption, header, rows = next(t for t in markdown_tables(markdown) if t[0].startswith(opening))
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


# --- an old run folder: describe documents with one size (256 px), the run at SIZE px --------


def test_old_describe_documents_render_in_the_reference_column(built: BuiltReport) -> None:
    table = pd.read_csv(built.report / "tables" / "complexity.csv").set_index("model")
    for model in MODELS:
        assert table.loc[model, "gflops"] == pytest.approx(FLOPS[model] / 1e9)
        assert table.loc[model, "gmacs"] == pytest.approx(FLOPS[model] / 2e9)
        assert (table.loc[model, "image_size"], table.loc[model, "size_role"]) == (256, "reference")
    assert table.loc["alpha", "params_discriminator"] == 2_765_569
    assert math.isnan(table.loc["beta", "params_discriminator"])
    assert table.loc["gamma", "uncounted_ops"] == "aten._fft_r2c"
    assert math.isnan(table.loc["gamma", "latency_ms_median"])
    assert table.loc["alpha", "peak_memory_mib"] == 512  # a CUDA run: the peak is shown
    assert table.loc[FAILED, "status"] == "failed"
    assert table.loc[FAILED, "reason"] == DESCRIBE_FAILURE
    assert table.loc[SKIPPED, "status"] == "not run"
    md = (built.report / "report.md").read_text()
    size = table_of(md, "*Size, from")
    run, reference = f"GFLOPs, {SIZE} px (run)", "GFLOPs, 256 px (reference)"
    assert size["alpha"] == {
        "model": "alpha",
        "status": "done",
        "params (generator)": "5,000,000",
        "params (discriminator)": "2,765,569",
        run: "—",  # measured at 256 px only, before runs were described at their own size
        reference: "12.60",
    }
    assert size["gamma"][reference] == "151.00"  # counted, with an uncounted op: a lower bound
    assert "1 MAC = 2 FLOPs" in md
    runtime = table_of(md, "*Speed and memory")
    assert runtime["alpha"]["peak CUDA (MiB), 256 px (reference)"] == "512"
    assert runtime["alpha"]["latency (ms), 256 px (reference)"] == f"{12.5 * 5:.1f}"
    assert runtime[FAILED]["reason"] == DESCRIBE_FAILURE
    counting = table_of(md, "*How the FLOPs")
    assert counting["gamma"]["uncounted ops"] == "aten._fft_r2c"
    assert counting["alpha"]["timed runs"] == "10"


def test_complexity_is_shown_as_three_tables_that_fit_a_column(built: BuiltReport) -> None:
    full = pd.read_csv(built.report / "tables" / "complexity.csv")
    md = (built.report / "report.md").read_text()
    for name, opening in (
        ("complexity", "*Size, from"),
        ("complexity_runtime", "*Speed and"),
        ("complexity_counting", "*How the FLOPs"),
    ):
        _caption, header, rows = next(t for t in markdown_tables(md) if t[0].startswith(opening))
        assert len(header) <= 8, (name, header)
        assert len(rows) == full["model"].nunique()
        tex = (built.report / "tables" / f"{name}.tex").read_text()
        assert re.search(r"\\begin\{tabular\}\{l{1,8}\}", tex), name
        data = pd.read_csv(built.report / "tables" / f"{name}.csv")
        assert set(data.columns) <= set(full.columns), name


# --- a new run folder: per_size at 128 and 256 px, on the CPU ---------------------------------


def entry(size: int, flops: int, ops: list[str], latency: float | None) -> dict[str, Any]:
    timed = None if latency is None else {"median": latency, "runs": 3}
    return {
        "image_size": size,
        "forward_flops": flops,
        "uncounted_ops": ops,
        "latency_ms": timed,
        "peak_memory_bytes": None,
    }


def document(model: str, counter: str, per_size: list[dict[str, Any]], **top: Any) -> dict:
    first = per_size[0]
    doc = {
        "contract_version": "1",
        "model": model,
        "parameters": {"generator": 1000, "discriminator": None, "other": {}},
        "flops": {
            "image_size": first["image_size"],
            "forward_flops": first["forward_flops"],
            "counter": counter,
            "uncounted_ops": first["uncounted_ops"],
        },
        "latency_ms": first["latency_ms"],
        "peak_memory_bytes": first["peak_memory_bytes"],
        "per_size": per_size,
        "device": "cpu",
        **top,
    }
    return validate_describe(doc, model)


DOCS = {
    "net": document(
        "net",
        "FlopCounterMode",
        [entry(128, 3_000_000_000, ["aten.relu"], 40.0), entry(256, 12_000_000_000, [], 160.0)],
    ),
    "classical": document(
        "classical",
        "none (not a network)",
        [entry(128, 0, ["cv2.inpaint"], 5.0), entry(256, 0, ["cv2.inpaint"], 21.0)],
    ),
    # written before per_size and before peak memory meant the CUDA peak: one size, the RSS
    "oldcpu": {
        key: value
        for key, value in document(
            "oldcpu", "FlopCounterMode", [entry(256, 8_000_000_000, [], 300.0)]
        ).items()
        if key != "per_size"
    }
    | {"peak_memory_bytes": 700 * MIB},
}


@pytest.fixture(scope="module")
def new_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("complexity-run")
    info = {"profile": "sample", "runner": "local", "device": "cpu", "seed": 0}
    info |= {"image_size": 128, "models": list(DOCS)}
    (run_dir / "run.json").write_text(json.dumps(info))
    with Ledger.in_run_dir(run_dir) as ledger:
        for model, doc in DOCS.items():
            key = content_key("describe", {"model": model})
            ledger.begin(key, "describe", model, {"model": model})
            ledger.finish(key, "done", {"reason": "done", "describe": doc})
    return build_report(run_dir, images_root=run_dir / "images").path


def test_a_run_at_128_px_has_a_column_per_size(new_run: Path) -> None:
    md = (new_run / "report.md").read_text()
    size = table_of(md, "*Size, from")
    assert size["net"]["GFLOPs, 128 px (run)"] == "3.00"
    assert size["net"]["GFLOPs, 256 px (reference)"] == "12.00"
    assert size["oldcpu"]["GFLOPs, 128 px (run)"] == "—"
    assert size["oldcpu"]["GFLOPs, 256 px (reference)"] == "8.00"
    runtime = table_of(md, "*Speed and memory")
    assert runtime["net"]["latency (ms), 128 px (run)"] == "40.0"
    assert runtime["net"]["latency (ms), 256 px (reference)"] == "160.0"
    table = pd.read_csv(new_run / "tables" / "complexity.csv")
    net = table[table["model"] == "net"].set_index("image_size")
    assert net.loc[128, "gflops"] == pytest.approx(3.0)
    assert net.loc[256, "gmacs"] == pytest.approx(6.0)
    assert list(net["size_role"]) == ["run", "reference"]


def test_a_model_that_counted_nothing_reads_uncounted_not_zero(new_run: Path) -> None:
    text = "n/a (uncounted: cv2.inpaint)"
    md = (new_run / "report.md").read_text()
    size = table_of(md, "*Size, from")
    assert size["classical"]["GFLOPs, 128 px (run)"] == text
    assert size["classical"]["GFLOPs, 256 px (reference)"] == text
    assert "0.00" not in " ".join(size["classical"].values())
    html = (new_run / "report.html").read_text()
    assert html.count(f"<td>{text}</td>") == 2
    tex = (new_run / "tables" / "complexity.tex").read_text()
    assert tex.count(text) == 2
    table = pd.read_csv(new_run / "tables" / "complexity.csv")
    classical = table[table["model"] == "classical"]
    assert classical["gflops"].isna().all() and classical["gmacs"].isna().all()
    assert set(classical["flops_missing"]) == {text}
    # a model with counted FLOPs and some uncounted ops keeps its count (a lower bound)
    assert table[(table["model"] == "net") & (table["image_size"] == 128)]["gflops"].iloc[0] == 3


def test_peak_memory_on_the_cpu_is_not_a_number(new_run: Path) -> None:
    md = (new_run / "report.md").read_text()
    runtime = table_of(md, "*Speed and memory")
    for model in DOCS:
        cells = [v for k, v in runtime[model].items() if k.startswith("peak CUDA")]
        expected = ["—", "n/a (CPU)"] if model == "oldcpu" else ["n/a (CPU)", "n/a (CPU)"]
        assert cells == expected, model
    assert "700" not in md  # the old document's RSS is another quantity: not shown
    table = pd.read_csv(new_run / "tables" / "complexity.csv")
    assert table["peak_memory_mib"].isna().all()
    assert set(table["memory_missing"]) == {"n/a (CPU)"}
    html = (new_run / "report.html").read_text()
    assert "<td>n/a (CPU)</td>" in html
    assert "n/a (CPU)" in (new_run / "tables" / "complexity_runtime.tex").read_text()


def test_headers_are_written_out_in_every_format(new_run: Path) -> None:
    tex = (new_run / "tables" / "complexity.tex").read_text()
    assert "GFLOPs, 128 px (run) & GFLOPs, 256 px (reference)" in tex
    html = (new_run / "report.html").read_text()
    assert "<th>GFLOPs, 256 px (reference)</th>" in html
    assert render.plain_header("GFLOPs, 128 px (run)") == "GFLOPs, 128 px (run)"


def test_a_run_at_256_px_has_one_column_that_is_both() -> None:
    assert complexity.size_role(256, 256) == "run = reference"
    assert complexity.size_role(128, 256) is None  # measured, but neither the run's nor 256
    table = pd.DataFrame({"image_size": pd.array([256, None], dtype="Int64")})
    assert complexity.view_sizes(table, 256) == [256]
    assert complexity.view_sizes(table, 128) == [128, 256]
    assert complexity.view_sizes(table, None) == [256]
