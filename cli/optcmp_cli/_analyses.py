"""The registry of the CLI's analyses: one entry per analysis, in one table.

Dependency rule: optcmp_analysis and optcmp_data, their light names (enums, defaults,
errors) at import and the analyses when one runs, so that `optcmp plot --help` loads no
statistics; the figure functions of _plots and _plots_across are imported when a figure
is drawn (they import this module).

Each entry declares the analysis's name (the KIND of `optcmp plot`, the stem of the
report's figure file), the function that runs it on an archive with the common options,
its key in `optcmp analyze ... --json` and in the report's results.json, the function
that draws its figure (None: no figure), the heading of its report section and which of
the options `--budget` and `--compare` it takes. Its report section is written by its
CLI module, `optcmp_cli.analyses.<name>`. The table's order is the report's: `optcmp
plot` lists, checks and draws its figures from it, and `optcmp report` writes the
sections of each protocol group in it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optcmp_analysis import DEFAULT_TEST_N_BOOT, Match, SelectionRule
from optcmp_data import ConfigError, Taxonomy

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr
    from matplotlib.figure import Figure

    from optcmp_analysis import ProtocolComparison

__all__ = [
    "ANALYSES",
    "FIGURES",
    "GROUP_SECTIONS",
    "Analysis",
    "Common",
    "Inference",
    "analysis_named",
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
    """One analysis: how to run it, where its records go and how it is drawn."""

    name: str
    run: Callable[[xr.Dataset, Common], Any]
    json_key: str
    # (result, archive) -> figure; None: the analysis has no figure of its own.
    figure: Callable[[Any, xr.Dataset], Figure] | None
    report_heading: str | None
    takes_budget: bool = False
    takes_compare: bool = False
    # Its key in the report: the step of the progress bar, the records in results.json
    # and the name of a skipped analysis (None: `name`).
    report_as: str | None = None
    # Nothing else in a protocol group of the report runs without it (the selection).
    required: bool = False

    @property
    def report_key(self) -> str:
        return self.name if self.report_as is None else self.report_as

    def section(self) -> Callable[[Any, Any, Any], None]:
        """The function that writes the analysis's section of the report (its CLI module
        `optcmp_cli.analyses.<name>`, imported when the report is written):
        `section(builder, result, group)`."""
        module = importlib.import_module(f"optcmp_cli.analyses.{self.name}")
        section: Callable[[Any, Any, Any], None] = module.section
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
        if self.figure is None:
            raise ConfigError(f"{self.name}: no figure")
        self.check(common)
        return self.figure(self.run(archive, common), archive)


# --- how each analysis runs ---------------------------------------------------------------


def _budget(ds: xr.Dataset, c: Common) -> Any:
    from optcmp_analysis import budget_curve, default_budgets

    budgets = None if c.budget is None else default_budgets(c.budget)
    return budget_curve(ds, budgets=budgets, n_boot=c.n_boot, rng=c.rng, rule=c.rule)


def _rank(ds: xr.Dataset, c: Common) -> Any:
    from optcmp_analysis import rank_optimizers

    return rank_optimizers(ds, budget=c.budget, n_boot=c.n_boot, rng=c.rng, rule=c.rule)


def _inclusion(ds: xr.Dataset, c: Common) -> Any:
    from optcmp_analysis import inclusion_consistency

    rules = (c.rule,) if c.rules is None else c.rules
    i = c.inference
    return inclusion_consistency(
        ds,
        budget=c.budget if c.budget is not None else i.budget,
        n_boot=i.n_boot,
        rng=c.rng,
        rules=rules,
        taxonomy=c.taxonomy,
        alpha=i.alpha,
        margin=i.margin,
    )


def _targets(ds: xr.Dataset, c: Common) -> Any:
    from optcmp_analysis import target_study

    i = c.inference
    return target_study(
        ds,
        rng=c.rng,
        taxonomy=c.taxonomy,
        budget=i.budget,
        n_boot=i.n_boot,
        alpha=i.alpha,
        margin=i.margin,
    )


def _boundary(ds: xr.Dataset, c: Common) -> Any:
    from optcmp_analysis import boundary_check

    return boundary_check(ds, rule=c.rule)


def _best(ds: xr.Dataset, c: Common) -> Any:
    from optcmp_analysis import select_best

    return select_best(ds, rule=c.rule)


def _aggregate(ds: xr.Dataset, c: Common) -> Any:
    from optcmp_analysis import aggregate_scores

    return aggregate_scores(ds, rng=c.rng, n_boot=min(c.n_boot, AGGREGATE_MAX_N_BOOT), rule=c.rule)


def _profiles(ds: xr.Dataset, c: Common) -> Any:
    from optcmp_analysis import performance_profiles

    return performance_profiles(ds)


def _protocol(ds: xr.Dataset, c: Common) -> ProtocolComparison:
    """The protocol comparison of two archives, or of the two search spaces of one (the
    one searching fewer hyperparameters first)."""
    import numpy as np

    from optcmp_analysis import protocol_sensitivity
    from optcmp_data import Scale

    if c.compare is not None:
        other, second = c.compare
        name = c.name
        labels = (name, other) if name != other else (f"{name} (1)", f"{name} (2)")
        return protocol_sensitivity(
            ds, second, protocols=labels, rule=c.rule, n_boot=c.n_boot, rng=c.rng
        )
    names = ds["space_name"].values.astype(str)
    spaces = sorted(set(names.ravel()) - {""})
    if len(spaces) != 2:
        raise ConfigError(
            f"plot protocol: the archive has {len(spaces)} search spaces "
            f"({', '.join(spaces) or 'none'}); it needs exactly two, or --compare ARCHIVE"
        )
    scale = ds["space_scale"].values.astype(str)
    searched = np.isin(scale, [Scale.LINEAR.value, Scale.LOG.value, Scale.ONE_MINUS_LOG.value])
    width = {sp: float(searched.sum(axis=-1)[names == sp].mean()) for sp in spaces}
    ordered = sorted(spaces, key=lambda sp: (width[sp], sp))
    return protocol_sensitivity(
        ds, protocols=ordered, match=Match.FAMILY, rule=c.rule, n_boot=c.n_boot, rng=c.rng
    )


# --- how each analysis is drawn (imported late: the figure modules import this one) ---------


def _budget_figure(result: Any, ds: xr.Dataset) -> Figure:
    from optcmp_cli._plots import budget_figure
    from optcmp_cli.render.palette import styles_of

    return budget_figure(result, styles=styles_of(ds))


def _rank_figure(result: Any, ds: xr.Dataset) -> Figure:
    from optcmp_cli._plots import rank_figure
    from optcmp_cli.render.palette import styles_of

    return rank_figure(result, styles=styles_of(ds))


def _inclusion_figure(result: Any, ds: xr.Dataset) -> Figure:
    from optcmp_cli._plots import inclusion_figure

    return inclusion_figure(result)


def _targets_figure(result: Any, ds: xr.Dataset) -> Figure:
    from optcmp_cli._plots import step_label, targets_figure
    from optcmp_cli.render.palette import styles_of

    return targets_figure(result, styles=styles_of(ds), step_unit=step_label(ds))


def _boundary_figure(result: Any, ds: xr.Dataset) -> Figure:
    from optcmp_cli._plots import boundary_figure
    from optcmp_cli.render.palette import styles_of

    return boundary_figure(result, styles=styles_of(ds))


def _curves_figure(result: Any, ds: xr.Dataset) -> Figure:
    from optcmp_cli._plots import curves_figure

    return curves_figure(ds, result)


def _aggregate_figure(result: Any, ds: xr.Dataset) -> Figure:
    from optcmp_cli._plots_across import aggregate_figure

    return aggregate_figure(result)


def _profiles_figure(result: Any, ds: xr.Dataset) -> Figure:
    from optcmp_cli._plots_across import profiles_figure

    return profiles_figure(result, algoperf=bool(ds.attrs.get("base_workloads")))


def _protocol_figure(result: Any, ds: xr.Dataset) -> Figure:
    from optcmp_cli._plots import protocol_figure
    from optcmp_cli.render.palette import styles_of

    return protocol_figure(result, styles=styles_of(ds))


# --- the table ------------------------------------------------------------------------------

ANALYSES: tuple[Analysis, ...] = (
    Analysis("best", _best, "best", None, "Selected trials", report_as="selection", required=True),
    Analysis("budget", _budget, "budget", _budget_figure, "Budget sensitivity", takes_budget=True),
    Analysis("rank", _rank, "rank", _rank_figure, "Rankings", takes_budget=True),
    Analysis("aggregate", _aggregate, "aggregate", _aggregate_figure, "Across workloads"),
    Analysis("profiles", _profiles, "profiles", _profiles_figure, "Time-to-target profiles"),
    Analysis(
        "inclusion",
        _inclusion,
        "inclusion",
        _inclusion_figure,
        "Inclusion consistency",
        takes_budget=True,
    ),
    Analysis("targets", _targets, "targets", _targets_figure, "Steps to target"),
    Analysis("boundary", _boundary, "boundary", _boundary_figure, "Boundary check"),
    # The learning curves of the selected trials: drawn from the selection, no records.
    Analysis("curves", _best, "best", _curves_figure, "Learning curves"),
    Analysis(
        "protocol",
        _protocol,
        "protocol",
        _protocol_figure,
        "Protocol sensitivity",
        takes_compare=True,
    ),
)

# The analyses `optcmp plot` draws, in the order its help lists them.
FIGURES: tuple[Analysis, ...] = tuple(a for a in ANALYSES if a.figure is not None)
# The sections of each protocol group of `optcmp report`, in the report's order: every
# analysis but those comparing two protocols (the report's comparisons come first).
GROUP_SECTIONS: tuple[Analysis, ...] = tuple(a for a in ANALYSES if not a.takes_compare)


def analysis_named(name: str, among: tuple[Analysis, ...] = ANALYSES) -> Analysis:
    """The analysis called `name` (ConfigError naming the choices when there is none)."""
    for a in among:
        if a.name == name:
            return a
    raise ConfigError(
        f"{name!r}: no such analysis; choose one of {', '.join(a.name for a in among)}"
    )
