"""benchmark.yaml: load, validate against its schema, and resolve one profile into plain records.

Every error names the file and the YAML path of the field (`models.aotgan.batch_size`).
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.schemas import check, load_schema

DEFAULT_CONFIG = Path("benchmark.yaml")
_DURATION = re.compile(r"^(?=\d)(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_SIZE_FACTORS = {"k": 1024, "m": 1024**2, "g": 1024**3}
_YAML_HINT = "fix the syntax there (indentation, an unclosed bracket or quote, a missing colon)"
# A benchmark.yaml expands to a few hundred nodes; aliases could make it billions ("billion
# laughs"), which schema validation would walk for minutes. Counted on the composed node graph,
# where an alias is one shared node, so the count itself never expands anything.
MAX_YAML_NODES = 100_000
# Budgets and caps beyond 30 days are typos (a unit or digits too many), not experiments.
MAX_DURATION_S = 30 * 24 * 3600.0


def parse_duration(text: str) -> float:
    """`"1h30m"` → 5400.0 seconds. Raises ValueError on anything else."""
    match = _DURATION.match(text)
    if not match or not text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 45s, 30m, 2h, 1h30m)")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def parse_size(text: str) -> int:
    """`"24g"` → bytes."""
    return int(text[:-1]) * _SIZE_FACTORS[text[-1]]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    image: str
    batch_size: int
    train_budget_s: float
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Runtime:
    memory_bytes: int = parse_size("24g")
    shm_bytes: int = parse_size("8g")
    pids_limit: int = 1024
    setup_cap_s: float = 1800.0
    grace_s: float = 60.0
    sandbox_relaxations: tuple[str, ...] = ()
    # None: max(300 s, 5 s per test image), generous for any model that is not stuck
    predict_cap_s: float | None = None
    tmp_bytes: int = parse_size("4g")
    # Several jobs side by side: one per GPU index, or `slots` on the CPU (docs/running.md)
    gpus: tuple[int, ...] = ()
    slots: int = 1

    def predict_cap(self, images: int, sets: int = 1) -> float:
        """The run-time cap of one predict job over `images` test images of `sets` test sets: a
        `predict_cap` set in benchmark.yaml is per test set (a job predicted one set before
        jobs were batched), so a job over several gets it once per set."""
        if self.predict_cap_s is not None:
            return self.predict_cap_s * sets
        return max(300.0, 5.0 * images)


@dataclass(frozen=True)
class MaskCounts:
    train: int
    val: int
    test: int
    hole_range: tuple[float, float] = (0.01, 0.6)


@dataclass(frozen=True)
class Profile:
    """One resolved experiment: what `run` trains, on which data, for how long."""

    name: str
    data_root: Path
    image_size: int
    seed: int
    metrics: tuple[str, ...]
    models: tuple[ModelEntry, ...]
    sources: dict[str, tuple[int, int]]
    masks: MaskCounts
    test_sets: dict[str, int]
    runtime: Runtime
    # Training seeds (`seeds:`); empty means the one top-level `seed`, so that a one-seed profile
    # builds the same jobs, and ledger keys, as before seeds existed.
    seeds: tuple[int, ...] = ()
    # Training seconds at which snapshots are kept and scored (`snapshots:`), ascending.
    snapshots_s: tuple[float, ...] = ()

    @property
    def training_seeds(self) -> tuple[int, ...]:
        return self.seeds or (self.seed,)

    def snapshots_for(self, model: ModelEntry) -> tuple[float, ...]:
        """The snapshots inside `model`'s budget: one at or past it is the final checkpoint."""
        return tuple(s for s in self.snapshots_s if s < model.train_budget_s)


@dataclass(frozen=True)
class Benchmark:
    path: Path
    document: dict[str, Any]

    @property
    def profile_names(self) -> list[str]:
        return list(self.document["profiles"])

    def profile(self, name: str) -> Profile:
        """Resolve profile `name`, with `data_root` relative to the YAML file's folder."""
        return _resolve_profile(self, name)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys, which PyYAML would silently overwrite."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    """Construct a mapping; explicit duplicate keys are refused, merge keys (`<<: *base`) are
    expanded as YAML 1.1 says: explicit keys win over merged ones, earlier merges over later."""
    seen: dict[Any, Any] = {}
    merged: list[yaml.Node] = []
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            merged.append(value_node)
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise ConfigError(f"{loader.name}:{line}: duplicate key {key!r}", "keep one of them")
        seen[key] = loader.construct_object(value_node, deep=True)
    inherited: dict[Any, Any] = {}
    for value_node in merged:
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                line = source.start_mark.line + 1
                raise ConfigError(
                    f"{loader.name}:{line}: `<<` merges a mapping or a list of mappings, "
                    f"got {type(source).__name__}",
                    "write `<<: *anchor` where `anchor` names a mapping (`base: &anchor {...}`)",
                )
            for key, value in _construct_mapping(loader, source).items():
                inherited.setdefault(key, value)
    return {**{k: v for k, v in inherited.items() if k not in seen}, **seen}


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Count the nodes `root` stands for once every alias is expanded, up to `limit` + 1.

    Each distinct node is counted once (memoized by identity), so a bomb of depth d costs O(d)
    here, not O(10^d). A node that contains itself (a recursive alias) counts as over the limit.
    """
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in visiting:
            return limit + 1
        visiting.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total = min(limit + 1, total + size(child))
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                total = min(limit + 1, total + size(key) + size(value))
        visiting.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root)


def read_yaml(path: Path) -> Any:
    """Parse YAML with duplicate keys refused; syntax errors name the file, line and column.

    Only a regular file is opened (a FIFO would block the open for ever), and a document whose
    aliases expand to more than MAX_YAML_NODES nodes is refused before it is built.
    """
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(
                f"{path}: not a regular file ({file_kind(mode)}): not opened",
                "pass --config the path of a YAML file",
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: file not found", "pass --config PATH or run from the repository root"
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text: bad byte at offset {error.start}", "save the file as UTF-8"
        ) from None
    except OSError as error:
        raise ConfigError(
            f"{path}: cannot read: {error.strerror or error}", "check that it is a readable file"
        ) from None
    loader: _UniqueKeyLoader | None = None
    try:
        loader = _UniqueKeyLoader(text)
        loader.name = str(path)
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise ConfigError(
                f"{path}: YAML aliases expand to more than {MAX_YAML_NODES:,} values "
                "(or refer to themselves): refused before expanding them",
                "write the values out, or use fewer nested aliases (*name)",
            )
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {error.problem}", _YAML_HINT) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}", _YAML_HINT) from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply", _YAML_HINT) from None
    finally:
        if loader is not None:
            loader.dispose()


def file_kind(mode: int) -> str:
    """Name the kind of a file that is not a regular one, from its `st_mode`."""
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def load_benchmark(path: Path = DEFAULT_CONFIG) -> Benchmark:
    """Read and validate benchmark.yaml, including the cross-references the schema cannot see."""
    document = read_yaml(path)
    check(
        document,
        load_schema("benchmark"),
        str(path),
        ConfigError,
        hint="see the comments in benchmark.yaml and harness/schemas/benchmark.schema.json",
    )
    problems: list[str] = []
    durations: list[str] = []
    models = document["models"]
    for pname, profile in document["profiles"].items():
        for i, model in enumerate(profile["models"]):
            if model not in models:
                problems.append(
                    f"profiles.{pname}.models[{i}]: unknown model {model!r}"
                    f" (defined: {', '.join(models)})"
                )
        for model in profile.get("model_overrides", {}):
            if model not in profile["models"]:
                problems.append(
                    f"profiles.{pname}.model_overrides.{model}: model not in this profile's models"
                )
        durations += _budget_problems(pname, profile)
        durations += _snapshot_problems(pname, profile)
        low, high = profile["masks"].get("hole_range", [0.01, 0.6])
        if not low < high:
            problems.append(
                f"profiles.{pname}.masks.hole_range: expected [low, high] with low < high,"
                f" got [{low}, {high}]"
            )
    runtime = document.get("runtime", {})
    for field_name in ("setup_cap", "grace", "predict_cap"):
        if field_name in runtime:
            durations += _duration_problems(
                f"runtime.{field_name}", runtime[field_name], zero_ok=field_name == "grace"
            )
    if problems:
        raise ConfigError(
            "\n".join(f"{path}: {p}" for p in problems),
            "define each model under `models:` and list it in the profile's `models`",
        )
    if durations:
        raise ConfigError(
            "\n".join(f"{path}: {p}" for p in durations),
            f"give a duration over 0 s and at most {MAX_DURATION_S / 86400:g} days "
            "(e.g. 45s, 30m, 2h; grace may be 0s), each snapshot time once",
        )
    return Benchmark(path=path, document=document)


def _budget_problems(pname: str, profile: dict[str, Any]) -> list[str]:
    """A train budget of 0 s ends every job at once; 10^20 h is a typo. Both are refused here,
    not in the first job file that carries them."""
    problems = _duration_problems(f"profiles.{pname}.train_budget", profile["train_budget"])
    for model, over in profile.get("model_overrides", {}).items():
        if "train_budget" in over:
            problems += _duration_problems(
                f"profiles.{pname}.model_overrides.{model}.train_budget", over["train_budget"]
            )
    return problems


def _snapshot_problems(pname: str, profile: dict[str, Any]) -> list[str]:
    """Snapshot times over 0 s, each once (`60m` and `1h` are the same time)."""
    problems: list[str] = []
    seen: dict[float, str] = {}
    for i, text in enumerate(profile.get("snapshots", [])):
        where = f"profiles.{pname}.snapshots[{i}]"
        problems += _duration_problems(where, text)
        seconds = parse_duration(text)
        if seconds in seen:
            problems.append(f"{where}: {text!r} is the same time as {seen[seconds]!r}")
        seen.setdefault(seconds, text)
    return problems


def _duration_problems(where: str, text: str, zero_ok: bool = False) -> list[str]:
    seconds = parse_duration(text)  # the schema's pattern has already matched it
    if seconds == 0 and not zero_ok:
        return [f"{where}: {text!r} is zero: a job would stop before it starts"]
    if seconds > MAX_DURATION_S:
        return [
            f"{where}: {text!r} is {seconds:.3g} s, over the limit of "
            f"{MAX_DURATION_S / 86400:g} days"
        ]
    return []


def _resolve_profile(bench: Benchmark, name: str) -> Profile:
    doc = bench.document
    if name not in doc["profiles"]:
        raise ConfigError(
            f"{bench.path}: profiles.{name}: no such profile",
            f"choose one of: {', '.join(doc['profiles'])}",
        )
    prof = doc["profiles"][name]
    budget = parse_duration(prof["train_budget"])
    overrides = prof.get("model_overrides", {})
    models = []
    for model_name in prof["models"]:
        base = doc["models"][model_name]
        over = overrides.get(model_name, {})
        models.append(
            ModelEntry(
                name=model_name,
                image=base["image"],
                batch_size=over.get("batch_size", base["batch_size"]),
                train_budget_s=parse_duration(over["train_budget"])
                if "train_budget" in over
                else budget,
                hyperparameters={
                    **base.get("hyperparameters", {}),
                    **over.get("hyperparameters", {}),
                },
            )
        )
    rt = doc.get("runtime", {})
    runtime = Runtime(
        memory_bytes=parse_size(rt.get("memory", "24g")),
        shm_bytes=parse_size(rt.get("shm_size", "8g")),
        pids_limit=rt.get("pids_limit", 1024),
        setup_cap_s=parse_duration(rt.get("setup_cap", "30m")),
        grace_s=parse_duration(rt.get("grace", "60s")),
        predict_cap_s=parse_duration(rt["predict_cap"]) if "predict_cap" in rt else None,
        tmp_bytes=parse_size(rt.get("tmp_size", "4g")),
        gpus=tuple(rt.get("gpus", ())),
        slots=rt.get("slots", 1),
        sandbox_relaxations=tuple(k for k, on in rt.get("sandbox", {}).items() if on),
    )
    masks = prof["masks"]
    low, high = masks.get("hole_range", [0.01, 0.6])
    data_root = Path(prof["data_root"])
    if not data_root.is_absolute():
        data_root = bench.path.parent / data_root
    return Profile(
        name=name,
        data_root=data_root,
        image_size=prof["image_size"],
        seed=doc["seed"],
        metrics=tuple(doc["metrics"]),
        models=tuple(models),
        sources={s: (c["train"], c["val"]) for s, c in prof["sources"].items()},
        masks=MaskCounts(masks["train"], masks["val"], masks["test"], (float(low), float(high))),
        test_sets=dict(prof["test_sets"]),
        runtime=runtime,
        seeds=tuple(prof["seeds"]) if "seeds" in prof else (),
        snapshots_s=tuple(sorted(parse_duration(s) for s in prof.get("snapshots", []))),
    )
