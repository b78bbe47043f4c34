"""The report's Markdown as one self-contained HTML page: figures embedded as base64 data
URIs, a table of contents from the `##` headings, every piece of text HTML-escaped.

Dependency rule: the standard library only.

The converter understands exactly the Markdown subset `_report` writes: `#`/`##`
headings, paragraphs, `- ` lists, pipe tables (with `\\|` inside cells), images on their
own line, and inline `code`, **bold**, _italic_ and backslash escapes. Anything else is
shown as text. Labels from archives reach this page only through `html.escape`, so a
label such as `<script>` is shown, never run.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

__all__ = ["to_html"]

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)$")
_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});")
_MIME = {".png": "image/png", ".svg": "image/svg+xml"}
_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
  padding: 0 1em; color: #1d1d1d; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd;
  padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #d0d0d0; padding: 3px 7px; text-align: left;
  vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
code { background: #f2f2f2; padding: 0 3px; border-radius: 3px; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: .5em 0; }
nav { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .5em 1.2em;
  margin-bottom: 1.5em; } nav ol { margin: .3em 0; padding-left: 1.4em; }
.findings { background: #f3f8ff; border-left: 4px solid #4a78b5; padding: .2em 1em; }
"""


def _inline(text: str) -> str:
    """Escaped HTML of one line of the Markdown subset."""
    out: list[str] = []
    i = 0
    bold = italic = star = False
    while i < len(text):
        ch = text[i]
        entity = _ENTITY.match(text, i)
        if entity:
            # Markdown escaping (`escape.md`) writes <, >, & and " as entities: keep them.
            out.append(entity.group(0))
            i = entity.end()
        elif ch == "\\" and i + 1 < len(text):
            out.append(html.escape(text[i + 1]))
            i += 2
        elif ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                out.append("`")
                i += 1
            else:
                out.append(f"<code>{html.escape(text[i + 1 : end])}</code>")
                i = end + 1
        elif text.startswith("**", i):
            out.append("</strong>" if bold else "<strong>")
            bold = not bold
            i += 2
        elif ch == "*" and (star or "*" in text[i + 1 :]):
            out.append("</em>" if star else "<em>")
            star = not star
            i += 1
        elif ch == "_" and (italic or i == 0 or not text[i - 1].isalnum()):
            # An underscore opens emphasis only at a word start; inside a word it is text.
            closes = italic and (i + 1 == len(text) or not text[i + 1].isalnum())
            if italic and closes:
                out.append("</em>")
                italic = False
            elif not italic and "_" in text[i + 1 :]:
                out.append("<em>")
                italic = True
            else:
                out.append("_")
            i += 1
        else:
            out.append(html.escape(ch))
            i += 1
    if italic or star:
        out.append("</em>")
    if bold:
        out.append("</strong>")
    return "".join(out)


def _cells(row: str) -> list[str]:
    body = row.strip()[1:-1] if row.strip().startswith("|") else row.strip()
    cells: list[str] = []
    current = ""
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            current += body[i : i + 2]
            i += 2
            continue
        if body[i] == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += body[i]
        i += 1
    cells.append(current.strip())
    return cells


def _image(alt: str, src: str, base: Path) -> str:
    path = base / src
    mime = _MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return f"<p><em>{html.escape(alt)} (figure {html.escape(src)} not found)</em></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:{mime};base64,{data}"></figure>'


def _anchor(index: int) -> str:
    return f"s{index}"


def to_html(markdown: str, *, title: str, base: Path) -> str:
    """The page for `markdown` (images resolved against `base`)."""
    lines = markdown.splitlines()
    body: list[str] = []
    toc: list[tuple[str, str]] = []
    para: list[str] = []
    in_findings = False

    def flush() -> None:
        if para:
            body.append("<p>" + " ".join(_inline(p) for p in para) + "</p>")
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            flush()
            i += 1
            continue
        if stripped.startswith("# "):
            flush()
            body.append(f"<h1>{_inline(stripped[2:])}</h1>")
            body.append("<!--toc-->")
        elif stripped.startswith("## "):
            flush()
            if in_findings:
                body.append("</div>")
                in_findings = False
            anchor = _anchor(len(toc))
            heading = stripped[3:]
            toc.append((anchor, heading))
            if heading == "Findings":
                body.append('<div class="findings">')
                in_findings = True
            body.append(f'<h2 id="{anchor}">{_inline(heading)}</h2>')
        elif (m := _IMAGE.match(stripped)) is not None:
            flush()
            body.append(_image(m["alt"], m["src"], base))
        elif stripped.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(lines[i])
                i += 1
            head, rest = _cells(rows[0]), [r for r in rows[1:] if not set(r) <= set("|-: ")]
            table = ["<table><thead><tr>"]
            table += [f"<th>{_inline(c)}</th>" for c in head]
            table.append("</tr></thead><tbody>")
            for r in rest:
                table.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(r)))
                table.append("</tr>")
            table.append("</tbody></table>")
            body.append("".join(table))
            continue
        elif stripped.startswith("- "):
            flush()
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
            continue
        else:
            para.append(stripped)
        i += 1
    flush()
    if in_findings:
        body.append("</div>")
    nav = (
        "<nav><strong>Contents</strong><ol>"
        + "".join(f'<li><a href="#{a}">{_inline(h)}</a></li>' for a, h in toc)
        + "</ol></nav>"
    )
    page = "\n".join(body).replace("<!--toc-->", nav, 1)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{page}\n</body></html>\n"
    )
