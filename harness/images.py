"""Model image folders (`images/<name>/`): manifest, identity and where they are.

A folder's identity for the local runner is the sha256 of its files and of the SDK it imports;
the docker runner records the built image's digest instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.contract import validate_manifest
from harness.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SDK_DIR = REPO / "contracts" / "sdk"


def _tree_digest(paths: list[Path], base: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(base)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class ImageFolder:
    path: Path

    @classmethod
    def at(cls, ref: str | Path, base: Path = REPO) -> ImageFolder:
        """`images/gatedconv` (relative to `base`) or an absolute folder holding manifest.json."""
        path = Path(ref)
        if not path.is_absolute():
            path = base / path
        if not (path / "manifest.json").is_file():
            raise ConfigError(
                f"{path}: no manifest.json: not a model image folder",
                "point models.<name>.image in benchmark.yaml at an images/<name> folder",
            )
        return cls(path.resolve())

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @cached_property
    def manifest(self) -> dict[str, Any]:
        where = str(self.path / "manifest.json")
        try:
            doc = json.loads((self.path / "manifest.json").read_text())
        except ValueError as error:
            raise ConfigError(f"{where}: invalid JSON: {error}") from None
        return validate_manifest(doc, where)

    @cached_property
    def digest(self) -> str:
        """sha256 over the folder's files and the SDK: changes whenever the code does."""
        files = [p for p in self.path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        sdk = list(SDK_DIR.glob("*.py"))
        both = _tree_digest(files, self.path) + _tree_digest(sdk, SDK_DIR)
        return "sha256:" + hashlib.sha256(both.encode()).hexdigest()
