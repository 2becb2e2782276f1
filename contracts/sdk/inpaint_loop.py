"""The training loop every trainer shares, with predict, describe and main around it.

An adapter holds only its model: a `TorchModel` subclass gives the model-specific pieces (its
config, networks and optimisers, one training step on a batch, the predict forward and what to
describe) and this module does the rest, the same way for every model:

    python adapter.py train    $INPAINT_JOB   # train until budget, max_steps or SIGTERM; resumes
    python adapter.py predict  $INPAINT_JOB   # one PNG per input, from the newest checkpoint
                                              # (or the snapshot the job's snapshot_s names)
    python adapter.py describe $INPAINT_JOB   # parameters, FLOPs, latency, peak memory

An adapter ends with

    MODEL = MyModel()
    train, predict, describe = handlers(MODEL)
    if __name__ == "__main__":
        main(MODEL)

`train` below reads top to bottom like nanoGPT's train.py: config, device and seed; data;
networks (fresh or resumed); one warm-up step; `run_start`; then one loop that checks the
progress and checkpoint intervals, stops on SIGTERM, the budget or max_steps, and takes a step;
then a final checkpoint and `run_stop`. No callbacks beyond the hooks of `TorchModel`.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from inpaint_handlers import (
    JobConfig,
    describe_sizes,
    read_manifest,
    size_report,
    write_describe,
)
from inpaint_sdk import (
    BadData,
    Budget,
    Events,
    Handler,
    Job,
    StopFlag,
    load_folder,
    predict_loop,
    read_hole,
    read_rgb,
    run_and_exit,
    start_run,
    stop_run,
)
from inpaint_torch import (
    check_same,
    count_flops,
    load_checkpoint,
    measure_forward,
    pick_device,
    restore_rng,
    rng_state,
    save_checkpoint,
    seed_all,
    set_threads,
)

FLOP_COUNTER = "torch.utils.flop_counter.FlopCounterMode"


def snapshot_folder(seconds: float) -> str:
    """The folder, inside the checkpoints mount, of the snapshot kept at `seconds` of training
    (contracts/README.md, "Snapshots"): up to three decimals, trailing zeros dropped."""
    return "snapshots/" + f"{float(seconds):.3f}".rstrip("0").rstrip(".")


class Context:
    """What the hooks may tell the run: warnings, and notes such as where the loss network's
    weights came from, which go into run_start's `config` and, top level, into every checkpoint
    (so `build` finds them again in `saved` on resume)."""

    def __init__(self, events: Events) -> None:
        self.events = events
        self.notes: dict[str, Any] = {}
        self.pending: list[str] | None = []  # warnings wait for run_start, the first event
        self.said: set[str] = set()

    def warn(self, message: str) -> None:
        if message in self.said:
            return  # describe builds a generator per size: say each thing once
        self.said.add(message)
        if self.pending is None:
            self.events.emit("warning", message=message)
        else:
            self.pending.append(message)

    def started(self) -> None:
        """run_start is out: emit the warnings held back until now."""
        pending, self.pending = self.pending or [], None
        for message in pending:
            self.events.emit("warning", message=message)

    def note(self, name: str, value: Any) -> Any:
        self.notes[name] = value
        return value


class TorchModel:
    """The model-specific pieces of an adapter. Subclass it, set `Config` and `checkpoint`, and
    write the hooks marked *required*; `train`, `predict`, `describe` and `main` below call them.

    `nets` is whatever `build` returns (a module, a namespace of networks and optimisers, the
    authors' model object): the loop only hands it back to the hooks.
    """

    Config: type[JobConfig]  # a frozen dataclass whose defaults equal the manifest's
    checkpoint: str = "model.pt"  # file name in the checkpoints mount
    shaping: tuple[str, ...] = ("image_size",)  # config fields a resumed run must share
    lr_field: str = "lr"  # the config field progress events report as `lr`
    warmup: bool = True  # take the first step before run_start (see `train`)
    # Do not begin a step that the last one's duration says would end past the budget (steps
    # of seconds); False spends the budget to its end and may overrun it by one step.
    stop_before_overrun: bool = True
    # Whether the predict network differs with image_size (TFill's working size): describe then
    # builds one per size; a model whose network does not (MADF, AOT-GAN) is built once.
    network_depends_on_size: bool = True

    device = torch.device("cpu")  # the job's, set by train/predict/describe before any hook

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """The manifest beside the adapter: describe.json's `model` is its name."""
        return read_manifest(Path(inspect.getfile(type(self))).parent)

    # --- required ------------------------------------------------------------------------

    def build(self, cfg: Any, saved: dict[str, Any] | None, ctx: Context) -> Any:
        """Networks and optimisers for training, loaded strictly from `saved` when resuming."""
        raise NotImplementedError

    def state(self, nets: Any) -> dict[str, Any]:
        """The state dicts a checkpoint holds, by name (the loop adds step, config, RNG, ...)."""
        raise NotImplementedError

    def step(self, nets: Any, cfg: Any, rgb: np.ndarray, hole: np.ndarray, rng) -> Mapping:
        """One training step on a batch: uint8 NxHxWx3 images and bool NxHxW masks (True =
        hole) drawn at random from the training data; augment with `rng`. Returns the losses
        (tensors are fine: they are read only at the progress interval)."""
        raise NotImplementedError

    def generator(self, cfg: Any, saved: dict[str, Any] | None, ctx: Context) -> Any:
        """The predict-time network in eval mode: loaded strictly from `saved` (predict), or
        freshly initialised (describe)."""
        raise NotImplementedError

    def forward(self, model: Any, rgb: np.ndarray, hole: np.ndarray) -> Callable[[], Any]:
        """The predict forward of a uint8 batch, converted to model space once: describe counts
        and times the returned call; predict passes its result to `from_model_space`."""
        raise NotImplementedError

    def from_model_space(self, output: Any, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """The forward's output → uint8 NxHxWx3 with the input's known pixels pasted back."""
        raise NotImplementedError

    def parameters(self, cfg: Any, model: Any) -> dict[str, Any]:
        """describe.json's `parameters`: generator, discriminator (or None) and other."""
        raise NotImplementedError

    # --- optional ------------------------------------------------------------------------

    def advance(self, nets: Any, cfg: Any, done: float, ctx: Context) -> Any:
        """Called before each step with the share of the run done (of max_steps if set, else
        of the budget); returns the nets to train on (TFill switches to its refine stage)."""
        return nets


# --- train ---------------------------------------------------------------------------------


def training_data(job: Job, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The training images and masks, decoded once and kept in memory (the seed's 1,000 images
    at 256² are about 200 MB), checked against the job's image_size."""
    arrays = []
    for key, reader in (("train_images", read_rgb), ("train_masks", read_hole)):
        folder = job.data_path(key)
        assert folder is not None  # the job schema requires both
        array = load_folder(folder, reader)
        if array.shape[1:3] != (size, size):
            raise BadData(f"{folder}: files are {array.shape[1:3]}, job says {size}")
        arrays.append(array)
    return arrays[0], arrays[1]


def train(model: TorchModel, job: Job, events: Events, stop: StopFlag) -> None:
    # config, device, seed
    cfg = model.Config.from_job(job)
    device = model.device = pick_device(job["device"])
    set_threads()
    rng = seed_all(int(job["seed"]))
    images, holes = training_data(job, cfg.image_size)

    # networks and optimisers: fresh, or resumed from the checkpoint (resume defaults to true)
    path = job.checkpoints / model.checkpoint
    saved = load_checkpoint(path) if job.get("resume", True) and path.is_file() else None
    if saved is not None:
        check_same(saved["config"], cfg.resolved(), model.shaping)
    ctx = Context(events)
    nets = model.build(cfg, saved, ctx)
    step = images_seen = 0
    trained_s = 0.0
    if saved is not None:
        step, images_seen, trained_s = saved["step"], saved["images_seen"], saved["trained_s"]
        restore_rng(saved["rng"], rng)
    resumed_from = step
    max_steps = job.get("max_steps")
    progress_every = float(job.get("progress_every_s", 10))
    checkpoint_every = float(job.get("checkpoint_every_s", 600))
    budget_s = float(job["budget_s"])
    budget: Budget | None = None  # the clock starts at run_start
    losses: Mapping[str, Any] = {}
    # Snapshots the job asks for (snapshot_at_s) and a resumed run has not kept yet, in order.
    snapshots = sorted(
        float(s)
        for s in job.get("snapshot_at_s") or []
        if not (job.checkpoints / snapshot_folder(s) / model.checkpoint).is_file()
    )

    def take_step() -> None:
        nonlocal nets, losses, step, images_seen
        spent = trained_s + (budget.elapsed() if budget else 0.0)
        done = step / max_steps if max_steps else spent / budget_s
        nets = model.advance(nets, cfg, done, ctx)
        # masks are paired with images at random, from the seed (the contract's pool rule)
        rgb = images[rng.integers(0, len(images), cfg.batch_size)]
        hole = holes[rng.integers(0, len(holes), cfg.batch_size)]
        losses = model.step(nets, cfg, rgb, hole, rng)
        step += 1
        images_seen += cfg.batch_size

    def progress() -> None:
        # float() of a CUDA tensor syncs: only at the progress interval; no NaN in events
        values = {k: float(v.detach() if torch.is_tensor(v) else v) for k, v in losses.items()}
        finite = {k: v if math.isfinite(v) else None for k, v in values.items()}
        events.emit(
            "progress",
            step=step,
            images_seen=images_seen,
            losses=finite,
            lr=getattr(cfg, model.lr_field, None),
        )

    def checkpoint(snapshot_s: float | None = None) -> None:
        assert budget is not None
        spent = trained_s + budget.elapsed()  # the budget is total training time
        payload = {
            **model.state(nets),
            **ctx.notes,
            "step": step,
            "images_seen": images_seen,
            "config": cfg.resolved(),
            "trained_s": spent,
            "rng": rng_state(rng),
        }
        name = model.checkpoint
        if snapshot_s is not None:  # a full checkpoint of its own, which predict can be told
            name = f"{snapshot_folder(snapshot_s)}/{model.checkpoint}"
        save_checkpoint(job.checkpoints / name, payload)
        marks = {} if snapshot_s is None else {"snapshot_s": snapshot_s}
        events.emit(
            "checkpoint",
            step=step,
            images_seen=images_seen,
            path=name,
            trained_s=round(spent, 3),
            **marks,
        )

    def due_snapshots() -> None:
        # Kept on the budget clock after the step that reached each asked second; a step is
        # never cut short for one, so the event's trained_s may be a step past snapshot_s.
        assert budget is not None
        while snapshots and trained_s + budget.elapsed() >= snapshots[0]:
            checkpoint(snapshots.pop(0))

    # One warm-up step before run_start: CUDA context, cuDNN autotuning and kernel loading all
    # happen in the first step (MADF's took 33.9 s on an H100, docs/performance.md), which the
    # budget rules keep off the clock. It is a real step, counted like any other, so nothing
    # the run computes changes.
    last_progress = last_checkpoint = time.monotonic()
    warm = model.warmup and not stop and trained_s < budget_s
    warm = warm and (max_steps is None or step < max_steps)
    if warm:
        take_step()
    start_run(events, job, device.type, {**cfg.resolved(), **ctx.notes}, resumed_from)
    ctx.started()
    budget = Budget(budget_s - trained_s)
    step_s = 0.0  # the last clocked step's duration (see stop_before_overrun)
    stepped = warm  # whether a step is waiting for its interval checks
    while True:
        if stepped:
            due_snapshots()
            now = time.monotonic()
            if now - last_progress >= progress_every:
                progress()
                last_progress = now
            if now - last_checkpoint >= checkpoint_every:
                checkpoint()
                last_checkpoint = now
        ahead = step_s if model.stop_before_overrun else 0.0
        if stop:
            reason = "sigterm"
        elif budget.elapsed() + ahead >= budget.seconds:
            reason = "budget"
        elif max_steps is not None and step >= max_steps:
            reason = "max_steps"
        else:
            reason = None
        if reason is not None:
            break
        started = time.monotonic()
        take_step()
        step_s, stepped = time.monotonic() - started, True
    progress()
    due_snapshots()  # those the last step reached; later ones wait for a resumed run
    checkpoint()
    stop_run(events, reason, step, images_seen)


# --- predict and describe ------------------------------------------------------------------


def predict(model: TorchModel, job: Job, events: Events, stop: StopFlag) -> None:
    device = model.device = pick_device(job["device"])
    set_threads()
    seed_all(int(job["seed"]))  # a model that draws noise at test time repeats itself
    snapshot_s = job.get("snapshot_s")
    folder = job.checkpoints
    if snapshot_s is not None:
        folder = folder / snapshot_folder(snapshot_s)
    saved = load_checkpoint(folder / model.checkpoint)
    cfg = model.Config.from_saved(saved["config"])
    ctx = Context(events)
    network = model.generator(cfg, saved, ctx)

    def infer(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            output = model.forward(network, rgb, hole)()
        return model.from_model_space(output, rgb, hole)

    config = {**cfg.resolved(), "batch_size": job["batch_size"], **ctx.notes}
    predict_loop(job, events, stop, device.type, config, infer, after_start=ctx.started)


def describe(model: TorchModel, job: Job, events: Events, stop: StopFlag) -> None:
    """Parameters (at image_size), and at each of `describe_sizes(job)` the FLOPs of one forward
    of one image and (if the job asks) the median latency of `batch_size` images and the peak
    CUDA memory, for a hole in the middle. A fresh generator is built per size where the
    model's network depends on it (TFill's working size), else the first serves every size."""
    cfg = model.Config.from_job(job)
    device = model.device = pick_device(job["device"])
    set_threads()
    ctx = Context(events)
    network = model.generator(cfg, None, ctx)
    start_run(events, job, device.type, {**cfg.resolved(), **ctx.notes})
    ctx.started()
    parameters = model.parameters(cfg, network)
    per_size = []
    for size in describe_sizes(job):
        if size != cfg.image_size and model.network_depends_on_size:
            network = None  # free the last size's network before building the next
            resized = model.Config.from_job({**job.doc, "image_size": size})
            network = model.generator(resized, None, ctx)
        per_size.append(_measure(model, network, job, size, device))
    write_describe(
        job,
        events,
        model.manifest,
        parameters=parameters,
        counter=FLOP_COUNTER,
        per_size=per_size,
        device=device.type,
    )


def _measure(
    model: TorchModel, network: Any, job: Job, size: int, device: torch.device
) -> dict[str, Any]:
    batch = int(job["batch_size"])
    hole = np.zeros((batch, size, size), dtype=bool)
    hole[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
    rgb = np.zeros((batch, size, size, 3), dtype=np.uint8)
    flops, uncounted = count_flops(model.forward(network, rgb[:1], hole[:1]))
    latency = peak = None
    if job.get("measure_latency", False):
        runs = int(job.get("latency_runs", 20))
        latency, peak = measure_forward(model.forward(network, rgb, hole), device, runs)
    return size_report(size, flops, uncounted, latency, peak)


# --- main ----------------------------------------------------------------------------------


def handlers(model: TorchModel) -> tuple[Handler, Handler, Handler]:
    """(train, predict, describe) as `run_adapter` calls them: (job, events, stop)."""

    def train_(job: Job, events: Events, stop: StopFlag) -> None:
        train(model, job, events, stop)

    def predict_(job: Job, events: Events, stop: StopFlag) -> None:
        predict(model, job, events, stop)

    def describe_(job: Job, events: Events, stop: StopFlag) -> None:
        describe(model, job, events, stop)

    return train_, predict_, describe_


def main(model: TorchModel) -> None:
    train_, predict_, describe_ = handlers(model)
    run_and_exit({"train": train_, "predict": predict_, "describe": describe_})
