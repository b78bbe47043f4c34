"""The state of one report as it is written, and the protocol group a section is for.

Dependency rule: numpy, xarray, attrs, optcmp_data and optcmp_analysis; figures are saved
through `optcmp_cli._plots.save_figure`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import numpy as np
import xarray as xr

from optcmp_analysis import SelectionRule
from optcmp_cli._analyses import Inference
from optcmp_cli._common import err_console
from optcmp_cli.render.escape import md, visible
from optcmp_cli.render.markdown import slug
from optcmp_data import OptcmpError, Taxonomy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from optcmp_cli.render.palette import OptimizerStyle

__all__ = ["Builder", "Group"]

T = TypeVar("T")


@attrs.define
class Builder:
    """Accumulates the Markdown, the JSON results and the figures of one report."""

    out: Path
    name: str
    seed: int
    n_boot: int
    rule: SelectionRule
    advance: Callable[[str], None]
    lines: list[str] = attrs.field(factory=list)
    results: dict[str, Any] = attrs.field(factory=dict)
    figures: list[Path] = attrs.field(factory=list)
    caveats: list[str] = attrs.field(factory=list)
    skipped: dict[str, str] = attrs.field(factory=dict)
    title: str = ""
    taxonomy: Taxonomy | None = None
    inference: Inference = attrs.field(factory=Inference)
    # The findings summary: statements with evidence, without, about the protocol, and
    # the caveats that change a conclusion (each list in the order found).
    supported: list[str] = attrs.field(factory=list)
    unsupported: list[str] = attrs.field(factory=list)
    protocol_notes: list[str] = attrs.field(factory=list)
    key_caveats: list[str] = attrs.field(factory=list)

    def caveat(self, text: str, *, key: bool = False) -> None:
        """Record a caveat once; `key` ones also lead the findings summary."""
        if text not in self.caveats:
            self.caveats.append(text)
        if key and text not in self.key_caveats:
            self.key_caveats.append(text)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def add_records(self, key: str, records: list[dict[str, Any]], group: str | None) -> None:
        if group is not None:
            records = [{"protocol": group, **r} for r in records]
        self.results.setdefault(key, []).extend(records)

    def figure(self, fig: Figure, stem: str, alt: str) -> None:
        from optcmp_cli.render.save import save_figure

        path = save_figure(fig, self.out / "figures" / f"{slug(stem)}.png")
        self.figures.append(path)
        self.lines += [f"![{md(alt)}](figures/{path.name})", ""]

    def draw(self, name: str, result: Any, group: Group, alt: str) -> None:
        """The figure of analysis `name` (as `optcmp plot` draws it) into the report, in
        the colours of the group's optimizers."""
        from optcmp_cli._analyses import analysis_named

        figure = analysis_named(name).figure()
        assert figure is not None, name
        self.figure(figure(result, group.full), f"{name}{group.suffix}", alt)

    def attempt(self, key: str, fn: Callable[[], T]) -> T | None:
        """Run one analysis; an error of our own type is recorded and shown, never hidden."""
        try:
            return fn()
        except OptcmpError as err:
            reason = " ".join(str(err).split())
            self.skipped[key] = reason
            self.lines += [f"_Not available: {md(reason)}_", ""]
            err_console.print(f"warning: {visible(key)}: {visible(reason)}", markup=False)
            return None


@attrs.frozen
class Group:
    """The optimizers of one tuning protocol, as one section of the report sees them.

    `label`: the protocol (None: the archive holds one); `ds`: its trials without the
    workloads where none is usable; `full`: its trials as given, whose optimizers give
    every figure its colours; `styles`: those colours and markers."""

    label: str | None
    ds: xr.Dataset
    full: xr.Dataset
    styles: dict[str, OptimizerStyle]

    @property
    def suffix(self) -> str:
        """The label as a suffix of a figure's stem or a skipped analysis's key."""
        return "" if self.label is None else f"-{self.label}"

    def heading(self, text: str) -> str:
        """A section heading, naming the protocol when there are several."""
        return heading(text, self.label)

    def under(self) -> str:
        """ " under protocol P" for caveats, or nothing."""
        return f" under protocol {md(self.label)}" if self.label else ""


def heading(text: str, group: str | None) -> str:
    """A heading, naming the protocol `group` when there is one."""
    return text if group is None else f"{text} (protocol {md(group)})"
