"""The run's ledger: an embedded SQLite database recording every step, its events and outcome.

A step is keyed by a content hash of everything that determines its result (image digest, data
identity, job spec, seed, and the keys of the steps it consumes), so rerunning a command skips
what is done. A step becomes `done` only after its outputs have been renamed into place; a step
left `running` by a crash is simply run again under a new attempt number.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.errors import LedgerError, storage_error

LEDGER_NAME = "ledger.sqlite"
StepStatus = Literal["running", "done", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS migrations (
    name TEXT PRIMARY KEY,
    applied_at REAL NOT NULL
);
"""

# Ordered, named migrations; each is recorded in the same transaction that applies it.
_MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
    CREATE TABLE steps (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        label TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
        attempt INTEGER NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        reason TEXT,
        spec TEXT NOT NULL,
        result TEXT
    );
    CREATE TABLE events (
        step_key TEXT NOT NULL REFERENCES steps(key),
        attempt INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        time REAL,
        event TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (step_key, attempt, seq)
    );
    CREATE TABLE violations (
        step_key TEXT NOT NULL REFERENCES steps(key),
        attempt INTEGER NOT NULL,
        line_no INTEGER NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX events_by_step ON events (step_key, attempt);
    """,
    ),
    (
        "0002_scores",
        """
    CREATE TABLE scores (
        step_key TEXT NOT NULL REFERENCES steps(key),
        source TEXT NOT NULL,
        model TEXT NOT NULL,
        test_set TEXT NOT NULL,
        image TEXT NOT NULL,
        variant TEXT NOT NULL,
        hole_fraction REAL,
        bin TEXT,
        metric TEXT NOT NULL,
        value REAL,
        PRIMARY KEY (step_key, image, variant, metric)
    );
    CREATE INDEX scores_by_cell ON scores (source, test_set, model, metric, variant);
    """,
    ),
    (
        # Which training seed and snapshot (training seconds; NULL: the final checkpoint) a row
        # scores. Rows from before it have a NULL seed: the run's seed (run.json).
        "0003_score_runs",
        """
    ALTER TABLE scores ADD COLUMN seed INTEGER;
    ALTER TABLE scores ADD COLUMN snapshot_s REAL
    """,
    ),
    (
        "0004_external_jobs",
        """
    CREATE TABLE external_jobs (
        step_key TEXT NOT NULL REFERENCES steps(key),
        attempt INTEGER NOT NULL,
        job_id TEXT NOT NULL,
        adopted INTEGER NOT NULL,
        recorded_at REAL NOT NULL
    );
    CREATE INDEX external_jobs_by_step ON external_jobs (step_key);
    """,
    ),
]


def content_key(kind: str, parts: Mapping[str, Any]) -> str:
    """A stable sha256 of `kind` and JSON-serialisable `parts` (key order does not matter)."""
    blob = json.dumps({"kind": kind, **parts}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Step:
    key: str
    kind: str
    label: str
    status: StepStatus
    attempt: int
    started_at: float
    finished_at: float | None
    reason: str | None
    spec: dict[str, Any]
    result: dict[str, Any] | None


def _row_to_step(row: sqlite3.Row) -> Step:
    try:
        return _decode_step(row)
    except (ValueError, TypeError, IndexError, RecursionError) as error:
        # SQLite vouches for its pages, not for the JSON the harness keeps in them.
        raise LedgerError(
            f"ledger step {str(row['key'])[:16]}: damaged row ({type(error).__name__}: {error})",
            "restore the ledger from a backup, or move it aside to redo every step of the run",
        ) from None


def _decode_step(row: sqlite3.Row) -> Step:
    return Step(
        key=row["key"],
        kind=row["kind"],
        label=row["label"],
        status=row["status"],
        attempt=row["attempt"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        reason=row["reason"],
        spec=json.loads(row["spec"]),
        result=json.loads(row["result"]) if row["result"] is not None else None,
    )


class Ledger:
    """All SQL of the harness. Every state change is one transaction.

    One connection, shared by the threads of a run with several slots: a lock serialises its
    use, so one thread's statements never land inside another's transaction.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        if read_only:
            self.conn = open_read_only(self.path)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Checked before anything is written: a damaged ledger must be refused, not built on.
        check_ledger(self.path)
        self.conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=30, check_same_thread=False
        )
        try:
            self.conn.row_factory = sqlite3.Row
            self.conn.text_factory = _text_factory(self.path)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.DatabaseError as error:
            self.conn.close()
            raise _damaged(self.path, str(error)) from None

    @classmethod
    def read_only(cls, path: Path) -> Ledger:
        """The ledger's queries over a read-only connection, for reports, which must never
        change a run (a plain Ledger opens read-write and migrates)."""
        return cls(path, read_only=True)

    @classmethod
    def in_run_dir(cls, run_dir: Path) -> Ledger:
        return cls(Path(run_dir) / LEDGER_NAME)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one query, fetched under the lock (a cursor left open would read later)."""
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        self.conn.executescript(_SCHEMA)
        applied = {r["name"] for r in self.conn.execute("SELECT name FROM migrations")}
        for name, script in _MIGRATIONS:
            if name in applied:
                continue
            with self.transaction() as conn:
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, time.time())
                )

    def migrations(self) -> list[str]:
        return [r["name"] for r in self._read("SELECT name FROM migrations ORDER BY name")]

    def get(self, key: str) -> Step | None:
        rows = self._read("SELECT * FROM steps WHERE key = ?", (key,))
        return _row_to_step(rows[0]) if rows else None

    def steps(self, kind: str | None = None) -> list[Step]:
        if kind is None:
            rows = self._read("SELECT * FROM steps ORDER BY started_at")
        else:
            rows = self._read("SELECT * FROM steps WHERE kind = ? ORDER BY started_at", (kind,))
        return [_row_to_step(r) for r in rows]

    def begin(self, key: str, kind: str, label: str, spec: Mapping[str, Any]) -> int:
        """Mark step `key` running and return its attempt number (1 for a first try)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT attempt FROM steps WHERE key = ?", (key,)).fetchone()
            attempt = 1 if row is None else row["attempt"] + 1
            conn.execute(
                "INSERT INTO steps (key, kind, label, status, attempt, started_at, spec)"
                " VALUES (?, ?, ?, 'running', ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET status = 'running', attempt = excluded.attempt,"
                " started_at = excluded.started_at, finished_at = NULL, reason = NULL,"
                " result = NULL, label = excluded.label, spec = excluded.spec",
                (key, kind, label, attempt, time.time(), json.dumps(spec, sort_keys=True)),
            )
        return attempt

    def finish(
        self,
        key: str,
        status: Literal["done", "failed"],
        result: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        with self.transaction() as conn:
            updated = conn.execute(
                "UPDATE steps SET status = ?, finished_at = ?, reason = ?, result = ?"
                " WHERE key = ?",
                (
                    status,
                    time.time(),
                    reason,
                    json.dumps(result, sort_keys=True) if result is not None else None,
                    key,
                ),
            ).rowcount
        if updated != 1:
            raise KeyError(f"ledger has no step {key}")

    def add_event(self, key: str, attempt: int, seq: int, event: Mapping[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO events (step_key, attempt, seq, time, event, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    attempt,
                    seq,
                    event.get("time"),
                    str(event.get("event")),
                    json.dumps(event, sort_keys=True),
                ),
            )

    def add_violation(self, key: str, attempt: int, line_no: int, message: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO violations (step_key, attempt, line_no, message) VALUES (?, ?, ?, ?)",
                (key, attempt, line_no, message),
            )

    def events(self, key: str, attempt: int | None = None) -> list[dict[str, Any]]:
        """The events of a step's given attempt (default: its latest), in order."""
        if attempt is None:
            step = self.get(key)
            if step is None:
                return []
            attempt = step.attempt
        rows = self._read(
            "SELECT body FROM events WHERE step_key = ? AND attempt = ? ORDER BY seq",
            (key, attempt),
        )
        return [json.loads(r["body"]) for r in rows]

    def violations(self, key: str, attempt: int | None = None) -> list[str]:
        if attempt is None:
            step = self.get(key)
            attempt = step.attempt if step else 0
        rows = self._read(
            "SELECT line_no, message FROM violations WHERE step_key = ? AND attempt = ?"
            " ORDER BY line_no",
            (key, attempt),
        )
        return [f"line {r['line_no']}: {r['message']}" for r in rows]

    def add_external_job(self, key: str, attempt: int, job_id: str, adopted: bool) -> None:
        """Record that attempt `attempt` of step `key` ran as scheduler job `job_id` (Slurm),
        submitted for it or, after a crash, `adopted` from an earlier attempt."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO external_jobs (step_key, attempt, job_id, adopted, recorded_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (key, attempt, job_id, int(adopted), time.time()),
            )

    def external_jobs(self, key: str) -> list[tuple[int, str, bool]]:
        """(attempt, job ID, adopted) of every scheduler job recorded for step `key`."""
        rows = self._read(
            "SELECT attempt, job_id, adopted FROM external_jobs WHERE step_key = ?"
            " ORDER BY attempt, recorded_at",
            (key,),
        )
        return [(r["attempt"], r["job_id"], bool(r["adopted"])) for r in rows]

    def put_scores(
        self,
        key: str,
        where: Mapping[str, str],
        rows: Sequence[Mapping[str, Any]],
        metrics: list[str],
        seed: int | None = None,
        snapshot_s: float | None = None,
    ) -> int:
        """Replace the per-image scores of step `key` (one row per image, variant and metric;
        a missing value, e.g. LPIPS without weights, is stored as NULL), with the training seed
        and snapshot they score."""
        values = [
            (
                key,
                where["source"],
                where["model"],
                where["test_set"],
                row["image"],
                row["variant"],
                _number(row.get("hole_fraction")),
                row.get("bin") or None,
                metric,
                _number(row.get(metric)),
                seed,
                snapshot_s,
            )
            for row in rows
            for metric in metrics
        ]
        with self.transaction() as conn:
            conn.execute("DELETE FROM scores WHERE step_key = ?", (key,))
            conn.executemany(
                "INSERT INTO scores (step_key, source, model, test_set, image, variant,"
                " hole_fraction, bin, metric, value, seed, snapshot_s)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        return len(values)

    def score_rows(self) -> list[dict[str, Any]]:
        """Every per-image score of the run's completed score steps; `seed` and `snapshot_s`
        are None in rows older than 0003_score_runs (and in a read-only ledger without it)."""
        columns = {r["name"] for r in self._read("PRAGMA table_info(scores)")}
        runs = (
            "s.seed, s.snapshot_s"
            if {"seed", "snapshot_s"} <= columns
            else "NULL AS seed, NULL AS snapshot_s"
        )
        rows = self._read(
            "SELECT s.source, s.model, s.test_set, s.image, s.variant, s.hole_fraction, s.bin,"
            f" s.metric, s.value, {runs} FROM scores s JOIN steps t ON t.key = s.step_key"
            " WHERE t.status = 'done' ORDER BY s.source, s.test_set, s.model, s.image"
        )
        return [dict(r) for r in rows]

    def integrity_ok(self) -> bool:
        return self._read("PRAGMA integrity_check")[0][0] == "ok"


def _number(value: Any) -> float | None:
    """CSV cells arrive as text; an empty cell or NaN is a missing value."""
    if value is None or value == "":
        return None
    number = float(value)
    return None if number != number else number


def open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection for reports, which must never change a run.

    Raises LedgerError if the file is not an intact SQLite database.
    """
    check_ledger(path)
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    conn.text_factory = _text_factory(Path(path))
    return conn


def _text_factory(path: Path) -> Callable[[bytes], str]:
    # SQLite's page checks do not cover the bytes of a text value: a flipped bit there would
    # otherwise surface as a bare UnicodeDecodeError from whichever query read it.
    def decode(data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _damaged(path, f"text that is not UTF-8: {error.reason}") from None

    return decode


def check_ledger(path: Path) -> None:
    """Raise LedgerError unless `path` is absent or an intact SQLite database; never writes.

    `PRAGMA quick_check` reads every page, so a file cut short or overwritten is caught here
    rather than by whichever query first touches a bad page.
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_file():
        raise _damaged(path, "not a file")
    # A read-only connection to a WAL database leaves -wal and -shm files behind; on a damaged
    # ledger, take away the ones made here so that a refused file is left exactly as it was.
    sidecars = [path.with_name(path.name + s) for s in ("-wal", "-shm")]
    made = [p for p in sidecars if not p.exists()]
    problem: str | None = None
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
        if [tuple(r) for r in rows] != [("ok",)]:
            problem = "; ".join(str(r[0]) for r in rows[:3])
    except sqlite3.DatabaseError as error:
        problem = str(error)
    except UnicodeDecodeError as error:  # a message quoting damaged bytes (a schema name)
        problem = f"text that is not UTF-8: {error.reason}"
    if problem is not None:
        for sidecar in made:
            if sidecar.exists() and (sidecar.name.endswith("-shm") or not sidecar.stat().st_size):
                sidecar.unlink()
        raise _damaged(path, problem)


def _damaged(path: Path, reason: str) -> LedgerError:
    # A full disk or a read-only folder is not damage: say so, instead of "restore a backup".
    failure = storage_error(sqlite3.OperationalError(reason), str(path))
    if failure is not None:
        return LedgerError(failure.message, failure.hint)
    return LedgerError(
        f"{path}: not a readable ledger ({reason})",
        f"restore it from a backup, or move it aside to redo every step of the run"
        f" (`mv {path} {path}.damaged`)",
    )
