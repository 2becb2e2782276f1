"""One exception tree for the harness; the CLI turns these into one-line errors with a hint.

Domain code raises these and never prints or exits; `harness.cli.HarnessGroup` translates them.
"""

from __future__ import annotations


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
