"""Why a `docker build` failed, in words: the step that failed (from the Dockerfile's own comment
above it, not the cut command), the cause BuildKit printed, and what to do about it.

BuildKit's plain progress names the failing step on a line ` > [2/7] RUN ...:` (or
` > [internal] load metadata for IMAGE:` when the base cannot be had); its output lines carry
the step's number (`#12 3.1 URLError: ...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BASE_HINT = (
    "build the base here with `bash images/base/build.sh --torch cuda` (GPU host) or "
    "`--torch cpu` (CPU/offline), or point --base-image / $INPAINT_BENCH_BASE_IMAGE at a base "
    "this engine has"
)
WEIGHTS_HINT = (
    "the loss-network weights cannot be downloaded here: build on a connected host, or build "
    "with BAKE_WEIGHTS=0 (--build-arg BAKE_WEIGHTS=0 or $INPAINT_BENCH_BUILD_ARGS) and run with "
    "INPAINT_RANDOM_LOSS_WEIGHTS=1 (plumbing only: every output then says so)"
)
UPSTREAM_HINT = (
    "pass a checkout of the authors' code at the manifest's commit: --upstream-src MODEL=PATH "
    "or $INPAINT_UPSTREAM_<MODEL>"
)
PIP_HINT = (
    "pip could not install a package: check that pip's index is reachable from the build and, "
    "behind a TLS-intercepting proxy, that $PIP_CERT names its CA bundle"
)
_STEP = re.compile(r"^ > (\[[^\]]*\]) (.*?):?$")
_CAUSE = re.compile(r"error|denied|not found|no such|refused|invalid|unable|cannot|failed", re.I)


@dataclass(frozen=True)
class BuildFailure:
    step: str  # the failing step, in words
    cause: str  # the most telling error line BuildKit printed for it
    hint: str


def explain(log: str, dockerfile: Path | None) -> BuildFailure:
    step_line = next((m for m in (_STEP.match(ln) for ln in reversed(log.splitlines())) if m), None)
    if step_line is None:
        last = next((ln for ln in reversed(log.splitlines()) if ln.strip()), "")
        return BuildFailure("the build", last.strip()[:300], "see the build log")
    tag, text = step_line.group(1), step_line.group(2)
    cause = _cause(log, text) or _final_error(log)
    if tag == "[internal]" and text.startswith("load metadata for "):
        image = text.removeprefix("load metadata for ").removeprefix("docker.io/")
        return BuildFailure(f"getting the base image {image}", cause, BASE_HINT)
    words = _comment_above(dockerfile, text) if dockerfile else None
    words = words or _instruction_words(text)
    if "inpaint_weights.py bake" in text or "invalid hash value" in cause:
        hint = WEIGHTS_HINT
        if "invalid hash value" in cause:
            hint = "the download is not the pinned file (sha256 differs): " + WEIGHTS_HINT
    elif "upstream/" in text and text.startswith("COPY"):
        hint = UPSTREAM_HINT
    elif "pip install" in text:
        hint = PIP_HINT
    else:
        hint = "see the build log"
    return BuildFailure(words, cause, hint)


def _step_number(log: str, text: str) -> str | None:
    """The `#N` of the step whose header line shows `text` (BuildKit's own numbering)."""
    head = text[:60]
    for line in log.splitlines():
        match = re.match(r"^(#\d+) \[[^\]]*\] (.*)$", line)
        if match and match.group(2).startswith(head):
            return match.group(1)
    return None


def _cause(log: str, text: str) -> str:
    number = _step_number(log, text)
    if number is None:
        return ""
    lines = [ln[len(number) :].strip() for ln in log.splitlines() if ln.startswith(number + " ")]
    # Drop the timestamp BuildKit puts before a step's own output ("12.345 URLError: ...").
    lines = [re.sub(r"^\d+\.\d+ ", "", ln) for ln in lines]
    telling = [
        ln
        for ln in lines
        if _CAUSE.search(ln) and not ln.startswith(("ERROR: executor failed", "sha256:"))
    ]
    return telling[-1][:300] if telling else ""


def _final_error(log: str) -> str:
    last = next((ln for ln in reversed(log.splitlines()) if ln.strip()), "")
    return re.sub(r"^failed to solve with frontend dockerfile.v0: ", "", last.strip())[:300]


def _norm(text: str) -> str:
    return " ".join(text.replace("\\\n", " ").split())


def _instructions(lines: list[str]) -> list[tuple[int, str]]:
    """(index of its first line, its whole text) for each instruction of a Dockerfile."""
    found, index = [], 0
    while index < len(lines):
        line = lines[index]
        if not line.strip() or line.lstrip().startswith("#"):
            index += 1
            continue
        start, parts = index, [line.rstrip().removesuffix("\\")]
        while lines[index].rstrip().endswith("\\") and index + 1 < len(lines):
            index += 1
            parts.append(lines[index].rstrip().removesuffix("\\"))
        found.append((start, _norm(" ".join(parts))))
        index += 1
    return found


def _comment_above(dockerfile: Path, text: str) -> str | None:
    """The first sentence of the comment block right above the instruction `text` shows."""
    try:
        lines = dockerfile.read_text().splitlines()
    except OSError:
        return None
    wanted = _norm(text)
    for start, whole in _instructions(lines):
        if not (whole.startswith(wanted[:80]) or wanted.startswith(whole[:80])):
            continue
        # The comment that heads the instruction's paragraph (instructions such as ARG and
        # ENV may stand between it and the step).
        comment: list[str] = []
        for above in reversed(lines[:start]):
            if not above.strip() or (comment and not above.startswith("#")):
                break
            if above.startswith("#"):
                comment.insert(0, above.lstrip("# ").strip())
        sentence = " ".join(comment).split(". ")[0].split(" (")[0].rstrip(".:")
        return sentence[:1].lower() + sentence[1:] if sentence else None
    return None


def _instruction_words(text: str) -> str:
    keyword = text.split(" ", 1)[0]
    return {
        "COPY": "copying files into the image",
        "RUN": "a RUN step",
        "FROM": "getting the base image",
    }.get(keyword, f"the {keyword} step")
