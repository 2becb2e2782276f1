"""One predict job for several test sets: their inputs and masks combined into one folder each,
named `<test_set>--<name>.png`, and the job's outputs split back into one folder per set under
the sets' own names.

The contract's predict job reads one inputs folder and one masks folder and writes one PNG per
input under its name (contracts/README.md), so every existing image predicts a combined folder
as it predicts a single set. The combined files are hard links where the run folder and the data
share a filesystem, copies otherwise: a symlink would point out of a docker mount, where the
container cannot follow it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.data.atomic import atomic_dir
from harness.errors import ConfigError

SEPARATOR = "--"


@dataclass(frozen=True)
class Combined:
    """The folders one predict job reads, and whose each of its file names is.

    names: file name in the job → (test set, the set's own file name)."""

    inputs: Path
    masks: Path
    names: dict[str, tuple[str, str]]

    @property
    def images(self) -> int:
        return len(self.names)

    @property
    def sets(self) -> list[str]:
        return list(dict.fromkeys(test_set for test_set, _ in self.names.values()))


def combine(sets: dict[str, Path], masks: Path, into: Path) -> Combined:
    """The job's folders for the masked inputs of `sets` (test set → its inputs folder) and the
    test masks (`masks`, shared by all sets: image i pairs with mask i).

    One set is predicted from its own folders, as before batching, so that its job (and its
    file names) are exactly those of a run before it; several get `into`/inputs and
    `into`/masks, made under a temporary name and renamed into place, or reused where `into`
    is already there (a rerun's: the same sets give the same files)."""
    if len(sets) == 1:
        [(test_set, inputs)] = sets.items()
        names = {p.name: (test_set, p.name) for p in sorted(inputs.glob("*.png"))}
        return Combined(inputs, masks, names)
    names = {}
    for test_set, inputs in sets.items():
        for image in sorted(inputs.glob("*.png")):
            joined = f"{test_set}{SEPARATOR}{image.name}"
            if joined in names:
                other = "/".join(names[joined])
                raise ConfigError(
                    f"{inputs / image.name}: its combined name {joined} is also {other}'s",
                    f"rename a test set so that no set's name is another's plus {SEPARATOR!r}",
                )
            names[joined] = (test_set, image.name)
    if not into.is_dir():
        with atomic_dir(into) as tmp:
            (tmp / "inputs").mkdir()
            (tmp / "masks").mkdir()
            for joined, (test_set, name) in names.items():
                link_or_copy(sets[test_set] / name, tmp / "inputs" / joined)
                link_or_copy(masks / name, tmp / "masks" / joined)
    return Combined(into / "inputs", into / "masks", names)


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link to `source` at `target`, or a copy where no link can be made (another
    filesystem, or one without hard links)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def split(outputs: Path, combined: Combined, into: Path) -> dict[str, Path]:
    """Move the job's outputs to `into`/<test_set>/<own name> and return each set's folder;
    a file named for no input stays in `outputs` (`leftovers`). With one set, the outputs
    folder is that set's folder."""
    if len(combined.sets) == 1:
        return {combined.sets[0]: outputs}
    folders = {test_set: into / test_set for test_set in combined.sets}
    for folder in folders.values():
        folder.mkdir(parents=True)
    present = sorted(p.name for p in outputs.iterdir()) if outputs.is_dir() else []
    for joined in present:
        owner = combined.names.get(joined)
        if owner is not None:
            test_set, name = owner
            os.rename(outputs / joined, folders[test_set] / name)
    return folders


def leftovers(outputs: Path, combined: Combined) -> list[Path]:
    """What a job wrote besides its predictions (after `split`; a single set's outputs are
    checked as a whole by check_predictions)."""
    if len(combined.sets) == 1 or not outputs.is_dir():
        return []
    return sorted(outputs.iterdir())
