"""Watch one started job: read its events, keep the harness's clock, escalate SIGTERM→SIGKILL.

The clock: up to `setup_cap_s` for `run_start` (off the budget, as MLPerf keeps initialisation
off the clock); then `budget_s` from `run_start`; at budget + grace SIGTERM ("checkpoint and
stop now"); after another grace SIGKILL. A malformed event line is a contract violation that
is recorded, never a harness crash.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from harness.contract import MAX_EVENT_LINE_BYTES, parse_event_line
from harness.errors import ContractViolation
from harness.runners.base import Launch, Outcome, Process

EventSink = Callable[[int, dict[str, Any]], None]
ViolationSink = Callable[[int, str], None]
_EOF = object()
TICK_S = 0.2


def split_lines(chunks: Iterable[bytes], limit: int = MAX_EVENT_LINE_BYTES) -> Iterator[bytes]:
    """Yield complete lines (without newline) from byte chunks; a line past `limit` is cut to
    `limit + 1` bytes, so one runaway line cannot exhaust memory and still reads as oversized."""
    buffer = bytearray()
    skipping = False
    for chunk in chunks:
        buffer.extend(chunk)
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > limit and not skipping:
                    yield bytes(buffer[: limit + 1])
                    skipping = True
                if skipping:
                    buffer.clear()
                break
            line = bytes(buffer[:newline])
            del buffer[: newline + 1]
            if skipping:
                skipping = False
                continue
            yield line
    if buffer and not skipping:
        yield bytes(buffer)


def _violation(line: bytes, error: ContractViolation) -> str:
    """The violation in words, with what to do about it."""
    message = error.message
    if len(line) > MAX_EVENT_LINE_BYTES:
        # split_lines cut the line, so its length in the message would be the cut length
        where = message.split(": line is ", 1)[0]
        message = f"{where}: line over the {MAX_EVENT_LINE_BYTES}-byte limit (cut, not read)"
    return f"{message} ({error.hint})" if error.hint else message


def _pump(process: Process, lines: queue.Queue[object]) -> None:
    try:
        for line in split_lines(process.stdout_chunks()):
            lines.put(line)
    finally:
        lines.put(_EOF)


def _budget(launch: Launch) -> str:
    """The clock that ran out, and for a run-time cap the setting that raises it."""
    limits = launch.limits
    if launch.command == "train":
        return f"budget of {limits.budget_s:g} s"
    cap = f"{launch.command} time cap of {limits.budget_s:g} s"
    if limits.cap_setting:
        cap += f" (raise {limits.cap_setting} if the model is only slow)"
    return cap


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{n} bytes"


def supervise(
    process: Process,
    launch: Launch,
    on_event: EventSink | None = None,
    on_violation: ViolationSink | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Follow `process` to its end and say how it ended. Always waits for the process to exit."""
    limits = launch.limits
    lines: queue.Queue[object] = queue.Queue()
    threading.Thread(target=_pump, args=(process, lines), daemon=True).start()
    started = clock()
    run_start: float | None = None
    term_at: float | None = None
    kill_at: float | None = None
    harness_reason: str | None = None
    stopped_at: float | None = None  # when run_stop arrived: from then on, only exiting is due
    events: list[dict[str, Any]] = []
    violations: list[str] = []
    line_no = 0
    eof = False
    lingered = False

    while not eof or process.wait(timeout=0) is None:
        try:
            item = lines.get(timeout=TICK_S) if not eof else None
        except queue.Empty:
            item = None
        if item is _EOF:
            eof = True
        elif isinstance(item, bytes):
            line_no += 1
            if item.strip():
                try:
                    event = parse_event_line(item, f"{launch.model} {launch.command} stdout")
                except ContractViolation as error:
                    message = _violation(item, error)
                    violations.append(f"line {line_no}: {message}")
                    if on_violation:
                        on_violation(line_no, message)
                else:
                    events.append(event)
                    if event["event"] == "run_start" and run_start is None:
                        run_start = clock()
                    if event["event"] == "run_stop" and stopped_at is None:
                        stopped_at = clock()
                    if on_event:
                        on_event(line_no, event)
        if eof and item is None:
            # stdout closed: the process is exiting; give it a moment instead of spinning
            process.wait(timeout=TICK_S)

        now = clock()
        if kill_at is None:
            if stopped_at is not None:
                if now - stopped_at > limits.grace_s:
                    harness_reason = f"lingered {limits.grace_s:g} s after run_stop: killed"
                    lingered = True
                    process.send_signal(signal.SIGKILL)
                    kill_at = now
            elif run_start is None and now - started > limits.setup_cap_s:
                harness_reason = harness_reason or (
                    f"no run_start within the setup cap of {limits.setup_cap_s:g} s"
                )
                process.send_signal(signal.SIGKILL)
                kill_at = now
            elif (
                term_at is None
                and run_start is not None
                and (now - run_start > limits.budget_s + limits.grace_s)
            ):
                harness_reason = f"still running {limits.grace_s:g} s after its {_budget(launch)}"
                process.send_signal(signal.SIGTERM)
                term_at = now
            elif term_at is not None and now - term_at > limits.grace_s:
                harness_reason = (
                    f"ignored SIGTERM for {limits.grace_s:g} s after its "
                    + ("budget" if launch.command == "train" else _budget(launch))
                    + ": killed"
                )
                process.send_signal(signal.SIGKILL)
                kill_at = now

    exit_code = process.wait(timeout=None)
    ended = clock()
    signals = [name for name, at in (("SIGTERM", term_at), ("SIGKILL", kill_at)) if at is not None]
    # Optional parts of a Process: the local runner cannot forbid writes into the data mount,
    # so it reports them; each runner knows the memory limit it really applied.
    changes = getattr(process, "data_changes", None)
    memory = getattr(process, "memory_limit", launch.limits.memory_bytes)
    return _judge(
        launch,
        exit_code,
        process.oom_killed(),
        memory,
        changes() if changes is not None else [],
        events,
        violations,
        harness_reason,
        signals,
        lingered,
        setup_s=(run_start or ended) - started,
        run_s=ended - run_start if run_start is not None else 0.0,
        wall_s=ended - started,
    )


def _judge(
    launch: Launch,
    exit_code: int | None,
    oom: bool,
    memory: int | None,
    data_changes: list[str],
    events: list[dict[str, Any]],
    violations: list[str],
    harness_reason: str | None,
    signals: list[str],
    lingered: bool,
    setup_s: float,
    run_s: float,
    wall_s: float,
) -> Outcome:
    stop = next((e for e in reversed(events) if e["event"] == "run_stop"), None)
    progress = [e for e in events if e["event"] in ("progress", "checkpoint", "run_stop")]
    steps = max((int(e.get("step", 0)) for e in progress), default=0)
    seen = max((int(e.get("images_seen", 0)) for e in progress), default=0)
    outcome = Outcome(
        status="failed",
        reason="",
        exit_code=exit_code,
        setup_s=setup_s,
        run_s=run_s,
        wall_s=wall_s,
        steps=steps,
        images_seen=seen,
        signals_sent=signals,
        events=events,
        violations=violations,
    )
    log = f"see {launch.log_path}"
    message = str(stop.get("message") or "") if stop else ""
    if data_changes:
        shown = "; ".join(data_changes[:3])
        more = f" and {len(data_changes) - 3} more" if len(data_changes) > 3 else ""
        outcome.reason = (
            f"wrote into its read-only data mount: {shown}{more}; the local runner cannot "
            f"prevent this, the docker runner does; {log}"
        )
    elif oom or (exit_code != 0 and memory and message.startswith("MemoryError")):
        limit = f"the memory limit of {_size(memory)}" if memory else "its memory limit"
        how = "killed by the out-of-memory killer" if oom else f"allocation failed ({message})"
        outcome.reason = (
            f"exceeded {limit} (runtime.memory): {how}; raise runtime.memory in benchmark.yaml "
            f"or lower the model's batch_size; {log}"
        )
    elif lingered and stop is not None and stop["status"] != "failed":
        outcome.status = stop["status"]
        outcome.reason = f"{stop['reason']} ({harness_reason})"
    elif "SIGKILL" in signals:
        outcome.reason = f"{harness_reason}; {log}"
    elif exit_code != 0:
        detail = f": {message}" if message else ""
        outcome.reason = f"exited with status {exit_code}{detail}; {log}"
    elif stop is None:
        outcome.reason = f"exited 0 without a run_stop event (contract violation); {log}"
    elif stop["status"] == "failed":
        outcome.reason = f"run_stop says failed: {stop.get('message')}; {log}"
    else:
        outcome.status = stop["status"]
        outcome.reason = str(stop["reason"])
        if "SIGTERM" in signals:
            outcome.reason = f"{stop['reason']} (after the harness's SIGTERM: {harness_reason})"
    if violations:
        # The first one says what to fix; all of them are in the ledger.
        outcome.reason += f"; {len(violations)} malformed event line(s), first: {violations[0]}"
    return outcome
