"""report.html in a real headless browser: every table and every figure is in the rendered DOM,
and every figure is an embedded PNG (the page needs no other file).

Needs Debian's chromium (CI: `apt-get update && apt-get install -y chromium`); skipped without.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from reportfixture import BuiltReport, shared_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (as root: apt-get update && apt-get install -y chromium)",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltReport:
    return shared_report(tmp_path_factory)


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


class Dom(HTMLParser):
    """Collects tables (with their captions) and img sources from the serialised DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.tables = 0
        self.captions: list[str] = []
        self.images: list[str] = []
        self._caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables += 1
        elif tag == "caption":
            self._caption = []
        elif tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption" and self._caption is not None:
            self.captions.append("".join(self._caption).strip())
            self._caption = None

    def handle_data(self, data: str) -> None:
        if self._caption is not None:
            self._caption.append(data)


@pytest.fixture(scope="module")
def dom(built: BuiltReport, tmp_path_factory: pytest.TempPathFactory) -> Dom:
    page = (built.report / "report.html").as_uri()
    result = chromium(["--dump-dom", page], tmp_path_factory.mktemp("chromium-dom"))
    parsed = Dom()
    parsed.feed(result.stdout)
    return parsed


def test_every_table_is_rendered(built: BuiltReport, dom: Dom) -> None:
    # Each rendered table is also written as LaTeX, so the .tex files count the tables.
    expected = len(list((built.report / "tables").glob("*.tex")))
    assert dom.tables == expected > 0
    assert sum(c.startswith("Table 1: models trained on place2.") for c in dom.captions) == 1
    assert sum(c.startswith("Table 2: models trained on celeba.") for c in dom.captions) == 1


def test_every_figure_is_an_embedded_png(built: BuiltReport, dom: Dom) -> None:
    files = sorted((built.report / "figures").glob("*.png"))
    assert {p.stem.split("_")[0] for p in files} == {"area", "curves", "grid", "worst"}
    prefix = "data:image/png;base64,"
    assert all(src.startswith(prefix) for src in dom.images), "an image is not a data: URI"
    embedded = []
    for src in dom.images:
        data = base64.b64decode(src.removeprefix(prefix), validate=True)
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        embedded.append(hashlib.sha256(data).hexdigest())
    on_disk = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    assert sorted(embedded) == sorted(on_disk)


def test_page_screenshot(built: BuiltReport, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    page = (built.report / "report.html").as_uri()
    chromium(
        ["--hide-scrollbars", "--window-size=1280,2400", f"--screenshot={shot}", page],
        tmp_path / "profile",
    )
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        # Not a blank page: the top of the report has dark text on white.
        assert image.convert("L").getextrema()[0] < 64
