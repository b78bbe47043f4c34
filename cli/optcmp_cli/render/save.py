"""Figures written to files: the image formats and one atomic save.

Dependency rule: the standard library, optcmp_data and `_common` at module level (the `plot` command
checks its `--out` before anything is drawn); matplotlib is loaded by `save_figure`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from optcmp_cli._common import check_out_file
from optcmp_data import ConfigError, atomic_write, os_error

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["IMAGE_FORMATS", "check_image_out", "image_format", "save_figure"]

#: The image format of each file suffix a figure may be written to.
IMAGE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
#: How a file of each image format begins (SVG: its first kilobyte holds "<svg").
_SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


def image_format(path: Path) -> str:
    """The image format `path`'s suffix names; ConfigError for another suffix."""
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"--out {path}: unknown image format {path.suffix or '(no suffix)'!r}; use .png, "
            ".svg or .pdf"
        )
    return fmt


def check_image_out(path: Path) -> None:
    """Before any work: `path` names a new file or an image of its suffix's format to
    replace, never another file (a typo must not overwrite someone's data)."""
    fmt = image_format(path)
    check_out_file(path)
    if not path.exists():
        return  # new, or a dangling symlink, which the rename replaces
    if not path.is_file():
        raise ConfigError(f"--out {path}: exists and is not a regular file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
    except OSError as err:
        raise ConfigError(f"--out {path}: cannot read ({err.strerror})") from None
    ok = b"<svg" in head if fmt == "svg" else head.startswith(_SIGNATURES[fmt])
    if not ok:
        raise ConfigError(
            f"--out {path}: exists and is not a {fmt.upper()} image; refusing to overwrite it"
        )


def save_figure(fig: Figure, path: Path) -> Path:
    """Write `fig` as PNG, SVG or PDF (by `path`'s suffix) atomically, finished in the
    figures' style (`style.finish`); returns `path`. Reproducible: no date in SVG or PDF,
    fixed SVG ids.

    Raises ConfigError for another suffix.
    """
    from optcmp_cli.render.style import figure_style, finish

    fmt = image_format(path)
    finish(fig)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise os_error(path.parent, err) from None
    # SVG records a creation date by default; leaving it out keeps the file reproducible.
    metadata: dict[str, Any] = (
        {"Date": None} if fmt == "svg" else {"CreationDate": None} if fmt == "pdf" else {}
    )

    def draw(tmp: Path) -> None:
        with figure_style(), tmp.open("wb") as handle:
            fig.savefig(handle, format=fmt, dpi=150, metadata=metadata)

    atomic_write(path, draw)
    return path
