"""The image side of contract v1, for adapters: job, events, budget, SIGTERM, PNG files.

Stdlib, numpy and pillow only (jsonschema when installed, to validate the job as the harness
does). A torch model subclasses `inpaint_loop.TorchModel` and lets that module run the commands; a
model without torch (the classical baseline) writes its handlers with the helpers here
(`start_run`, `stop_run`, `predict_loop`) and in `inpaint_handlers` (`JobConfig`,
`write_describe`, `train_nothing`), and calls `run_and_exit({"train": train, ...})` from `main()`.

    python adapter.py train   $INPAINT_JOB      # exit 0, also when the budget or SIGTERM stops it
    python adapter.py predict $INPAINT_JOB
    python adapter.py describe $INPAINT_JOB

Events go to the process's original stdout, one JSON object per line. Everything else written
to stdout (by the adapter or any library) is redirected to stderr at start-up, so a stray print
in the authors' code cannot corrupt the event stream.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CONTRACT_VERSION = "1"
MOUNT_DEFAULTS = {
    "INPAINT_DATA": "/inpaint/data",
    "INPAINT_JOB": "/inpaint/job/job.json",
    "INPAINT_CHECKPOINTS": "/inpaint/checkpoints",
    "INPAINT_OUTPUTS": "/inpaint/outputs",
}
EXIT_OK, EXIT_FAILURE, EXIT_INVALID_JOB, EXIT_UNSUPPORTED, EXIT_BAD_DATA = 0, 1, 2, 3, 4
HOLE = 255


class JobInvalid(Exception):
    """The job file breaks the contract; the message names the field."""


class BadData(Exception):
    """An input file is missing or malformed; the message names the file."""


def mount(name: str) -> Path:
    """The folder (or file) an INPAINT_DATA/_JOB/_CHECKPOINTS/_OUTPUTS variable points at."""
    return Path(os.environ.get(name, MOUNT_DEFAULTS[name]))


# --- events --------------------------------------------------------------------------------


class Events:
    """Writes contract events as JSON lines on the original stdout."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": time.time(), **fields}, allow_nan=False)
        self.stream.write(line + "\n")
        self.stream.flush()


def claim_stdout() -> Events:
    # Keep fd 1 for events; point fd 1 (and sys.stdout) at stderr for everything else.
    events_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return Events(os.fdopen(events_fd, "w", buffering=1, encoding="utf-8"))


# --- stop flag and budget ------------------------------------------------------------------


class StopFlag:
    """Set by SIGTERM/SIGINT; the loop checks it between steps (the handler only sets it)."""

    def __init__(self) -> None:
        self.signalled: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.signalled = "sigterm" if signum == signal.SIGTERM else "sigint"

    def __bool__(self) -> bool:
        return self.signalled is not None


@dataclass
class Budget:
    """Wall-clock training budget; the clock starts when `run_start` is emitted."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def spent(self) -> bool:
        return self.elapsed() >= self.seconds


# --- job -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    doc: dict[str, Any]
    data_root: Path
    checkpoints: Path
    outputs: Path

    @property
    def command(self) -> str:
        return str(self.doc["command"])

    def __getitem__(self, key: str) -> Any:
        return self.doc[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.doc.get(key, default)

    def data_path(self, key: str) -> Path | None:
        """A path from the job's `data` object, resolved inside the data mount (None if null)."""
        rel = self.doc.get("data", {}).get(key)
        if rel is None:
            return None
        path = (self.data_root / rel).resolve()
        return path


Handler = Callable[[Job, Events, StopFlag], None]


def _schema_dir() -> Path | None:
    here = Path(__file__).resolve().parent
    for candidate in (os.environ.get("INPAINT_CONTRACTS"), here.parent / "v1", here / "v1"):
        if candidate and (Path(candidate) / "job.schema.json").is_file():
            return Path(candidate)
    return None


def validate_against(kind: str, doc: Any) -> None:
    """Validate `doc` with contracts/v1/<kind>.schema.json when jsonschema is installed."""
    try:
        from jsonschema import Draft202012Validator
    except ImportError:
        return
    folder = _schema_dir()
    if folder is None:
        return
    schema = json.loads((folder / f"{kind}.schema.json").read_text())
    errors = sorted(
        Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(map(str, e.path))
    )
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        raise JobInvalid(f"{kind}: {where}: {first.message}")


def read_job_json(path: Path) -> Any:
    """A job file's JSON; JobInvalid naming the file if it cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise JobInvalid(f"{path}: cannot read job: {error}") from None
    except RecursionError:
        raise JobInvalid(f"{path}: cannot read job: JSON nested too deeply") from None


def load_job(path: Path, command: str) -> Job:
    doc = read_job_json(path)
    if not isinstance(doc, dict):
        raise JobInvalid(f"{path}: the job must be a JSON object")
    try:
        validate_against("job", doc)
    except JobInvalid as error:
        raise JobInvalid(f"{path}: {error}") from None
    if doc.get("contract_version") != CONTRACT_VERSION:
        raise JobInvalid(f"{path}: contract_version: expected {CONTRACT_VERSION!r}")
    if doc.get("command") != command:
        raise JobInvalid(f"{path}: command: job is for {doc.get('command')!r}, run as {command!r}")
    return Job(doc, mount("INPAINT_DATA"), mount("INPAINT_CHECKPOINTS"), mount("INPAINT_OUTPUTS"))


def start_run(
    events: Events, job: Job, device: str, config: Mapping[str, Any], resumed_from_step: int = 0
) -> None:
    """Emit `run_start`: the budget clock of a `train` starts here."""
    events.emit(
        "run_start",
        contract_version=CONTRACT_VERSION,
        command=job.command,
        job_id=job["job_id"],
        device=device,
        config=dict(config),
        resumed_from_step=resumed_from_step,
    )


def stop_run(
    events: Events, reason: str, step: int = 0, images_seen: int = 0, message: str | None = None
) -> None:
    """Emit `run_stop`: `stopped` for SIGTERM/SIGINT, else `completed` (failures are
    run_adapter's)."""
    status = "stopped" if reason in ("sigterm", "sigint") else "completed"
    reason = "sigterm" if reason == "sigint" else reason
    events.emit(
        "run_stop",
        status=status,
        reason=reason,
        step=step,
        images_seen=images_seen,
        message=message,
    )


# --- files ---------------------------------------------------------------------------------


def list_pngs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BadData(f"{folder}: folder not found")
    return sorted(p for p in folder.iterdir() if p.suffix == ".png" and not p.name.startswith("."))


def read_rgb(path: Path) -> np.ndarray:
    """8-bit RGB PNG → uint8 HxWx3."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except OSError as error:
        raise BadData(f"{path}: unreadable image: {error}") from None


def read_hole(path: Path) -> np.ndarray:
    """8-bit L mask → bool HxW, True = hole (255)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L"), dtype=np.uint8) >= 128
    except OSError as error:
        raise BadData(f"{path}: unreadable mask: {error}") from None


def load_folder(folder: Path, loader: Callable[[Path], np.ndarray]) -> np.ndarray:
    """Decode every PNG of `folder` once into one array (training data stays in memory)."""
    files = list_pngs(folder)
    if not files:
        raise BadData(f"{folder}: no PNG files")
    return np.stack([loader(p) for p in files])


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write uint8 HxWx3 as an RGB PNG through a temporary name and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(tmp, "PNG")
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; rename it to `path` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def predict_pairs(job: Job) -> list[tuple[str, Path, Path]]:
    """(name, masked input, mask) for every input; a mask must exist for each input."""
    inputs, masks = job.data_path("inputs"), job.data_path("masks")
    assert inputs is not None and masks is not None
    pairs = []
    for image in list_pngs(inputs):
        mask = masks / image.name
        if not mask.is_file():
            raise BadData(f"{mask}: no mask for input {image.name}")
        pairs.append((image.name, image, mask))
    return pairs


def output_dir(job: Job) -> Path:
    out = (job.outputs / job.get("output_dir", ".")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    return out


def predict_loop(
    job: Job,
    events: Events,
    stop: StopFlag,
    device: str,
    config: Mapping[str, Any],
    infer: Callable[[np.ndarray, np.ndarray], np.ndarray],
    after_start: Callable[[], None] | None = None,
) -> None:
    """The predict command every adapter shares: `infer(rgb, hole)` maps a batch (uint8
    NxHxWx3 masked inputs, bool NxHxW with True = hole) to uint8 NxHxWx3 outputs; this writes one
    PNG per input under its name and emits run_start (then calls `after_start`), progress and
    run_stop (or stops on SIGTERM between batches). An input or mask that is not image_size² is
    bad data (exit 4), named."""
    pairs = predict_pairs(job)
    out = output_dir(job)
    start_run(events, job, device, config)
    if after_start is not None:
        after_start()
    size, batch = int(job["image_size"]), int(job["batch_size"])
    done = 0
    for start in range(0, len(pairs), batch):
        if stop:
            stop_run(events, "sigterm", done, done)
            return
        chunk = pairs[start : start + batch]
        rgb = np.stack([sized(read_rgb(image), image, size) for _, image, _ in chunk])
        hole = np.stack([sized(read_hole(mask), mask, size) for _, _, mask in chunk])
        for (name, _, _), result in zip(chunk, infer(rgb, hole), strict=True):
            write_png(out / name, result)
        done += len(chunk)
        events.emit("progress", step=done, images_seen=done, losses={}, total=len(pairs))
    stop_run(events, "done", done, done)


def sized(array: np.ndarray, path: Path, size: int) -> np.ndarray:
    """`array` if it is size × size; BadData naming `path` otherwise."""
    if array.shape[:2] != (size, size):
        height, width = array.shape[:2]
        raise BadData(f"{path}: {width}x{height} px, the job's image_size is {size}")
    return array


# --- entry point ---------------------------------------------------------------------------


def run_and_exit(handlers: Mapping[str, Handler]) -> None:
    """`run_adapter`, then exit at once: the results are on disk and run_stop is out, so a slow
    interpreter teardown (thread pools, CUDA) must not hold the harness's clock."""
    code = run_adapter(handlers)
    sys.stderr.flush()
    os._exit(code)


def run_adapter(handlers: Mapping[str, Handler], argv: list[str] | None = None) -> int:
    """Dispatch `argv[1]` with the job at argv[2] (default $INPAINT_JOB); return the exit code.

    A handler emits run_start/progress/checkpoint itself and returns normally when it stops
    (budget, SIGTERM, max_steps or done); it emits `run_stop` itself. An exception becomes a
    `run_stop` with status failed and the matching exit code.
    """
    argv = sys.argv if argv is None else argv
    events = claim_stdout()
    stop = StopFlag()
    stop.install()
    command = argv[1] if len(argv) > 1 else ""
    if command not in ("train", "predict", "describe"):
        print(f"usage: {argv[0]} train|predict|describe [JOB]", file=sys.stderr)
        return EXIT_INVALID_JOB
    if command not in handlers:
        events.emit(
            "run_stop",
            status="failed",
            reason="error",
            step=0,
            images_seen=0,
            message=f"command {command!r} is not supported by this image",
        )
        return EXIT_UNSUPPORTED
    job_path = Path(argv[2]) if len(argv) > 2 else mount("INPAINT_JOB")
    try:
        job = load_job(job_path, command)
    except JobInvalid as error:
        events.emit(
            "run_stop", status="failed", reason="error", step=0, images_seen=0, message=str(error)
        )
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID_JOB
    try:
        handlers[command](job, events, stop)
    except (JobInvalid, BadData) as error:
        # A handler may find a job field it cannot honour (exit 2) or a bad input (exit 4).
        events.emit(
            "run_stop", status="failed", reason="error", step=0, images_seen=0, message=str(error)
        )
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID_JOB if isinstance(error, JobInvalid) else EXIT_BAD_DATA
    except Exception as error:
        traceback.print_exc()
        events.emit(
            "run_stop",
            status="failed",
            reason="error",
            step=0,
            images_seen=0,
            message=f"{type(error).__name__}: {error}"[:2000],
        )
        return EXIT_FAILURE
    return EXIT_OK
