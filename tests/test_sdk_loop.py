"""The SDK's training loop (contracts/sdk/inpaint_loop.py) with a one-layer model, in-process.

The checks are of the loop, not of a model: the warm-up step before run_start, warnings after
it, max_steps and SIGTERM, and a resume that continues exactly where an uninterrupted run would
be (weights compared with a run that never stopped).
"""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contracts" / "sdk"))
import inpaint_loop  # noqa: E402
import inpaint_sdk  # noqa: E402
import inpaint_torch  # noqa: E402

SIZE = 8


@dataclass(frozen=True)
class TinyConfig(inpaint_loop.JobConfig):
    lr: float = 0.1
    sizes: tuple[int, ...] = (1, 2)
    image_size: int = SIZE
    batch_size: int = 2


class Tiny(inpaint_loop.TorchModel):
    """A 1×1 convolution fitted to reproduce its input; records what the loop asks of it."""

    Config = TinyConfig
    checkpoint = "tiny.pt"
    stop_before_overrun = False

    def __init__(self, stream: io.StringIO, stop_at: int | None = None) -> None:
        self.stream = stream
        self.stop_at = stop_at
        self.stop: inpaint_sdk.StopFlag | None = None
        self.lines_at_step: list[int] = []  # event lines written when each step began
        self.batches: list[tuple[np.ndarray, np.ndarray]] = []

    def build(self, cfg, saved, ctx):
        ctx.warn("built")
        net = torch.nn.Conv2d(3, 3, 1)
        optimizer = torch.optim.SGD(net.parameters(), lr=cfg.lr)
        if saved is not None:
            net.load_state_dict(saved["net"], strict=True)
            optimizer.load_state_dict(saved["optimizer"])
        return net, optimizer

    def state(self, nets):
        return inpaint_torch.states_of({"net": nets[0], "optimizer": nets[1]})

    def step(self, nets, cfg, rgb, hole, rng):
        self.lines_at_step.append(self.stream.getvalue().count("\n"))
        self.batches.append((rgb.copy(), hole.copy()))
        net, optimizer = nets
        image = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
        loss = ((net(image) - image) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if self.stop is not None and len(self.lines_at_step) == self.stop_at:
            self.stop.signalled = "sigterm"  # as the SIGTERM handler does, mid-step
        return {"mse": loss.detach()}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for i in range(5):
        rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(tmp_path / "images" / f"{i}.png")
        hole = (rng.random((SIZE, SIZE)) < 0.3).astype(np.uint8) * 255
        Image.fromarray(hole).save(tmp_path / "masks" / f"{i}.png")
    return tmp_path


def train(root: Path, model: Tiny, checkpoints: str = "checkpoints", **fields) -> list[dict]:
    doc = {
        "contract_version": "1",
        "command": "train",
        "job_id": "tiny",
        "seed": 7,
        "device": "cpu",
        "image_size": SIZE,
        "batch_size": 2,
        "budget_s": 600,
        "progress_every_s": 1e-9,
        "data": {"train_images": "images", "train_masks": "masks"},
        **fields,
    }
    inpaint_sdk.validate_against("job", doc)
    job = inpaint_sdk.Job(doc, root, root / checkpoints, root / "outputs")
    stop = inpaint_sdk.StopFlag()
    model.stop = stop
    inpaint_loop.train(model, job, inpaint_sdk.Events(model.stream), stop)
    return [json.loads(line) for line in model.stream.getvalue().splitlines()]


def test_the_warm_up_step_comes_before_run_start_and_is_counted(root: Path) -> None:
    model = Tiny(io.StringIO())
    events = train(root, model, max_steps=3)
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["run_start", "warning"]  # the warning from build waited for run_start
    assert model.lines_at_step[0] == 0  # nothing was emitted when the first step began
    assert all(n > 0 for n in model.lines_at_step[1:])
    assert events[0]["resumed_from_step"] == 0
    stop = events[-1]
    assert (stop["event"], stop["reason"], stop["step"], stop["images_seen"]) == (
        "run_stop",
        "max_steps",
        3,
        6,
    )
    assert [e["step"] for e in events if e["event"] == "progress"] == [1, 2, 3, 3]


def test_sigterm_stops_after_the_current_step_with_a_checkpoint(root: Path) -> None:
    model = Tiny(io.StringIO(), stop_at=2)
    events = train(root, model)
    assert (events[-1]["status"], events[-1]["reason"], events[-1]["step"]) == (
        "stopped",
        "sigterm",
        2,
    )
    assert [e["step"] for e in events if e["event"] == "checkpoint"] == [2]


def test_a_resumed_run_continues_as_if_it_never_stopped(root: Path) -> None:
    whole = Tiny(io.StringIO())
    train(root, whole, "whole", max_steps=3)
    first, second = Tiny(io.StringIO()), Tiny(io.StringIO())
    train(root, first, "split", max_steps=1)
    events = train(root, second, "split", max_steps=3)
    assert events[0]["resumed_from_step"] == 1
    # the same batches in the same order (the RNG state travels in the checkpoint) ...
    for (a_rgb, a_hole), (b_rgb, b_hole) in zip(
        whole.batches, first.batches + second.batches, strict=True
    ):
        assert np.array_equal(a_rgb, b_rgb) and np.array_equal(a_hole, b_hole)
    # ... and the same weights and optimiser state at the end
    a = torch.load(root / "whole" / "tiny.pt", weights_only=False)
    b = torch.load(root / "split" / "tiny.pt", weights_only=False)
    assert (a["step"], a["images_seen"]) == (b["step"], b["images_seen"]) == (3, 6)
    for key, value in a["net"].items():
        assert torch.equal(value, b["net"][key]), key
    assert (
        a["config"] == b["config"] == {"lr": 0.1, "sizes": (1, 2), "image_size": 8, "batch_size": 2}
    )


def test_a_resume_with_another_shape_is_refused_naming_the_field(root: Path) -> None:
    train(root, Tiny(io.StringIO()), max_steps=1)
    saved = root / "checkpoints" / "tiny.pt"
    payload = torch.load(saved, weights_only=False)
    payload["config"]["image_size"] = 16
    torch.save(payload, saved)
    with pytest.raises(inpaint_sdk.BadData, match="image_size: checkpoint 16 vs job 8"):
        train(root, Tiny(io.StringIO()), max_steps=2)


def test_job_config_applies_overrides_and_refuses_unknown_names() -> None:
    job = {"image_size": 16, "batch_size": 4, "hyperparameters": {"lr": 0.5, "sizes": [3]}}
    assert TinyConfig.from_job(job) == TinyConfig(lr=0.5, sizes=(3,), image_size=16, batch_size=4)
    with pytest.raises(inpaint_sdk.JobInvalid, match=r"unknown field\(s\) \['size'\]"):
        TinyConfig.from_job({**job, "hyperparameters": {"size": 1}})
    saved = {**TinyConfig().resolved(), "derived": 1}
    assert TinyConfig.from_saved(saved) == TinyConfig()


def test_predict_refuses_an_input_of_another_size_naming_it(root: Path) -> None:
    (root / "inputs").mkdir()
    Image.fromarray(np.zeros((SIZE, 2 * SIZE, 3), np.uint8)).save(root / "inputs" / "0.png")
    doc = {
        "contract_version": "1",
        "command": "predict",
        "job_id": "p",
        "seed": 0,
        "device": "cpu",
        "image_size": SIZE,
        "batch_size": 1,
        "data": {"inputs": "inputs", "masks": "masks"},
    }
    job = inpaint_sdk.Job(doc, root, root / "checkpoints", root / "outputs")
    with pytest.raises(inpaint_sdk.BadData, match=r"0\.png: 16x8 px, the job's image_size is 8"):
        inpaint_sdk.predict_loop(
            job,
            inpaint_sdk.Events(io.StringIO()),
            inpaint_sdk.StopFlag(),
            "cpu",
            {},
            lambda r, h: r,
        )


class StepClock:
    """A budget clock that advances one second per training step, so that snapshot times are
    counted in steps, whatever the machine's load."""

    def __init__(self, model: Tiny) -> None:
        self.model = model

    def __call__(self, seconds: float) -> StepClock:
        self.seconds = seconds
        self.at_start = len(self.model.batches)
        return self

    def elapsed(self) -> float:
        return float(len(self.model.batches) - self.at_start)


def test_snapshots_are_kept_at_the_asked_training_seconds_and_resume_keeps_them(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Tiny(io.StringIO())
    monkeypatch.setattr(inpaint_loop, "Budget", StepClock(model))
    # budget 10 s = 10 steps after the warm-up one (which is off the clock); stop after step 4
    events = train(root, model, max_steps=4, budget_s=10, snapshot_at_s=[6, 2.5, 1])
    snaps = [e for e in events if e["event"] == "checkpoint" and e.get("snapshot_s")]
    # after the step that reaches each asked second (step n ends at n - 1 s on this clock)
    assert [(e["snapshot_s"], e["step"], e["trained_s"]) for e in snaps] == [(1, 2, 1), (2.5, 4, 3)]
    assert [e["path"] for e in snaps] == ["snapshots/1/tiny.pt", "snapshots/2.5/tiny.pt"]
    kept = torch.load(root / "checkpoints" / "snapshots" / "2.5" / "tiny.pt", weights_only=False)
    assert (kept["step"], kept["trained_s"]) == (4, 3.0)

    resumed = Tiny(io.StringIO())
    monkeypatch.setattr(inpaint_loop, "Budget", StepClock(resumed))
    events = train(root, resumed, max_steps=9, budget_s=10, snapshot_at_s=[6, 2.5, 1])
    snaps = [e for e in events if e["event"] == "checkpoint" and e.get("snapshot_s")]
    assert [(e["snapshot_s"], e["step"]) for e in snaps] == [(6, 8)]  # 1 and 2.5 were kept
    assert sorted(p.name for p in (root / "checkpoints" / "snapshots").iterdir()) == [
        "1",
        "2.5",
        "6",
    ]


def test_predict_reads_the_snapshot_its_job_names(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[Path] = []

    def load(path: Path) -> dict:
        read.append(path)
        raise inpaint_sdk.BadData("stop here")

    monkeypatch.setattr(inpaint_loop, "load_checkpoint", load)
    doc = {
        "contract_version": "1",
        "command": "predict",
        "job_id": "p",
        "seed": 0,
        "device": "cpu",
        "image_size": SIZE,
        "batch_size": 1,
        "data": {"inputs": "images", "masks": "masks"},
    }
    for fields in ({}, {"snapshot_s": 2.5}, {"snapshot_s": 900.0}):
        inpaint_sdk.validate_against("job", {**doc, **fields})
        job = inpaint_sdk.Job({**doc, **fields}, root, root / "checkpoints", root / "outputs")
        with pytest.raises(inpaint_sdk.BadData, match="stop here"):
            inpaint_loop.predict(Tiny(io.StringIO()), job, inpaint_sdk.Events(io.StringIO()), None)
    base = root / "checkpoints"
    assert read == [
        base / "tiny.pt",
        base / "snapshots" / "2.5" / "tiny.pt",
        base / "snapshots" / "900" / "tiny.pt",
    ]
