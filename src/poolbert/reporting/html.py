"""The page: figures embedded as data URIs, tables, notes, CSS and the HTML document.

Everything the page shows is escaped here; the page has no script and loads nothing from the
network, so it opens offline (e.g. as an attachment).
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..files import atomic_dir, write_text
from ..version import __version__
from .figures._common import FigureSkipped, draw_or_skip

INDEX = "index.html"  # the page, in the report folder beside its PNGs

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:1.5em;color:#222;line-height:1.45}
h1{margin-bottom:0.2em} h2{border-bottom:2px solid #ddd;padding-bottom:0.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.92em}
th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:left}
th{background:#f2f2f2} td{font-variant-numeric:tabular-nums}
figure{margin:1.2em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:0.88em;color:#555}
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:0.5em 0.8em}
.meta{color:#666} pre{background:#f7f7f7;padding:0.8em;overflow-x:auto;font-size:0.85em}
nav a{margin-right:1em}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def table(headers: Sequence[str], rows: list[list[str]], table_id: str = "") -> str:
    ident = f' id="{esc(table_id)}"' if table_id else ""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def pre_json(data: Any) -> str:
    """A JSON document (a config) shown as it is, indented."""
    return f"<pre>{esc(json.dumps(data, indent=2, default=str))}</pre>"


def safe_name(name: str) -> str:
    """A head's name as a file name and an HTML id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "head"


def generated_line(source: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<p class="meta">Generated {esc(stamp)} by poolbert {esc(__version__)} from the saved '
            f"files only ({esc(source)}); nothing was retrained.</p>")


def html_document(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


@dataclass
class Page:
    """The report folder being written: figures go to `folder`, HTML fragments to `parts`."""

    folder: Path
    parts: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def figure(self, name: str, caption: str, draw: Callable[[Path], Any]) -> None:
        """Draw a figure with `draw(path)` and embed it, or a note saying why it is missing.

        `draw` returns the PNG's path, or (path, words) to end the caption with "Evaluator:
        words." (the importances name the evaluator that worked)."""
        path = self.folder / name
        try:
            result = draw_or_skip(draw, path)
        except FigureSkipped as exc:
            self.add(note(str(exc)))
            return
        extra = result[1] if isinstance(result, tuple) else None
        full_caption = caption + (f" Evaluator: {extra}." if extra else "")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.add(
            f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
            f'<figcaption>{esc(full_caption)} <a href="{esc(name)}">{esc(name)}</a></figcaption>'
            "</figure>"
        )


@contextlib.contextmanager
def report_page(folder: Path, title: str) -> Iterator[Page]:
    """A Page writing into a temporary sibling of `folder`; when the body succeeds, INDEX is
    written and the folder replaces an earlier `folder` in one rename (a failed run leaves the
    earlier report untouched)."""
    with atomic_dir(folder, overwrite=True) as tmp:
        page = Page(tmp)
        yield page
        write_text(tmp / INDEX, html_document(title, page.parts))
