"""Labels read from other people's files (folder names, attributes): no hidden characters.

Dependency rule: the standard library only.

`visible` writes every non-printable character (C0/C1 controls such as ESC, format
characters such as bidi overrides and zero-width spaces, line breaks) as a ``\\xNN`` /
``\\uNNNN`` escape, so two labels that differ only in such characters never look the same
and no terminal sequence hides in one. `import_label` is what importers apply to every
folder name that becomes a workload or optimizer label: Unicode NFC, then `visible`.
The CLI's per-medium escaping (optcmp_cli.render.escape) starts from the same `visible`.
"""

from __future__ import annotations

import unicodedata

__all__ = ["import_label", "visible"]


def _show(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object, *, keep: str = "") -> str:
    """`str(value)` with every non-printable character but those in `keep` escaped."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else _show(c) for c in text)


def import_label(raw: str) -> str:
    """A folder name as a label: NFC-normalised, hidden characters made visible."""
    return visible(unicodedata.normalize("NFC", raw))
