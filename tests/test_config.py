"""benchmark.yaml: the shipped file reproduces the seed report; mistakes name their path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.config import load_benchmark, parse_duration, parse_size
from harness.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SEED_TEST_SETS = [
    "celeba_test",
    "FFHQ_test",
    "paris_test",
    "place2_church_indoor_test",
    "place2_church_outdoor_test",
    "Shunghaitech_test",
]


@pytest.fixture
def document() -> dict:
    return yaml.safe_load((REPO / "benchmark.yaml").read_text())


def write(tmp_path: Path, document: dict | str) -> Path:
    path = tmp_path / "benchmark.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def test_shipped_seed_profile_matches_the_seed_report() -> None:
    seed = load_benchmark(REPO / "benchmark.yaml").profile("seed")
    assert seed.image_size == 256
    assert seed.sources == {"place2": (1000, 500), "celeba": (1000, 500)}
    assert (seed.masks.train, seed.masks.val, seed.masks.test) == (1000, 500, 300)
    assert seed.masks.hole_range == (0.01, 0.6)
    assert seed.test_sets == dict.fromkeys(SEED_TEST_SETS, 300)
    assert {m.name: m.batch_size for m in seed.models} == {"madf": 4, "aotgan": 4, "tfill": 8}
    assert {m.train_budget_s for m in seed.models} == {7200.0}
    assert set(seed.metrics) >= {"psnr", "ssim", "lpips"}
    assert seed.data_root == REPO / "data" / "seed"


def test_sample_profile_applies_model_overrides() -> None:
    sample = load_benchmark(REPO / "benchmark.yaml").profile("sample")
    batch = {m.name: m.batch_size for m in sample.models}
    assert batch["madf"] == 2 and batch["tfill"] == 4 and batch["classical"] == 1
    assert len(sample.test_sets) >= 3 and len(sample.sources) >= 2


def test_wrong_type_names_the_yaml_path(tmp_path: Path, document: dict) -> None:
    document["models"]["aotgan"]["batch_size"] = "four"
    with pytest.raises(ConfigError) as raised:
        load_benchmark(write(tmp_path, document))
    assert 'models.aotgan.batch_size: expected integer, got "four"' in str(raised.value)
    assert str(tmp_path / "benchmark.yaml") in str(raised.value)


def test_unknown_key_is_rejected_by_name(tmp_path: Path, document: dict) -> None:
    document["profiles"]["seed"]["image_sise"] = 256
    with pytest.raises(
        ConfigError, match=r"profiles\.seed\.image_sise: unknown field 'image_sise'"
    ):
        load_benchmark(write(tmp_path, document))


def test_missing_required_field_is_named(tmp_path: Path, document: dict) -> None:
    del document["profiles"]["sample"]["test_sets"]
    with pytest.raises(
        ConfigError, match=r"profiles\.sample\.test_sets: required field is missing"
    ):
        load_benchmark(write(tmp_path, document))


def test_profile_naming_an_undefined_model(tmp_path: Path, document: dict) -> None:
    document["profiles"]["seed"]["models"].append("lama")
    with pytest.raises(ConfigError, match=r"profiles\.seed\.models\[3\]: unknown model 'lama'"):
        load_benchmark(write(tmp_path, document))


def test_bad_duration_and_hole_range(tmp_path: Path, document: dict) -> None:
    document["profiles"]["seed"]["train_budget"] = "two hours"
    with pytest.raises(ConfigError, match=r"profiles\.seed\.train_budget: expected a duration"):
        load_benchmark(write(tmp_path, document))
    document["profiles"]["seed"]["train_budget"] = "2h"
    document["profiles"]["seed"]["masks"]["hole_range"] = [0.6, 0.01]
    with pytest.raises(ConfigError, match=r"hole_range: expected \[low, high\] with low < high"):
        load_benchmark(write(tmp_path, document))


def test_duplicate_key_and_syntax_error_give_a_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"benchmark.yaml:2: duplicate key 'seed'"):
        load_benchmark(write(tmp_path, "seed: 0\nseed: 1\n"))
    with pytest.raises(ConfigError, match=r"benchmark.yaml:2:1: invalid YAML"):
        load_benchmark(write(tmp_path, "models: [madf\n"))


def test_missing_file_and_unknown_profile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_benchmark(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"profiles\.gpu: no such profile") as raised:
        load_benchmark(REPO / "benchmark.yaml").profile("gpu")
    assert "seed" in (raised.value.hint or "")


@pytest.mark.parametrize(
    ("text", "seconds"), [("45s", 45), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1m5s", 65)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "2", "1.5h", "2 h", "m30"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_size() -> None:
    assert parse_size("512m") == 512 * 2**20
    assert parse_size("24g") == 24 * 2**30


yaml_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(value=yaml_values)
def test_fuzzed_documents_fail_only_with_config_errors(tmp_path_factory, value) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "benchmark.yaml"
    path.write_text(yaml.safe_dump(value))
    with pytest.raises(ConfigError):
        load_benchmark(path)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_fuzzed_text_never_escapes_as_a_traceback(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "benchmark.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_benchmark(path)


@settings(max_examples=100, deadline=None)
@given(
    field=st.sampled_from(["seed", "metrics", "models", "runtime", "profiles"]),
    value=yaml_values,
)
def test_fuzzed_field_values_fail_only_with_config_errors(tmp_path_factory, field, value) -> None:
    document = yaml.safe_load((REPO / "benchmark.yaml").read_text())
    document[field] = value
    path = tmp_path_factory.mktemp("fuzz") / "benchmark.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        load_benchmark(path)
    except ConfigError as error:
        assert str(path) in str(error)


@pytest.mark.parametrize("text", ["?\n", "{null: 1, 3: 2}\n", "{true: [1], 1.5: x}\n"])
def test_non_string_keys_are_named_not_crashed_on(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="unknown field"):
        load_benchmark(write(tmp_path, text))


def test_a_benchmark_with_merge_keys_loads(tmp_path: Path, document: dict) -> None:
    # One model's entry anchored, another inheriting it and overriding batch_size: the
    # `<<: *base` a YAML user writes to share settings.
    text = (
        "models:\n"
        "  madf: &base {image: images/madf, batch_size: 4, hyperparameters: {lr: 0.001}}\n"
        "  aotgan:\n"
        "    <<: *base\n"
        "    image: images/aotgan\n"
    )
    rest = {k: v for k, v in document.items() if k != "models"}
    others = {k: v for k, v in document["models"].items() if k not in ("madf", "aotgan")}
    body = text + "".join(f"  {line}\n" for line in yaml.safe_dump(others).splitlines())
    path = write(tmp_path, body + yaml.safe_dump(rest, sort_keys=False))
    models = load_benchmark(path).document["models"]
    assert models["aotgan"] == {
        "image": "images/aotgan",
        "batch_size": 4,
        "hyperparameters": {"lr": 0.001},
    }
    assert models == yaml.safe_load(path.read_text())["models"]  # PyYAML's merge agrees


def test_merge_keys_resolve_like_pyyaml(tmp_path: Path) -> None:
    from harness.config import read_yaml

    text = (
        "base: &base {a: 1, b: 2}\n"
        "other: &other {b: 9, c: 3}\n"
        "one: {<<: *base, b: 5}\n"
        "many: {<<: [*base, *other], d: 4}\n"
    )
    path = tmp_path / "m.yaml"
    path.write_text(text)
    assert read_yaml(path) == yaml.safe_load(text)
    assert read_yaml(path)["one"] == {"a": 1, "b": 5}


def test_duplicate_explicit_keys_are_still_refused_beside_a_merge(tmp_path: Path) -> None:
    from harness.config import read_yaml

    path = tmp_path / "m.yaml"
    path.write_text("base: &base {a: 1}\none:\n  <<: *base\n  b: 1\n  b: 2\n")
    with pytest.raises(ConfigError, match="duplicate key 'b'"):
        read_yaml(path)


@pytest.mark.parametrize(
    ("budget", "fragment"),
    [("0s", "is zero"), ("0h0m", "is zero"), ("100000000000000000000h", "over the limit")],
)
def test_zero_and_absurd_budgets_are_refused(
    tmp_path: Path, document: dict, budget: str, fragment: str
) -> None:
    document["profiles"]["sample"]["train_budget"] = budget
    with pytest.raises(ConfigError) as raised:
        load_benchmark(write(tmp_path, document))
    assert "profiles.sample.train_budget" in str(raised.value)
    assert fragment in str(raised.value)


def test_seeds_and_snapshots_resolve_with_one_seed_and_none_by_default(
    tmp_path: Path, document: dict
) -> None:
    shipped = load_benchmark(REPO / "benchmark.yaml")
    seed = shipped.profile("seed")
    assert seed.training_seeds == (0,) and seed.seeds == ()
    assert seed.snapshots_s == (900.0, 1800.0, 3600.0, 7200.0)
    # the 2h snapshot is the final checkpoint of a 2h budget
    assert seed.snapshots_for(seed.models[0]) == (900.0, 1800.0, 3600.0)
    sample = shipped.profile("sample")
    assert (sample.training_seeds, sample.snapshots_s) == ((0,), ())

    document["profiles"]["sample"].update(seeds=[3, 1], snapshots=["20s", "10s", "1h"])
    sample = load_benchmark(write(tmp_path, document)).profile("sample")
    assert sample.training_seeds == (3, 1)
    assert sample.snapshots_s == (10.0, 20.0, 3600.0)
    assert sample.snapshots_for(sample.models[0]) == (10.0, 20.0)  # the budget is 30s


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("seeds", [], r"profiles\.sample\.seeds"),
        ("seeds", [1, 1], r"profiles\.sample\.seeds"),
        ("seeds", [-1], r"profiles\.sample\.seeds\[0\]"),
        ("snapshots", ["0s"], r"profiles\.sample\.snapshots\[0\]: '0s' is zero"),
        ("snapshots", ["60m", "1h"], r"snapshots\[1\]: '1h' is the same time as '60m'"),
        ("snapshots", ["10 min"], r"profiles\.sample\.snapshots\[0\]"),
    ],
)
def test_bad_seeds_and_snapshots_are_named(
    tmp_path: Path, document: dict, field: str, value: list, message: str
) -> None:
    document["profiles"]["sample"][field] = value
    with pytest.raises(ConfigError, match=message) as error:
        load_benchmark(write(tmp_path, document))
    assert str(tmp_path / "benchmark.yaml") in str(error.value)
