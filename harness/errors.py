"""One exception tree for the harness; the CLI turns these into one-line errors with a hint.

Domain code raises these and never prints or exits; `harness.cli.HarnessGroup` translates them.
"""

from __future__ import annotations

import errno
import sqlite3


class HarnessError(Exception):
    """A failure the user can act on: `message` says what and where, `hint` what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"


class ConfigError(HarnessError):
    """benchmark.yaml (or a profile in it) is malformed or inconsistent."""


class DataError(HarnessError):
    """A data tree, image or mask does not match what benchmark.yaml and the contract expect."""


class ContractViolation(HarnessError):
    """A manifest, job, event or output breaks contract v1."""


class LedgerError(HarnessError):
    """A run's ledger.sqlite cannot be opened or is damaged."""


class ContainerFailed(HarnessError):
    """A model or metrics container exited abnormally."""


class DockerUnavailable(HarnessError):
    """No Docker engine answers, or it lacks what a job asks for (e.g. the NVIDIA runtime)."""


# Failures of the machine rather than of the input: a read-only folder, a full disk. They can
# happen on any write, so the CLI translates them in one place instead of at every write.
_STORAGE_ERRORS = {
    errno.EROFS: ("read-only file system", "give a folder on a writable file system"),
    errno.EACCES: ("permission denied", "give a folder you can write to, or fix its permissions"),
    errno.EPERM: ("operation not permitted", "give a folder you can write to"),
    errno.ENOSPC: (
        "no space left on device",
        "free space on that file system (df -h) or use another folder, then rerun: a run "
        "resumes from its completed steps, and nothing half-written is kept",
    ),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota, then rerun"),
}
_SQLITE_ERRORS = {
    "database or disk is full": errno.ENOSPC,
    "attempt to write a readonly database": errno.EROFS,
    "unable to open database file": errno.EACCES,
}


def storage_error(error: BaseException, where: str | None = None) -> HarnessError | None:
    """A HarnessError for a read-only, forbidden or full file system (an OSError, or SQLite's
    own words for them), naming the file, else `where`; None for any other error."""
    if isinstance(error, sqlite3.OperationalError):
        code = next((c for text, c in _SQLITE_ERRORS.items() if text in str(error)), None)
        if code is None:
            return None
        what, hint = _STORAGE_ERRORS[code]
        return HarnessError(f"{where or 'the run ledger'}: SQLite: {error} ({what})", hint)
    if isinstance(error, OSError) and error.errno in _STORAGE_ERRORS:
        what, hint = _STORAGE_ERRORS[error.errno]
        places = [p for p in (where, error.filename) if p is not None] or ["writing a file"]
        return HarnessError(f"{': '.join(map(str, places))}: {what} ([Errno {error.errno}])", hint)
    return None
