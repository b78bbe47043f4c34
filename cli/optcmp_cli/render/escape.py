"""Text from files other people wrote, made safe for each medium it reaches.

Dependency rule: the standard library and rich.

Labels, attributes and folder names in an archive are data, never markup. Every such
string passes through exactly one of these helpers on its way out:

- `term`: a rich console or table (rich markup escaped, control characters visible);
- `figure`: matplotlib text (control characters but line breaks visible; the figure style
  `render.style.STYLE` also turns mathtext off, so `$` is always a dollar sign);
- `md`: Markdown (link, image, emphasis and code syntax escaped, raw HTML as entities);
- `html`: HTML text or attribute values (`html.escape`).

All of them first apply `visible`: control and other invisible format characters (ANSI
escape sequences, bidi overrides, zero-width characters, newlines) become ``\\xNN`` /
``\\uNNNN``, so two labels that differ only in such characters never look the same.
"""

from __future__ import annotations

import html as _html
import re
from typing import Any, Final

from rich.markup import escape as _rich_escape

from optcmp_data import visible

__all__ = ["figure", "html", "md", "term", "visible"]

# ASCII punctuation that Markdown (CommonMark + GFM tables/strikethrough) gives a meaning
# inline: with brackets escaped no link or image can form, so parentheses stay; an
# underscore inside a word (learning_rate) is never emphasis and stays readable.
_MD_SPECIAL: Final = re.compile(r"([\\`*\[\]#!|~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")
_MD_ENTITIES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def term(value: Any) -> str:
    """For a rich console or table cell: shown literally, never read as markup."""
    return _rich_escape(visible(value))


def figure(value: Any) -> str:
    """For matplotlib text drawn in the `render.style` style (mathtext off); line breaks stay
    (figure titles are composed of several lines, and a break cannot hide anything)."""
    return visible(value, keep="\n")


def md(value: Any) -> str:
    """For Markdown text or a table cell: no link, image, emphasis, code or raw HTML."""
    text = _MD_SPECIAL.sub(r"\\\1", visible(value))
    return "".join(_MD_ENTITIES.get(c, c) for c in text)


def html(value: Any) -> str:
    """For HTML text or a quoted attribute value."""
    return _html.escape(visible(value), quote=True)
