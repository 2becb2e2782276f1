"""The SDK's describe (contracts/sdk/inpaint_loop.py) at two sizes, in-process, on a two-layer conv
net whose FLOPs are counted by hand; peak memory: none on the CPU, the CUDA peak reset after the
warm-ups (torch.cuda mocked, so no GPU is needed)."""

from __future__ import annotations

import ast
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "contracts" / "sdk"))
import inpaint_loop  # noqa: E402
import inpaint_sdk  # noqa: E402
import inpaint_torch  # noqa: E402

WIDTH = 8  # channels of the hidden layer


@dataclass(frozen=True)
class ConvConfig(inpaint_loop.JobConfig):
    image_size: int = 16
    batch_size: int = 1


class TwoConvs(inpaint_loop.TorchModel):
    """3 → WIDTH → 3 channels, 3×3 convolutions without bias, a ReLU between."""

    Config = ConvConfig

    def __init__(self) -> None:
        self.built_at: list[int] = []
        self.manifest = {"name": "twoconvs"}  # no manifest.json beside this test

    def generator(self, cfg, saved, ctx):
        self.built_at.append(cfg.image_size)
        ctx.warn("random init")  # as MADF's loss network does, at every build
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, WIDTH, 3, padding=1, bias=False),
            torch.nn.ReLU(),
            torch.nn.Conv2d(WIDTH, 3, 3, padding=1, bias=False),
        ).eval()

    def forward(self, model, rgb, hole):
        x = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255  # model space, once
        return lambda: model(x)

    def parameters(self, cfg, model):
        return {"generator": sum(p.numel() for p in model.parameters()), "discriminator": None}


def hand_count(size: int) -> int:
    """FLOPs of one image: each output value of a k×k conv is C_in·k² multiply-accumulates,
    and FlopCounterMode counts 2 FLOPs per MAC."""
    macs = size * size * (WIDTH * 3 * 9 + 3 * WIDTH * 9)
    return 2 * macs


def run_describe(tmp_path: Path, model: TwoConvs, **fields) -> dict:
    doc = {
        "contract_version": "1",
        "command": "describe",
        "job_id": "d",
        "seed": 0,
        "device": "cpu",
        "image_size": 16,
        "batch_size": 1,
        "measure_latency": True,
        "latency_runs": 2,
        "reference_sizes": [32],
        **fields,
    }
    inpaint_sdk.validate_against("job", doc)
    job = inpaint_sdk.Job(doc, tmp_path, tmp_path / "checkpoints", tmp_path / "outputs")
    (tmp_path / "outputs").mkdir(exist_ok=True)
    stream = io.StringIO()
    inpaint_loop.describe(model, job, inpaint_sdk.Events(stream), inpaint_sdk.StopFlag())
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    warned = [e["message"] for e in events if e["event"] == "warning"]
    assert warned == ["random init"]  # once, however many sizes were built
    assert [e["event"] for e in events][0 :: len(events) - 1] == ["run_start", "run_stop"]
    described = json.loads((tmp_path / "outputs" / "describe.json").read_text())
    inpaint_sdk.validate_against("describe", described)
    return described


def test_describe_counts_flops_at_each_size_as_a_hand_count(tmp_path: Path) -> None:
    model = TwoConvs()
    doc = run_describe(tmp_path, model)
    sizes = [entry["image_size"] for entry in doc["per_size"]]
    assert sizes == [16, 32] and model.built_at == [16, 32]
    for entry in doc["per_size"]:
        assert entry["forward_flops"] == hand_count(entry["image_size"])
        assert entry["uncounted_ops"] == ["aten.relu"]
        assert entry["latency_ms"]["runs"] == 2
    # a conv net's FLOPs grow with the pixels: twice the side, four times the count
    assert doc["per_size"][1]["forward_flops"] == 4 * doc["per_size"][0]["forward_flops"]
    # the top-level fields are the run's size, as in documents from before per_size
    assert doc["flops"]["image_size"] == 16
    assert doc["flops"]["forward_flops"] == hand_count(16)
    assert doc["latency_ms"] == doc["per_size"][0]["latency_ms"]
    assert doc["parameters"]["generator"] == WIDTH * 3 * 9 * 2


def test_a_network_that_does_not_depend_on_size_is_built_once(tmp_path: Path) -> None:
    model = TwoConvs()
    model.network_depends_on_size = False  # as MADF and AOT-GAN declare
    doc = run_describe(tmp_path, model)
    assert model.built_at == [16]
    # the same counts as a network built per size: the hand count at both sizes
    assert [e["forward_flops"] for e in doc["per_size"]] == [hand_count(16), hand_count(32)]


def test_describe_on_the_cpu_reports_no_peak_memory(tmp_path: Path) -> None:
    doc = run_describe(tmp_path, TwoConvs())
    assert doc["device"] == "cpu" and doc["peak_memory_bytes"] is None
    assert [e["peak_memory_bytes"] for e in doc["per_size"]] == [None, None]


def test_a_reference_size_equal_to_the_run_size_is_measured_once(tmp_path: Path) -> None:
    model = TwoConvs()
    doc = run_describe(tmp_path, model, reference_sizes=[16], measure_latency=False)
    assert [e["image_size"] for e in doc["per_size"]] == [16]
    assert model.built_at == [16]
    assert doc["latency_ms"] is None and doc["per_size"][0]["latency_ms"] is None


def test_cuda_peak_is_reset_after_the_warm_ups_and_read_after_the_timed_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d=None: calls.append("reset"))

    def max_allocated(device=None) -> int:
        calls.append("read")
        return 123_456

    monkeypatch.setattr(torch.cuda, "max_memory_allocated", max_allocated)
    latency, peak = inpaint_torch.measure_forward(
        lambda: calls.append("forward"), torch.device("cuda"), runs=3
    )
    assert calls == ["forward", "forward", "reset", "forward", "forward", "forward", "read"]
    assert peak == 123_456 and latency["runs"] == 3


def test_cpu_timing_touches_no_memory_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a CUDA memory counter was used on the CPU")

    for name in ("reset_peak_memory_stats", "max_memory_allocated", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, refuse)
    latency, peak = inpaint_torch.measure_forward(lambda: None, torch.device("cpu"), runs=2)
    assert peak is None and latency["runs"] == 2


def test_every_torch_adapter_describes_through_the_sdk() -> None:
    """One path for FLOPs, latency and memory: a torch adapter takes `describe` from
    inpaint_loop.handlers and defines none of its own."""
    for adapter in sorted((REPO / "images").glob("*/adapter.py")):
        tree = ast.parse(adapter.read_text())
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        } | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        own = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        if "torch" in imported:
            assert "describe" not in own, adapter
            assert "inpaint_loop" in imported, adapter
        else:  # no CUDA without torch: it writes per_size through the same size_report
            assert "inpaint_handlers" in imported and "describe" in own, adapter
    assert len(list((REPO / "images").glob("*/adapter.py"))) >= 5
