"""What the CLI shows of each analysis of the analysis layer's registry, derived from
its registry entry and its CLI module; no list of names of its own.

Dependency rule: the light names of optcmp_analysis and optcmp_data at import (enums,
defaults, errors, the registry), and the analyses' CLI modules (light at import too)
when the CLI's view of the analyses is asked for, so that `optcmp plot --help` loads no
statistics.

The one list of analyses is the registry's (`optcmp_analysis.analyses()`, its order).
The CLI module of a built-in analysis is `optcmp_cli.analyses.<name>`, found by that
name; an analysis registered from outside names its CLI module with `register`
(docs/extending.md). From the entry and the module the CLI reads how to treat the
analysis:

- its figure: the module defines `figure(result, archive)`;
- `--compare`: the entry takes a second archive (`second_archive`);
- `--budget` of `optcmp plot`: the module's `BUDGET_HELP`, what k means for it (its
  `options(common)` reads `common.budget`), and `BUDGET_DEFAULT`, its k without the
  option where that is not all trials;
- its key in the report (progress step, results.json, skipped): `REPORT_KEY` (default
  its name); whether nothing else of a protocol group runs without it: `REQUIRED`; its
  heading: `HEADING` (default the entry's title); whether the report runs it at the
  budget of its tests: `REPORT_AT_TESTS_BUDGET`;
- its views: `VIEWS`, a mapping of name -> module of a figure and report section drawn
  from its result with no analysis of its own (best's learning curves, `curves`).

The CLI's order (`cli_analyses()`): the analyses of one archive in the registry's order,
then their views, then the analyses comparing two archives. `optcmp plot` draws the
figures in that order and `optcmp report` writes each protocol group's sections in it
(its comparisons of two archives come first, on their own).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optcmp_analysis import DEFAULT_TEST_N_BOOT, SelectionRule
from optcmp_data import ConfigError, Taxonomy

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr
    from matplotlib.figure import Figure

    from optcmp_analysis import Analysis as Registered


__all__ = [
    "Analysis",
    "Common",
    "Inference",
    "analysis_named",
    "cli_analyses",
    "figures",
    "group_sections",
    "register",
    "shown_analyses",
]


@dataclass(frozen=True)
class Inference:
    """The options of the inclusion and protocol tests, the same in `analyze`, `plot` and
    `report` (cli/optcmp_cli/_options.py defines each once): budget k (None: the default
    rule), bootstrap resamples, level, and margins (None: the per-workload rule; a number;
    or a workload -> margin table, "*" for the rest)."""

    budget: int | None = None
    n_boot: int = DEFAULT_TEST_N_BOOT
    alpha: float = 0.05
    margin: float | dict[str, float] | None = None

    def describe(self) -> str:
        """The options in words, for reports and figure titles."""
        from optcmp_analysis import BUDGET_RULE, MARGIN_RULE

        budget = BUDGET_RULE if self.budget is None else f"k = {self.budget}"
        if self.margin is None:
            margin = f"margin {MARGIN_RULE}"
        elif isinstance(self.margin, dict):
            margin = "margins " + ", ".join(f"{w} {m:g}" for w, m in self.margin.items())
        else:
            margin = f"margin {self.margin:g}"
        return (
            f"budget {budget}; alpha {self.alpha:g}; {self.n_boot} bootstrap-t resamples; {margin}"
        )


@dataclass(frozen=True)
class Common:
    """The options every analysis is run with (those it does not use are ignored)."""

    rng: np.random.Generator
    rule: SelectionRule
    n_boot: int
    budget: int | None = None
    # The second archive of a protocol comparison, with its name.
    compare: tuple[str, xr.Dataset] | None = None
    # The name of the (first) archive, used as its protocol label.
    name: str = "first"
    # The rules of the inclusion check (None: `rule` alone).
    rules: tuple[SelectionRule, ...] | None = None
    # Inclusion relations of the inclusion and target checks (None: the paper's).
    taxonomy: Taxonomy | None = None
    # The inclusion, target and protocol tests' options.
    inference: Inference = Inference()


@dataclass(frozen=True)
class Analysis:
    """What the CLI shows of one analysis of the registry (`optcmp_analysis.analyses()`),
    or of a view of one (`shows`): its name (its KIND of `optcmp plot`, the stem of its
    figure file) and its CLI module (`module_name`, default `optcmp_cli.analyses.<name>`).

    The analysis runs as the registry's entry `shows` (default `name`) with the options
    its CLI module builds from the common ones (`options(common)`; default the options
    class's defaults), the same call as `optcmp analyze`. The module defines
    `section(builder, result, group)`, its part of the report, and `figure(result,
    archive)` where it has one; the rest of what the CLI does with it is read from the
    registry's entry and the module's declarations (the module docstring above)."""

    name: str
    # Its CLI module (None: optcmp_cli.analyses.<name>).
    module_name: str | None = None
    # A view: the registry's analysis it is drawn from (None: itself).
    shows: str | None = None

    def module(self) -> Any:
        """The analysis's CLI module (imported on first use)."""
        return importlib.import_module(self.module_name or f"optcmp_cli.analyses.{self.name}")

    def entry(self) -> Registered:
        """The registry's entry of the analysis it runs."""
        from optcmp_analysis import analysis_named as registered

        return registered(self.shows or self.name)

    @property
    def has_figure(self) -> bool:
        return hasattr(self.module(), "figure")

    @property
    def takes_budget(self) -> bool:
        return self.budget_help is not None

    @property
    def budget_help(self) -> str | None:
        """What `plot --budget K` means for it (None: it takes no --budget)."""
        text: str | None = getattr(self.module(), "BUDGET_HELP", None)
        return text

    @property
    def budget_default(self) -> str | None:
        """Its budget without --budget, where that is not all trials."""
        text: str | None = getattr(self.module(), "BUDGET_DEFAULT", None)
        return text

    @property
    def at_tests_budget(self) -> bool:
        """The report runs it with `common.budget` the budget of its tests."""
        return bool(getattr(self.module(), "REPORT_AT_TESTS_BUDGET", False))

    @property
    def takes_compare(self) -> bool:
        return self.shows is None and self.entry().second_archive

    @property
    def required(self) -> bool:
        """Nothing else in a protocol group of the report runs without it (the selection)."""
        return bool(getattr(self.module(), "REQUIRED", False))

    @property
    def report_key(self) -> str:
        """Its key in the report: the step of the progress bar, the records in
        results.json and the name of a skipped analysis."""
        key: str = getattr(self.module(), "REPORT_KEY", self.name)
        return key

    @property
    def report_heading(self) -> str:
        """The heading of its report section."""
        heading: str | None = getattr(self.module(), "HEADING", None)
        return self.entry().title if heading is None else heading

    def views(self) -> tuple[Analysis, ...]:
        """The views its CLI module declares (`VIEWS`: name -> module)."""
        views: dict[str, str] = getattr(self.module(), "VIEWS", {})
        return tuple(Analysis(n, module_name=m, shows=self.name) for n, m in views.items())

    def run(self, archive: xr.Dataset, common: Common) -> Any:
        """Run the registry's analysis on `archive` (and the --compare archive, where it
        compares two) with the options its CLI module builds from `common`."""
        entry = self.entry()
        second = None
        if self.takes_compare and common.compare is not None:
            second = common.compare[1]
        module = self.module()
        options = module.options(common) if hasattr(module, "options") else entry.options()
        return entry.run(archive, second, options=options, rng=common.rng)

    def figure(self) -> Callable[[Any, xr.Dataset], Figure] | None:
        """`figure(result, archive)` of the CLI module; None: no figure of its own."""
        figure: Callable[[Any, xr.Dataset], Figure] | None = getattr(self.module(), "figure", None)
        return figure

    def section(self) -> Callable[[Any, Any, Any], None]:
        """`section(builder, result, group)` of the CLI module: the analysis's section of
        the report (its figure, tables and findings)."""
        section: Callable[[Any, Any, Any], None] = self.module().section
        return section

    def check(self, common: Common, *, command: str = "plot") -> None:
        """Refuse the options this analysis does not take."""
        if common.compare is not None and not self.takes_compare:
            takers = " and ".join(f"{command} {a.name}" for a in cli_analyses() if a.takes_compare)
            raise ConfigError(f"--compare applies to {takers} only, not to {command} {self.name}")
        if common.budget is not None and not self.takes_budget:
            raise ConfigError(f"--budget does not apply to {command} {self.name}")

    def draw(self, archive: xr.Dataset, common: Common) -> Figure:
        """Run the analysis on `archive` and draw its figure."""
        figure = self.figure()
        if figure is None:
            raise ConfigError(f"{self.name}: no figure")
        self.check(common)
        return figure(self.run(archive, common), archive)


# CLI modules of analyses registered from outside (`register`), by name.
_REGISTERED: list[Analysis] = []


def register(entry: Analysis) -> Analysis:
    """Add what the CLI shows of an analysis added to the analysis layer's registry
    (`optcmp_analysis.register`): its `optcmp analyze` command (built from the registry's
    options and its CLI module's `print_table(result, options, archive)`), its `optcmp plot`
    figure and its section of `optcmp report`. Its CLI module (`entry.module_name`)
    defines `print_table`, `section`, optionally `figure` and `options(common)` (the
    options `plot` and `report` run it with; default the registry's defaults) and the
    declarations of the module docstring above. ConfigError when the name is taken;
    AnalysisError when the analysis layer has no such analysis."""
    from optcmp_analysis import analysis_named as registered
    from optcmp_cli._analyze import analyze_app
    from optcmp_cli._analyze_command import analyze_command

    if any(a.name == entry.name for a in cli_analyses()):
        raise ConfigError(f"analysis {entry.name!r} is already registered")
    spec = registered(entry.name)
    _REGISTERED.append(entry)
    analyze_app.command(entry.name)(analyze_command(spec, entry.module()))
    return entry


def shown_analyses() -> tuple[Analysis, ...]:
    """The analyses of the registry the CLI shows, in the registry's order: those with a
    CLI module, registered (`register`) or found by the analysis's name
    (`optcmp_cli.analyses.<name>`: every built-in one). An analysis registered in the
    analysis layer alone is not shown, even under the name of a module of that package
    that is not its CLI module (a view's: "curves")."""
    from optcmp_analysis import analyses

    added = {a.name: a for a in _REGISTERED}
    out = []
    for entry in analyses():
        if entry.name in added:
            out.append(added[entry.name])
        elif _has_cli_module(entry.name):
            out.append(Analysis(entry.name))
    return tuple(out)


def _has_cli_module(name: str) -> bool:
    """`optcmp_cli.analyses.<name>` is the CLI module of an analysis: it exists and
    prints the analysis's table (`print_table`; a view's module, such as `curves`, does
    not). Only an identifier can name a module: `find_spec` of a dotted name ("my.stat")
    would import its parent package ("optcmp_cli.analyses.my") and raise."""
    module = f"optcmp_cli.analyses.{name}"
    if not name.isidentifier() or importlib.util.find_spec(module) is None:
        return False
    return hasattr(importlib.import_module(module), "print_table")


def cli_analyses() -> tuple[Analysis, ...]:
    """Everything the CLI shows, in its order: the analyses of one archive (registry
    order), their views, then the analyses comparing two archives."""
    shown = shown_analyses()
    one = tuple(a for a in shown if not a.takes_compare)
    views = tuple(v for a in shown for v in a.views())
    return (*one, *views, *(a for a in shown if a.takes_compare))


def figures() -> tuple[Analysis, ...]:
    """The figures `optcmp plot` draws, in the CLI's order."""
    return tuple(a for a in cli_analyses() if a.has_figure)


def group_sections() -> tuple[Analysis, ...]:
    """The sections of each protocol group of `optcmp report`, in the report's order:
    every analysis and view but those comparing two protocols (the report's comparisons
    come first)."""
    return tuple(a for a in cli_analyses() if not a.takes_compare)


def analysis_named(name: str, among: tuple[Analysis, ...] | None = None) -> Analysis:
    """The analysis called `name` among `among` (default every one), ConfigError naming
    the choices when there is none."""
    among = cli_analyses() if among is None else among
    for a in among:
        if a.name == name:
            return a
    raise ConfigError(
        f"{name!r}: no such analysis; choose one of {', '.join(a.name for a in among)}"
    )
