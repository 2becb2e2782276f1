"""The complexity tables: what each model's describe step measured, at the run's image size and at
256² (the reference size, harness.jobs.REFERENCE_SIZE).

`complexity_table` is the data: one unformatted row per model and measured size. The three views
lay it out to fit a page (and a LaTeX column): size (parameters, GFLOPs), speed and memory
(latency, peak CUDA memory) and counting (the FLOP counter, timed runs, uncounted ops), one column
per size. A value that was not measured is missing (rendered "—"); a value that cannot mean what
its column says is missing with its reason in a text column, rendered instead of a number:
"n/a (uncounted: …)" for a model whose counter counted nothing but listed ops it could not count,
"n/a (CPU)" for peak memory on the CPU (there is no resettable peak counter there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from harness.jobs import REFERENCE_SIZE
from harness.report.run_tables import NOT_RUN
from harness.report.rundata import RunData

CPU_MEMORY = "n/a (CPU)"


def uncounted_text(ops: list[str]) -> str:
    return f"n/a (uncounted: {', '.join(ops)})"


def measurements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-size entries of a describe document; a document from before `per_size` has one,
    made from its top-level fields."""
    if doc.get("per_size"):
        return list(doc["per_size"])
    flops = doc.get("flops")
    if not flops:
        return []
    return [
        {
            "image_size": flops.get("image_size"),
            "forward_flops": flops.get("forward_flops"),
            "uncounted_ops": flops.get("uncounted_ops", []),
            "latency_ms": doc.get("latency_ms"),
            "peak_memory_bytes": doc.get("peak_memory_bytes"),
        }
    ]


def size_role(size: int | None, run_size: int | None) -> str | None:
    """What a size is to the run: "run", "reference", both, or neither (None)."""
    roles = [r for r, s in (("run", run_size), ("reference", REFERENCE_SIZE)) if s == size]
    return " = ".join(roles) or None


def complexity_table(run: RunData) -> pd.DataFrame:
    """Tabulate, per model and measured size from its describe step: parameters; FLOPs of one
    forward of one image (GFLOPs, and GMACs with 1 MAC = 2 FLOPs), or `flops_missing` where the
    counter counted nothing but listed uncounted ops; the median latency; the peak CUDA memory,
    or `memory_missing` on the CPU. A model without a finished describe step has one row."""
    run_size = run.info.get("image_size")
    out = []
    for model in run.models:
        step = next(
            (s for s in reversed(run.of_kind("describe")) if run.where(s).model == model), None
        )
        doc = (step.result or {}).get("describe", {}) if step else {}
        params = doc.get("parameters", {})
        common = {
            "model": model,
            "status": step.status if step else NOT_RUN,
            "params_generator": params.get("generator"),
            "params_discriminator": params.get("discriminator"),
            "counter": doc.get("flops", {}).get("counter"),
            "device": doc.get("device"),
            "reason": None if step is None or step.status == "done" else step.reason,
        }
        entries = measurements(doc) or [{}]
        for entry in entries:
            out.append({**common, **_measured(entry, doc.get("device"), run_size)})
    columns = [
        "model",
        "status",
        "image_size",
        "size_role",
        "params_generator",
        "params_discriminator",
        "gflops",
        "gmacs",
        "flops_missing",
        "counter",
        "uncounted_ops",
        "latency_ms_median",
        "latency_runs",
        "peak_memory_mib",
        "memory_missing",
        "device",
        "reason",
    ]
    table = pd.DataFrame(out, columns=columns)
    for column in ("params_generator", "params_discriminator", "image_size", "latency_runs"):
        table[column] = table[column].astype("Int64")  # integer counts, some missing
    return table


def _measured(entry: dict[str, Any], device: str | None, run_size: int | None) -> dict[str, Any]:
    count, ops = entry.get("forward_flops"), list(entry.get("uncounted_ops") or [])
    flops_missing = None
    if count == 0 and ops:  # 0 would read as "free": it is "not counted at all"
        count, flops_missing = None, uncounted_text(ops)
    latency = entry.get("latency_ms") or {}
    memory, memory_missing = entry.get("peak_memory_bytes"), None
    if device == "cpu":
        # One meaning: the CUDA peak. Describe documents written before it said so carry the
        # process's lifetime RSS on the CPU, which is another quantity: it is not shown.
        memory, memory_missing = None, CPU_MEMORY
    size = entry.get("image_size")
    return {
        "image_size": size,
        "size_role": size_role(size, run_size),
        "gflops": count / 1e9 if count is not None else None,
        "gmacs": count / 2e9 if count is not None else None,
        "flops_missing": flops_missing,
        "uncounted_ops": ", ".join(ops) or None,
        "latency_ms_median": latency.get("median"),
        "latency_runs": latency.get("runs"),
        "peak_memory_mib": memory / 2**20 if memory is not None else None,
        "memory_missing": memory_missing,
    }


# --- views: one column per size, formatted, for Markdown, HTML and LaTeX ----------------------


def view_sizes(table: pd.DataFrame, run_size: int | None) -> list[int]:
    """The size columns: the run's size, the reference size, then any other measured size."""
    found = [int(s) for s in table["image_size"].dropna()]
    wanted = [s for s in (run_size, REFERENCE_SIZE) if s is not None]
    return list(dict.fromkeys([*wanted, *sorted(found)]))


def _size_label(size: int, run_size: int | None) -> str:
    role = size_role(size, run_size)
    return f"{size} px ({role})" if role else f"{size} px"


def _spread(
    table: pd.DataFrame,
    sizes: list[int],
    run_size: int | None,
    title: str,
    cell: Callable[[dict[str, Any]], str | None],
) -> dict[str, list[str | None]]:
    """One column per size, `title` + size label, of `cell` of each model's row at that size."""
    columns: dict[str, list[str | None]] = {}
    models = list(dict.fromkeys(table["model"]))
    for size in sizes:
        values = []
        for model in models:
            rows = table[(table["model"] == model) & (table["image_size"] == size)]
            values.append(cell(rows.iloc[0].to_dict()) if len(rows) else None)
        columns[f"{title} {_size_label(size, run_size)}"] = values
    return columns


def _absent(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _number(value: Any, spec: str, missing: Any = None) -> str | None:
    """`value` formatted, else the `missing` text, else None (rendered "—")."""
    if _absent(value):
        return None if _absent(missing) else str(missing)
    return format(value, spec)


def _first_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop_duplicates("model", keep="first")


def size_view(table: pd.DataFrame, run_size: int | None) -> pd.DataFrame:
    """model, status, parameters, and GFLOPs per size."""
    first = _first_rows(table)
    out: dict[str, Any] = {
        "model": list(first["model"]),
        "status": list(first["status"]),
        "params (generator)": [_number(v, ",") for v in first["params_generator"]],
        "params (discriminator)": [_number(v, ",") for v in first["params_discriminator"]],
    }
    sizes = view_sizes(table, run_size)
    out |= _spread(
        table,
        sizes,
        run_size,
        "GFLOPs,",
        lambda r: _number(r["gflops"], ".2f", r["flops_missing"]),
    )
    return pd.DataFrame(out)


def runtime_view(table: pd.DataFrame, run_size: int | None) -> pd.DataFrame:
    """model, device, median latency and peak CUDA memory per size, why a step failed."""
    first = _first_rows(table)
    sizes = view_sizes(table, run_size)
    out: dict[str, Any] = {"model": list(first["model"]), "device": list(first["device"])}
    out |= _spread(
        table, sizes, run_size, "latency (ms),", lambda r: _number(r["latency_ms_median"], ".1f")
    )
    out |= _spread(
        table,
        sizes,
        run_size,
        "peak CUDA (MiB),",
        lambda r: _number(r["peak_memory_mib"], ".0f", r["memory_missing"]),
    )
    out["reason"] = list(first["reason"])
    return pd.DataFrame(out)


def counting_view(table: pd.DataFrame) -> pd.DataFrame:
    """model, FLOP counter, timed runs and the ops the counter could not count (at any size)."""
    rows = []
    for model, group in table.groupby("model", sort=False):
        ops = dict.fromkeys(
            op for text in group["uncounted_ops"].dropna() for op in str(text).split(", ")
        )
        runs = group["latency_runs"].dropna()
        rows.append(
            {
                "model": model,
                "FLOP counter": group["counter"].iloc[0],
                "timed runs": str(int(runs.max())) if len(runs) else None,
                "uncounted ops": ", ".join(ops) or None,
            }
        )
    return pd.DataFrame(rows, columns=["model", "FLOP counter", "timed runs", "uncounted ops"])
