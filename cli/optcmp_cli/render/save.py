"""Figures written to files: the image formats and one atomic save.

Dependency rule: the standard library, optcmp_data and `_common` at module level (the `plot` command
checks its `--out` before anything is drawn); matplotlib is loaded by `save_figure`.
"""

from __future__ import annotations

import warnings
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
        # Constrained layout gives up, and matplotlib warns, where the titles and legend
        # leave the panels no height (a long title over one row of panels): the figure
        # then grows taller until they fit, its width kept. A figure that fits is drawn
        # once, as it is.
        for _ in range(_MAX_GROWTHS):
            with (
                figure_style(),
                warnings.catch_warnings(record=True) as caught,
                tmp.open("wb") as handle,
            ):
                warnings.simplefilter("always")
                fig.savefig(handle, format=fmt, dpi=150, metadata=metadata)
            collapsed = any(_COLLAPSED in str(w.message) for w in caught)
            if not collapsed or fig.get_figheight() > _MAX_HEIGHT:
                break
            fig.set_figheight(fig.get_figheight() * 1.25)
        for w in caught:  # the warnings of the last drawing, as they would have been
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    atomic_write(path, draw)
    return path


#: matplotlib's warning when constrained layout leaves the panels no room.
_COLLAPSED = "constrained_layout not applied"
#: How often, and up to what height (inches), a figure grows to make room for its panels.
_MAX_GROWTHS = 8
_MAX_HEIGHT = 60.0
