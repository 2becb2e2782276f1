"""Torch helpers shared by adapters: device, seeding, checkpoints, FLOPs, latency and memory.

Kept apart from inpaint_sdk so that non-torch images (the classical baseline) need no torch.
"""

from __future__ import annotations

import os
import random
import statistics
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import inpaint_weights
import numpy as np
import torch
from inpaint_sdk import CONTRACT_VERSION, BadData, atomic_target
from torch.utils.flop_counter import FlopCounterMode


def pick_device(requested: str) -> torch.device:
    """`cuda` only when asked for and present; asking for cuda without one is an error."""
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device: job asks for cuda but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def seed_all(seed: int) -> np.random.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": rng.bit_generator.state,
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any], rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    rng.bit_generator.state = state["numpy"]
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """A plain dict (models, optimisers, step, images_seen, config, RNG) written atomically.

    Without the zip records' CRC32: torch computes it in one thread over every byte, which took
    2-4× the write itself for MADF's and TFill's ~1 GB (model + Adam state, docs/performance.md,
    "Per-job overhead of the wrapped models"); torch.load does not check it, and the write
    through a temporary name and a rename already keeps a torn file from being found."""
    set_crc32 = getattr(torch.serialization, "set_crc32_options", None)  # torch ≥ 2.5
    with atomic_target(path) as tmp:
        if set_crc32 is None:
            torch.save({**payload, "contract_version": CONTRACT_VERSION}, tmp)
            return
        before = torch.serialization.get_crc32_options()
        set_crc32(False)
        try:
            torch.save({**payload, "contract_version": CONTRACT_VERSION}, tmp)
        finally:
            set_crc32(before)


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BadData(f"{path}: no checkpoint; run `train` first (checkpoints are kept to predict)")
    # Our own checkpoints hold numpy/python RNG state, which weights_only loading refuses.
    # mmap: tensors are read when used, so predict never reads the optimiser state (two thirds
    # of MADF's and TFill's files); pages are private, so a resumed Adam's in-place updates
    # never reach the file. Files from torch's legacy (pre-zip) format cannot be mapped.
    mmap = zipfile.is_zipfile(path)
    payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    if payload.get("contract_version") != CONTRACT_VERSION:
        raise BadData(f"{path}: checkpoint is for contract {payload.get('contract_version')!r}")
    return payload


def states_of(objects: Mapping[str, Any]) -> dict[str, Any]:
    """The state dicts of named modules and optimisers, for a checkpoint."""
    return {name: obj.state_dict() for name, obj in objects.items()}


def load_states(objects: Mapping[str, Any], states: Mapping[str, Any]) -> None:
    """Load each named module strictly (a renamed or missing key is an error) and each
    optimiser from `states`, as `states_of` wrote them."""
    for name, obj in objects.items():
        if isinstance(obj, torch.nn.Module):
            obj.load_state_dict(states[name], strict=True)
        else:
            obj.load_state_dict(states[name])


def check_same(saved: Mapping[str, Any], current: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Refuse to resume when a field that shapes the model differs, naming each field."""
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r} vs job {current.get(k)!r}"
        for k in keys
        if saved.get(k) != current.get(k)
    ]
    if diffs:
        raise BadData("cannot resume, config differs: " + "; ".join(diffs))


def count_parameters(module: torch.nn.Module | None) -> int | None:
    return None if module is None else sum(p.numel() for p in module.parameters())


def count_flops(forward: Callable[[], Any]) -> tuple[int, list[str]]:
    """FLOPs of one call of `forward` with FlopCounterMode (1 MAC = 2 FLOPs), and the ops it
    has no formula for, so a table can say what was not counted."""
    seen: set[str] = set()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), _OpRecorder(seen):
        forward()
    counted = {str(k) for k in counter.flop_registry}
    uncounted = sorted(op for op in seen if op not in counted and _is_compute_op(op))
    return int(counter.get_total_flops()), uncounted


def _is_compute_op(name: str) -> bool:
    # View/shape/copy ops cost no arithmetic worth reporting; everything else is listed.
    cheap = (
        "view",
        "reshape",
        "expand",
        "permute",
        "transpose",
        "slice",
        "select",
        "unsqueeze",
        "squeeze",
        "detach",
        "clone",
        "copy",
        "empty",
        "zeros",
        "ones",
        "full",
        "_to_copy",
        "t.default",
        "alias",
        "split",
        "chunk",
        "cat",
        "stack",
        "lift_fresh",
        "unbind",
        "as_strided",
        "contiguous",
        "new_",
        "fill",
        "arange",
        "_unsafe_view",
        "index",
    )
    short = name.split("aten.")[-1]
    return not any(short.startswith(c) for c in cheap)


class _OpRecorder(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the aten ops a forward pass runs, to find those FlopCounterMode cannot count."""

    def __init__(self, seen: set[str]) -> None:
        super().__init__()
        self.seen = seen

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.seen.add(str(func._overloadpacket) if hasattr(func, "_overloadpacket") else str(func))
        return func(*args, **(kwargs or {}))


def measure_forward(
    forward: Callable[[], Any], device: torch.device, runs: int
) -> tuple[dict[str, Any], int | None]:
    """Median wall time of `runs` calls after two warm-ups, synchronising CUDA around each, and
    the peak CUDA memory allocated during the timed calls (None on the CPU).

    The CUDA peak counter is reset after the warm-ups, so every model's peak is of the same
    thing: weights, inputs and activations of one timed forward, not whatever ran before. The
    CPU has no such counter: ru_maxrss is the process's lifetime peak and cannot be reset, so
    it would count imports and the FLOP count as well; the CPU reports none.
    """
    cuda = device.type == "cuda"
    with torch.no_grad():
        for _ in range(2):
            forward()
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(runs):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            forward()
            if cuda:
                torch.cuda.synchronize(device)
            times.append((time.perf_counter() - start) * 1000.0)
    peak = int(torch.cuda.max_memory_allocated(device)) if cuda else None
    return {"median": statistics.median(times), "runs": runs}, peak


def set_threads() -> None:
    """Use the CPUs the container was given, not the host's count."""
    if hasattr(os, "sched_getaffinity"):
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))


# --- pretrained loss networks -------------------------------------------------------------
# Baked into images at build time ($TORCH_HOME/hub/checkpoints, inpaint_weights.py); nothing
# downloads at run time. Each file is checked against its full sha256 before it is used.
PRETRAINED = {name: (url, sha) for name, (url, sha, _) in inpaint_weights.PRETRAINED.items()}
RANDOM_WEIGHTS_ENV = "INPAINT_RANDOM_LOSS_WEIGHTS"


def pretrained_path(arch: str) -> Path:
    url, _ = PRETRAINED[arch]
    return Path(torch.hub.get_dir()) / "checkpoints" / inpaint_weights.file_name(url)


def sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_pretrained(arch: str, warn: Callable[[str], None]) -> str:
    """Make `torchvision.models.<arch>(pretrained=True)` work offline; say where weights came from.

    With the baked file present (and matching its pinned sha256) nothing changes.
    Without it, only when $INPAINT_RANDOM_LOSS_WEIGHTS=1 (tests of plumbing), the constructor is
    replaced by a seeded random-init one and `warn` is told so; otherwise BadData says what to do.
    """
    import torchvision

    path = pretrained_path(arch)
    _, expected = PRETRAINED[arch]
    if path.is_file():
        digest = sha256_of(path)
        if digest != expected:
            raise BadData(
                f"{path}: sha256 {digest[:12]}… is not the pinned {expected[:12]}…; rebuild the "
                "image on a connected host"
            )
        return f"pretrained ({path.name}, sha256 {digest})"
    if os.environ.get(RANDOM_WEIGHTS_ENV) != "1":
        raise BadData(
            f"{path}: pretrained {arch} weights are missing; build the image on a connected host "
            f"(they are baked at build time) or place the file there"
        )
    original = getattr(torchvision.models, arch)

    def random_init(*args: Any, **kwargs: Any) -> torch.nn.Module:
        kwargs.pop("pretrained", None)
        kwargs.pop("weights", None)
        state = torch.get_rng_state()
        torch.manual_seed(0)  # the same random network in every process
        try:
            return original(*args, weights=None, **kwargs)
        finally:
            torch.set_rng_state(state)

    setattr(torchvision.models, arch, random_init)
    warn(
        f"{arch} loss network has seeded RANDOM weights ({RANDOM_WEIGHTS_ENV}=1): "
        "a plumbing test only; nothing trained this way means anything"
    )
    return f"random ({RANDOM_WEIGHTS_ENV}=1, plumbing test only)"
