"""The report as a document: Markdown (pictures linked as files) and a self-contained HTML page
(pictures embedded as data: URIs, so the one file can be mailed or attached as it is)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #1b1b1b; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0 1.6em; font-size: 13px; }
caption { caption-side: top; text-align: left; font-style: italic; color: #444;
          padding-bottom: .4em; max-width: 70em; }
th, td { padding: .25em .6em; border-bottom: 1px solid #eee; text-align: left;
         vertical-align: top; }
thead th { border-bottom: 2px solid #333; } tr.group > * { border-top: 1px solid #999; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.best strong { color: #000; } td.na { color: #888; text-align: right; }
span.ci, span.n { color: #777; font-size: 11px; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto;
         border: 1px solid #eee; }
figcaption { font-style: italic; color: #444; font-size: 13px; }
p.note { background: #fff8e0; border-left: 3px solid #e0b000; padding: .4em .8em; }
"""


@dataclass
class Document:
    """Markdown and HTML built side by side, section by section."""

    title: str
    markdown: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)

    def heading(self, level: int, text: str, anchor: str = "") -> None:
        self.markdown.append(f"{'#' * level} {text}\n")
        ident = f' id="{html.escape(anchor)}"' if anchor else ""
        self.html.append(f"<h{level}{ident}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, note: bool = False) -> None:
        self.markdown.append(f"> {text}\n" if note else f"{text}\n")
        css = ' class="note"' if note else ""
        self.html.append(f"<p{css}>{html.escape(text)}</p>")

    def table(self, markdown: str, html_table: str) -> None:
        self.markdown.append(markdown)
        self.html.append(html_table)

    def figure(self, link: str, png: bytes, caption: str) -> None:
        """Add a PNG: linked by relative path in Markdown, embedded as a data: URI in HTML."""
        self.markdown.append(f"![{caption}]({link})\n\n*{caption}*\n")
        data = base64.b64encode(png).decode("ascii")
        self.html.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def render_markdown(self) -> str:
        return f"# {self.title}\n\n" + "\n".join(self.markdown)

    def render_html(self) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>\n"
            + "\n".join(self.html)
            + "\n</body></html>\n"
        )
