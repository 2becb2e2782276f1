"""A failed `docker build` is told in words: the failing step from the Dockerfile's own comment,
BuildKit's cause, and the fix (base image, weights switch, upstream override, pip's CA)."""

from __future__ import annotations

from pathlib import Path

from harness.build_errors import BASE_HINT, PIP_HINT, UPSTREAM_HINT, WEIGHTS_HINT, explain

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "tests" / "fixtures" / "build-logs"


def test_weights_that_cannot_be_downloaded_name_the_bake_step_and_the_switch() -> None:
    # A real BuildKit log: images/madf built offline with BAKE_WEIGHTS=1.
    log = (LOGS / "weights-offline.log").read_text()
    failure = explain(log, REPO / "images" / "madf" / "Dockerfile")
    assert failure.step == "bake the VGG16 loss network's weights"
    assert failure.cause.startswith("urllib.error.URLError: <urlopen error")
    assert failure.hint == WEIGHTS_HINT and "BAKE_WEIGHTS=0" in failure.hint


def test_a_base_image_the_engine_lacks_names_the_image_and_how_to_build_it() -> None:
    # A real BuildKit log: FROM a base that is neither in the engine nor pullable offline.
    failure = explain((LOGS / "base-missing.log").read_text(), None)
    assert failure.step == "getting the base image inpaint-bench/base:nope"
    assert "no such host" in failure.cause
    assert failure.hint == BASE_HINT and "images/base/build.sh" in failure.hint


def _log(step: str, output: list[str]) -> str:
    lines = [f"#9 [ 5/9] {step}", "#9 sha256:0123"]
    lines += [f"#9 {1.5 + i:.3f} {line}" for i, line in enumerate(output)]
    lines += ["#9 ERROR: executor failed running [/bin/sh -c x]: exit code: 1", "------"]
    lines += [
        f" > [ 5/9] {step}:",
        "------",
        "executor failed running [/bin/sh -c x]: exit code: 1",
    ]
    return "\n".join(lines) + "\n"


def test_a_missing_upstream_folder_points_at_the_override(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM base\n\n# Add the authors' code.\nCOPY upstream/ /inpaint/upstream/\n"
    )
    log = _log(
        "COPY upstream/ /inpaint/upstream/", ['failed to compute cache key: "/upstream" not found']
    )
    failure = explain(log, dockerfile)
    assert failure.step == "add the authors' code"
    assert failure.hint == UPSTREAM_HINT
    assert "not found" in failure.cause


def test_a_pip_failure_names_the_install_step_and_pips_ca(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM base\n# Install the model's own packages (usually nothing).\n"
        "RUN pip install \\\n    -r requirements.txt\n"
    )
    output = ["Collecting nosuchpackage", "ERROR: No matching distribution found for nosuchpackage"]
    failure = explain(_log("RUN pip install     -r requirements.txt", output), dockerfile)
    assert failure.step == "install the model's own packages"
    assert failure.cause == "ERROR: No matching distribution found for nosuchpackage"
    assert failure.hint == PIP_HINT


def test_a_step_without_a_comment_is_named_by_its_instruction(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM base\nRUN false\n")
    failure = explain(_log("RUN false", []), dockerfile)
    assert failure.step == "a RUN step" and failure.hint == "see the build log"
    assert failure.cause == "executor failed running [/bin/sh -c x]: exit code: 1"


def test_a_log_without_a_failing_step_gives_its_last_line() -> None:
    failure = explain("#1 [internal] load build definition\nerror: something broke\n", None)
    assert (failure.step, failure.cause) == ("the build", "error: something broke")
