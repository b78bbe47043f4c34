"""Tables that fit the terminal: labels shortened but still distinct, numbers whole.

Dependency rule: rich and the CLI's escape helpers only.

Every table the CLI prints is laid out here from column kinds:

- LABEL: a name from the archive (workload, optimizer, hyperparameter), given raw (not
  escaped). Where the column must be narrower than its longest label, labels are
  shortened in the middle ("cifar1…lcnnc", "sched…prodigy"), keeping prefix and suffix,
  with one split for the whole column chosen so that no two different labels read the
  same; if no width below the longest label achieves that, the labels stay whole.
- VALUE: a number or a short token, already formatted; never cut or wrapped.
- TEXT: a phrase (may carry rich markup); wraps between words only.

Columns that do not fit even so are left out, in a stated order, and named in one line
below the table together with the way to see them (`--json`, or a wider terminal).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

from rich.markup import escape as _rich_escape
from rich.table import Table
from rich.text import Text

from optcmp_cli._common import console
from optcmp_cli.render.escape import visible

__all__ = ["LABEL", "TEXT", "VALUE", "fit_table", "print_fitted", "shorten"]

LABEL: Final = "label"
VALUE: Final = "value"
TEXT: Final = "text"

#: A label column is never made narrower than this to fit (nor than its header).
MIN_LABEL: Final = 10
#: Optional columns are left out before labels are cut below this width.
PREFERRED_LABEL: Final = 12
_ELLIPSIS: Final = "…"


def _cut(label: str, width: int, head: int) -> str:
    if len(label) <= width:
        return label
    tail = width - 1 - head
    return label[:head] + _ELLIPSIS + (label[len(label) - tail :] if tail > 0 else "")


def shorten(labels: Sequence[str], width: int) -> dict[str, str] | None:
    """Each label to at most `width` characters, cut in the middle with one split for all,
    such that different labels stay different; None when no split achieves that."""
    distinct = list(dict.fromkeys(labels))
    if all(len(s) <= width for s in distinct):
        return {s: s for s in distinct}
    if width < 3:
        return None
    # Balanced first (about half kept from each end), then ever more lopsided splits.
    middle = (width - 1 + 1) // 2
    heads = sorted(range(1, width - 1), key=lambda h: (abs(h - middle), -h))
    for head in heads:
        cut = {s: _cut(s, width, head) for s in distinct}
        if len(set(cut.values())) == len(distinct):
            return cut
    return None


def _fit_labels(labels: Sequence[str], width: int) -> tuple[dict[str, str], int]:
    """Distinct shortened labels at the least width >= `width` that allows them."""
    longest = max([1, *(len(s) for s in labels)])
    for w in range(min(width, longest), longest + 1):
        cut = shorten(labels, w)
        if cut is not None:
            return cut, max([1, *(len(v) for v in cut.values())])
    return {s: s for s in labels}, longest


def _cell_len(cell: str) -> int:
    return max([0, *(Text.from_markup(line).cell_len for line in cell.splitlines())])


def _word_len(cell: str) -> int:
    words = Text.from_markup(cell).plain.split()
    return max([1, *(len(w) for w in words)])


def fit_table(
    title: str | None,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[str]],
    droppable: Sequence[str] = (),
    *,
    last_resort: Sequence[str] = (),
    caption: str | None = None,
    right: Sequence[str] = (),
    width: int | None = None,
) -> tuple[Table, list[str]]:
    """A table of `rows` that fits `width` columns (the console's by default). LABEL cells
    are raw text (escaped here, after shortening); VALUE and TEXT cells are rich markup.
    The `droppable` headers are left out, in that order, while the table does not fit
    at ease (labels of PREFERRED_LABEL characters, texts on one line); the `last_resort`
    ones only while it does not fit at all.
    `right` names the columns aligned right. Returns the table and the headers left out."""
    width = console.width if width is None else width
    raw: list[list[str]] = [
        [visible(c) if k == LABEL else c for c, (_, k) in zip(r, columns, strict=True)]
        for r in rows
    ]
    headers = [h for h, _ in columns]
    head_len = [max([1, *(len(w) for w in h.split())]) for h in headers]
    natural, least, preferred = [], [], []
    for i, (_, kind) in enumerate(columns):
        cells = [r[i] for r in raw]
        if kind == LABEL:
            longest = max([1, *(len(c) for c in cells)])
            natural.append(max(head_len[i], longest))
            least.append(max(head_len[i], min(longest, MIN_LABEL)))
            preferred.append(max(head_len[i], min(longest, PREFERRED_LABEL)))
            continue
        elif kind == VALUE:
            longest = max([1, *(_cell_len(c) for c in cells)])
            natural.append(max(head_len[i], longest))
            least.append(natural[-1])
        else:
            natural.append(max(head_len[i], max([1, *(_cell_len(c) for c in cells)])))
            least.append(max(head_len[i], max([1, *(_word_len(c) for c in cells)])))
        preferred.append(natural[-1])
    keep = list(range(len(columns)))

    def total(widths: dict[int, int] | list[int]) -> int:
        # Without outer edges each column but the first adds a rule and two spaces.
        return sum(widths[i] for i in keep) + 3 * (len(keep) - 1)

    # Optional columns give way first, while the others do not fit at ease (labels up
    # to PREFERRED_LABEL, texts on one line); then labels and texts narrow.
    for header in droppable:
        if total(preferred) <= width:
            break
        if header in headers and headers.index(header) in keep:
            keep.remove(headers.index(header))
    for header in last_resort:
        if total(least) <= width:
            break
        if header in headers and headers.index(header) in keep:
            keep.remove(headers.index(header))
    # Still too wide at the least widths: the last columns go (rich would otherwise
    # squeeze every column and cut values); the first always stays.
    while len(keep) > 1 and total(least) > width:
        keep.pop()
    widths = {i: least[i] for i in keep}
    spare = width - total(widths)
    # What is left widens labels (fewer shortened), then texts (fewer lines).
    # Labels up to their preferred width, then texts on one line, then labels whole;
    # columns grow one character at a time in turn, so that no label column keeps
    # shortened labels while another takes all the room.
    for kind, goal in ((LABEL, preferred), (TEXT, natural), (LABEL, natural)):
        growing = [i for i in keep if columns[i][1] == kind]
        while spare > 0 and growing:
            for i in list(growing):
                if widths[i] >= goal[i]:
                    growing.remove(i)
                elif spare > 0:
                    widths[i] += 1
                    spare -= 1
    cuts: dict[int, dict[str, str]] = {}
    for i in keep:
        if columns[i][1] == LABEL:
            cuts[i], widths[i] = _fit_labels([r[i] for r in raw], widths[i])
            widths[i] = max(widths[i], head_len[i])
    table = Table(title=title, caption=caption, show_edge=False, pad_edge=False)
    for i in keep:
        header, kind = columns[i]
        justify: Literal["left", "right"] = "right" if header in right else "left"
        # Every cell fits its width (labels were shortened, values measured), so only
        # texts and headers ever wrap, and only between words.
        table.add_column(header, width=widths[i], overflow="fold", justify=justify)
    for r in raw:
        table.add_row(*(_rich_escape(cuts[i][r[i]]) if i in cuts else r[i] for i in keep))
    return table, [headers[i] for i in range(len(columns)) if i not in keep]


def print_fitted(table: Table, left_out: Sequence[str], *, wide: bool = False) -> None:
    """Print a fitted table and, below it, which columns were left out and where to see
    them."""
    console.print(table)
    if left_out:
        console.print(
            f"Not shown at {console.width} columns: {', '.join(left_out)} "
            "(see --json, or widen the terminal).",
            markup=False,
        )
