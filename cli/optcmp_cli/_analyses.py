"""The CLI's table of analyses: what `optcmp plot` and `optcmp report` show of each
analysis of the analysis layer's registry, in the report's order.

Dependency rule: the light names of optcmp_analysis and optcmp_data at import (enums,
defaults, errors, the registry), so that `optcmp plot --help` loads no statistics; an
analysis's CLI module (`optcmp_cli.analyses.<name>`) is imported when it runs, is drawn
or writes its section.

An entry names the analysis (its KIND of `optcmp plot`, the stem of its figure file, its
registry entry unless `registered` says otherwise) and says how the CLI treats it: whether
it has a figure, which of `--budget` and `--compare` it takes, its key in the report and
whether the report's protocol group needs it. How it runs (its options), how it is drawn
and what its report section says are in its CLI module. `optcmp plot` lists and checks
its figures from this table, and `optcmp report` writes the sections of each protocol
group in its order; `register` adds an analysis from outside (docs/extending.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optcmp_analysis import DEFAULT_TEST_N_BOOT, SelectionRule
from optcmp_data import ConfigError, Taxonomy

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr
    from matplotlib.figure import Figure


__all__ = [
    "ANALYSES",
    "FIGURES",
    "Analysis",
    "Common",
    "Inference",
    "analysis_named",
    "cli_analyses",
    "figures",
    "group_sections",
    "register",
]

# Bootstrap replicates of the aggregate scores are capped: each replicate resamples
# every workload, and the interval is stable well before this.
AGGREGATE_MAX_N_BOOT = 2000


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
    """What the CLI shows of one analysis of the registry (`optcmp_analysis.analyses()`).

    The analysis runs as the registry's entry `registered` (default `name`) with the
    options its CLI module builds from the common ones, the same call as `optcmp analyze`.
    Its CLI module (`module`, default `optcmp_cli.analyses.<name>`) defines
    `options(common)`, `figure(result, archive)` (where `has_figure`) and
    `section(builder, result, group)`, the analysis's part of the report."""

    name: str
    # The heading of its report section (None: the registry's title of the analysis).
    heading: str | None = None
    has_figure: bool = True
    takes_budget: bool = False
    takes_compare: bool = False
    # Its key in the report: the step of the progress bar, the records in results.json
    # and the name of a skipped analysis (None: `name`).
    report_as: str | None = None
    # Nothing else in a protocol group of the report runs without it (the selection).
    required: bool = False
    # The registry's analysis it shows (None: `name`).
    registered: str | None = None
    # Its CLI module (None: optcmp_cli.analyses.<name>).
    module_name: str | None = None

    @property
    def report_key(self) -> str:
        return self.name if self.report_as is None else self.report_as

    @property
    def report_heading(self) -> str:
        """The heading of its report section."""
        if self.heading is not None:
            return self.heading
        from optcmp_analysis import analysis_named as registered

        title: str = registered(self.registered or self.name).title
        return title

    def module(self) -> Any:
        """The analysis's CLI module (imported on first use)."""
        return importlib.import_module(self.module_name or f"optcmp_cli.analyses.{self.name}")

    def run(self, archive: xr.Dataset, common: Common) -> Any:
        """Run the registry's analysis on `archive` (and the --compare archive, where it
        compares two) with the options its CLI module builds from `common`."""
        from optcmp_analysis import analysis_named as registered

        entry = registered(self.registered or self.name)
        second = None
        if self.takes_compare and common.compare is not None:
            second = common.compare[1]
        module = self.module()
        options = module.options(common) if hasattr(module, "options") else entry.options()
        return entry.run(archive, second, options=options, rng=common.rng)

    def figure(self) -> Callable[[Any, xr.Dataset], Figure] | None:
        """`figure(result, archive)` of the CLI module; None: no figure of its own."""
        if not self.has_figure:
            return None
        figure: Callable[[Any, xr.Dataset], Figure] = self.module().figure
        return figure

    def section(self) -> Callable[[Any, Any, Any], None]:
        """`section(builder, result, group)` of the CLI module: the analysis's section of
        the report (its figure, tables and findings)."""
        section: Callable[[Any, Any, Any], None] = self.module().section
        return section

    def check(self, common: Common, *, command: str = "plot") -> None:
        """Refuse the options this analysis does not take."""
        if common.compare is not None and not self.takes_compare:
            raise ConfigError(
                f"--compare applies to {command} protocol only, not to {command} {self.name}"
            )
        if common.budget is not None and not self.takes_budget:
            raise ConfigError(f"--budget does not apply to {command} {self.name}")

    def draw(self, archive: xr.Dataset, common: Common) -> Figure:
        """Run the analysis on `archive` and draw its figure."""
        figure = self.figure()
        if figure is None:
            raise ConfigError(f"{self.name}: no figure")
        self.check(common)
        return figure(self.run(archive, common), archive)


# --- the table, in the report's order ------------------------------------------------------

ANALYSES: tuple[Analysis, ...] = (
    Analysis("best", has_figure=False, report_as="selection", required=True),
    Analysis("budget", takes_budget=True),
    Analysis("rank", takes_budget=True),
    Analysis("aggregate"),
    Analysis("profiles"),
    Analysis("inclusion", takes_budget=True),
    Analysis("targets"),
    Analysis("boundary"),
    # The learning curves of the selected trials: drawn from the selection, no records.
    Analysis("curves", "Learning curves", registered="best"),
    Analysis("protocol", takes_compare=True),
)

# The built-in analyses `optcmp plot` draws, in the order its help lists them.
FIGURES: tuple[Analysis, ...] = tuple(a for a in ANALYSES if a.has_figure)


# Analyses added by other modules (`register`), after the built-in ones.
_REGISTERED: list[Analysis] = []


def register(entry: Analysis) -> Analysis:
    """Add what the CLI shows of an analysis added to the analysis layer's registry
    (`optcmp_analysis.register`): its `optcmp analyze` command (built from the registry's
    options and its CLI module's `print_table(result, options, archive)`), its `optcmp plot`
    figure and its section of `optcmp report` (after the built-in ones). Its CLI module
    (`entry.module_name`) defines `print_table`, `figure` (where `has_figure`), `section` and,
    optionally, `options(common)`: the options `plot` and `report` run it with (default
    the registry's defaults). ConfigError when the name is taken or not registered."""
    from optcmp_analysis import analysis_named as registered
    from optcmp_cli._analyze import analyze_app
    from optcmp_cli._analyze_command import analyze_command

    if any(a.name == entry.name for a in cli_analyses()):
        raise ConfigError(f"analysis {entry.name!r} is already registered")
    spec = registered(entry.registered or entry.name)
    _REGISTERED.append(entry)
    analyze_app.command(entry.name)(analyze_command(spec, entry.module()))
    return entry


def cli_analyses() -> tuple[Analysis, ...]:
    """The built-in analyses (`ANALYSES`), then the registered ones."""
    return (*ANALYSES, *_REGISTERED)


def figures() -> tuple[Analysis, ...]:
    """The analyses `optcmp plot` draws, in the order of its help."""
    return tuple(a for a in cli_analyses() if a.has_figure)


def group_sections() -> tuple[Analysis, ...]:
    """The sections of each protocol group of `optcmp report`, in the report's order:
    every analysis but those comparing two protocols (the report's comparisons come
    first)."""
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
