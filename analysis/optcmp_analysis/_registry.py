"""The registry of analyses: for each, its options, its run function and its result type.

Dependency rule: attrs, the standard library and optcmp_analysis._enums only, so that the
CLI can list analyses and build their options (and `--help`) without numpy or xarray.
The run function and the result type are named as "module:attribute" and imported on
first use.

Every entry's name is the one name of the analysis everywhere: `optcmp analyze NAME`,
`optcmp plot NAME`, its key in `analyze NAME --json` and in the report's results.json.
Its options class is an attrs class whose fields are the run function's keyword options
(besides `rng`), each with a default and, in its metadata, the help text, the CLI flag
and the kind of value (`OptionKind`), so a front end can build its options from it.
Running an analysis is `analysis.run(archive, options=..., rng=...)`, the same call
wherever it is run.
"""

from __future__ import annotations

import enum
import functools
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import attrs

from optcmp_analysis._enums import (
    BUDGET_RULE,
    DEFAULT_FRACTIONS,
    DEFAULT_N_BOOT,
    DEFAULT_N_BOOT_AGGREGATE,
    DEFAULT_TEST_N_BOOT,
    MARGIN_RULE,
    DivergedMode,
    Match,
    Measure,
    Normalisation,
    RankMethod,
    RepeatMode,
    SelectionRule,
    Unit,
)

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr

    from optcmp_analysis._aggregate import ReferenceScores
    from optcmp_data import Taxonomy

__all__ = [
    "ANALYSES",
    "AggregateOptions",
    "Analysis",
    "BestOptions",
    "BoundaryOptions",
    "BudgetOptions",
    "InclusionOptions",
    "OptionKind",
    "OptionSpec",
    "ProfilesOptions",
    "ProtocolOptions",
    "RankOptions",
    "TargetsOptions",
    "analyses",
    "analysis_named",
    "meta",
    "register",
]


class OptionKind(enum.StrEnum):
    """What kind of value an option takes (how a front end asks for it)."""

    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"
    ENUM = "enum"  # a member of OptionSpec.enum
    INTS = "ints"  # a tuple of ints (a repeated option); None: the analysis's default
    FLOATS = "floats"  # a tuple of floats (a repeated option); None: the default
    MARGIN = "margin"  # a number, a workload -> margin mapping ("*": the rest), or None
    TAXONOMY = "taxonomy"  # an optcmp_data.Taxonomy (read from a file), or None
    REFERENCE_SCORES = "reference-scores"  # an optcmp_analysis.ReferenceScores, or None
    PROTOCOLS = "protocols"  # two labels (tuple[str, str]), or None


@attrs.frozen
class OptionSpec:
    """One option of an analysis, as data: its keyword `name`, CLI `flag`, `help`,
    `default`, `kind`, the Enum class of an ENUM option, the smallest allowed value
    (None: no bound) and whether None is allowed."""

    name: str
    flag: str
    help: str
    default: Any
    kind: OptionKind
    enum: type[enum.Enum] | None = None
    minimum: float | None = None
    optional: bool = False


_KINDS: tuple[tuple[type, OptionKind], ...] = (
    (bool, OptionKind.BOOL),  # before int: a bool is an int
    (enum.Enum, OptionKind.ENUM),
    (int, OptionKind.INT),
    (float, OptionKind.FLOAT),
    (str, OptionKind.STR),
)


def meta(
    help: str,
    *,
    kind: OptionKind | None = None,
    enum: type[enum.Enum] | None = None,
    flag: str | None = None,
    minimum: float | None = None,
) -> dict[str, Any]:
    """The metadata of an options-class field (`attrs.field(default=..., metadata=meta(...))`):
    its help text and, where the default does not tell, its kind (and Enum class); `flag`
    where the CLI flag is not `--name-with-dashes`; the smallest allowed value."""
    return {"optcmp": {"help": help, "kind": kind, "enum": enum, "flag": flag, "minimum": minimum}}


def option_specs(options: type) -> tuple[OptionSpec, ...]:
    """The options of an options class, in field order."""
    out = []
    for f in attrs.fields(options):
        if "optcmp" not in f.metadata:
            raise TypeError(
                f"{options.__name__}.{f.name}: declare the option with "
                "attrs.field(default=..., metadata=meta(help, ...))"
            )
        meta = f.metadata["optcmp"]
        kind = meta["kind"] or next(k for t, k in _KINDS if isinstance(f.default, t))
        out.append(
            OptionSpec(
                name=f.name,
                flag=meta["flag"] or "--" + f.name.replace("_", "-"),
                help=meta["help"],
                default=f.default,
                kind=kind,
                enum=meta["enum"] or (type(f.default) if kind is OptionKind.ENUM else None),
                minimum=meta["minimum"],
                optional=f.default is None,
            )
        )
    return tuple(out)


# --- the options each analysis shares (one definition each) -----------------------------

_RULE_HELP = (
    "Selection rule: final-valid (final metric on the archive's selection split), "
    "best-valid, final-train-loss, deepobs-final, deepobs-best."
)
_REPEATS_HELP = "Repeat axes (seeds, studies): average them, or per-repeat."
_DIVERGED_HELP = (
    "A diverged trial: exclude (never selected; a study of only such trials has no "
    "result, shown as the no-result share) or worst (scored as the worst usable value "
    "of its workload)."
)
_N_BOOT_HELP = "Bootstrap replicates."
_TEST_N_BOOT_HELP = (
    "Bootstrap resamples per inclusion or protocol test (the smallest p-value is 1/(n+1))."
)
_TEST_BUDGET_HELP = (
    f"Budget k tested (expected best-of-k); default {BUDGET_RULE}, the largest budget at "
    "which the test keeps its level in the calibration suite. At k = N the difference is "
    "shown without a test."
)
_ALPHA_HELP = (
    "Level of the one-sided tests (Holm within each family) and of the interval (1 - 2 alpha)."
)
_MARGIN_HELP = (
    "Non-inferiority margin in the metric's units (>= 0) for every workload: 'consistent' "
    "needs evidence that the general optimizer is worse by less than this. Default per "
    f"workload: {MARGIN_RULE}."
)
_WITH_REPLACEMENT_HELP = (
    "Allow budgets above a cell's trial count by resampling its trials with replacement "
    "past their count (default: the largest budget of a comparison is its smallest trial "
    "count; a cell with fewer trials has no value there)."
)
_TAXONOMY_HELP = "TOML or JSON file of inclusion relations; default the archive's own."


_RULE = meta(_RULE_HELP)
_REPEATS = meta(_REPEATS_HELP)
_DIVERGED = meta(_DIVERGED_HELP)
_WITH_REPLACEMENT = meta(_WITH_REPLACEMENT_HELP)
_TEST_BUDGET = meta(_TEST_BUDGET_HELP, kind=OptionKind.INT, minimum=1)
_TEST_N_BOOT = meta(_TEST_N_BOOT_HELP, flag="--n-test-boot", minimum=1)
_ALPHA = meta(_ALPHA_HELP)
_MARGIN = meta(_MARGIN_HELP, kind=OptionKind.MARGIN)
_TAXONOMY = meta(_TAXONOMY_HELP, kind=OptionKind.TAXONOMY)


# --- the options classes ----------------------------------------------------------------


@attrs.frozen
class BestOptions:
    """Options of `select_best`."""

    rule: SelectionRule = attrs.field(default=SelectionRule.FINAL_VALID, metadata=_RULE)
    repeats: RepeatMode = attrs.field(default=RepeatMode.MEAN, metadata=_REPEATS)
    diverged: DivergedMode = attrs.field(default=DivergedMode.EXCLUDE, metadata=_DIVERGED)


@attrs.frozen
class BudgetOptions:
    """Options of `budget_curve`."""

    budgets: tuple[int, ...] | None = attrs.field(
        default=None,
        metadata=meta(
            "Budget k (repeat for several); default 1, 2, 4, ... up to the smallest trial count "
            "of the compared cells.",
            kind=OptionKind.INTS,
            flag="--budget",
            minimum=1,
        ),
    )
    n_boot: int = attrs.field(default=DEFAULT_N_BOOT, metadata=meta(_N_BOOT_HELP, minimum=1))
    tolerance: float = attrs.field(
        default=0.005,
        metadata=meta(
            "Report the budget from which the median test value stays within this absolute "
            "tolerance of its value at the largest budget."
        ),
    )
    rule: SelectionRule = attrs.field(default=SelectionRule.FINAL_VALID, metadata=_RULE)
    repeats: RepeatMode = attrs.field(default=RepeatMode.MEAN, metadata=_REPEATS)
    diverged: DivergedMode = attrs.field(default=DivergedMode.EXCLUDE, metadata=_DIVERGED)
    with_replacement: bool = attrs.field(default=False, metadata=_WITH_REPLACEMENT)


@attrs.frozen
class RankOptions:
    """Options of `rank_optimizers`."""

    budget: int | None = attrs.field(
        default=None,
        metadata=meta(
            "Budget k of the rank distribution; default the smallest trial count of the compared "
            "cells.",
            kind=OptionKind.INT,
        ),
    )
    n_boot: int = attrs.field(default=DEFAULT_N_BOOT, metadata=meta(_N_BOOT_HELP, minimum=1))
    rule: SelectionRule = attrs.field(default=SelectionRule.FINAL_VALID, metadata=_RULE)
    repeats: RepeatMode = attrs.field(default=RepeatMode.MEAN, metadata=_REPEATS)
    diverged: DivergedMode = attrs.field(default=DivergedMode.EXCLUDE, metadata=_DIVERGED)
    method: RankMethod = attrs.field(
        default=RankMethod.EXACT,
        metadata=meta(
            "exact: rank probabilities in closed form (independent optimizers); bootstrap: from "
            "--n-boot drawn studies."
        ),
    )
    with_replacement: bool = attrs.field(default=False, metadata=_WITH_REPLACEMENT)


@attrs.frozen
class InclusionOptions:
    """Options of `run_inclusion` (`inclusion_consistency` with the rules as `rule` and
    `train_loss`)."""

    budget: int | None = attrs.field(default=None, metadata=_TEST_BUDGET)
    n_boot: int = attrs.field(default=DEFAULT_TEST_N_BOOT, metadata=_TEST_N_BOOT)
    rule: SelectionRule = attrs.field(default=SelectionRule.FINAL_VALID, metadata=_RULE)
    train_loss: bool = attrs.field(
        default=True,
        metadata=meta("Also check with selection by final training loss (the paper's Figure 9)."),
    )
    taxonomy: Taxonomy | None = attrs.field(default=None, metadata=_TAXONOMY)
    alpha: float = attrs.field(default=0.05, metadata=_ALPHA)
    margin: float | Mapping[str, float] | None = attrs.field(default=None, metadata=_MARGIN)
    repeats: RepeatMode = attrs.field(default=RepeatMode.MEAN, metadata=_REPEATS)


@attrs.frozen
class TargetsOptions:
    """Options of `target_study`."""

    targets: tuple[float, ...] | None = attrs.field(
        default=None,
        metadata=meta(
            "Target validation value, in the metric's units, for every workload (repeat for "
            "several); default a spread from the median to the best final value.",
            kind=OptionKind.FLOATS,
            flag="--target",
        ),
    )
    n_targets: int = attrs.field(default=5, metadata=meta("Number of default targets.", minimum=1))
    fractions: tuple[float, ...] = attrs.field(
        default=DEFAULT_FRACTIONS,
        metadata=meta(
            "Truncated step budget as a fraction of the workload's step budget (repeat for "
            "several); default 0.25, 0.5, 1.",
            kind=OptionKind.FLOATS,
            flag="--step-fraction",
        ),
    )
    budget: int | None = attrs.field(default=None, metadata=_TEST_BUDGET)
    n_boot: int = attrs.field(default=DEFAULT_TEST_N_BOOT, metadata=_TEST_N_BOOT)
    alpha: float = attrs.field(default=0.05, metadata=_ALPHA)
    margin: float | Mapping[str, float] | None = attrs.field(default=None, metadata=_MARGIN)
    taxonomy: Taxonomy | None = attrs.field(
        default=None,
        metadata=meta("TOML or JSON file of inclusion relations.", kind=OptionKind.TAXONOMY),
    )


@attrs.frozen
class BoundaryOptions:
    """Options of `boundary_check`."""

    top: int = attrs.field(
        default=3, metadata=meta("How many of the best trials to check.", minimum=1)
    )
    fraction: float = attrs.field(
        default=0.05,
        metadata=meta(
            "Distance from an edge, as a fraction of the space's width in its search scale "
            "(log10 x, log10(1 - x), or x), that counts as at the edge."
        ),
    )
    rule: SelectionRule = attrs.field(default=SelectionRule.FINAL_VALID, metadata=_RULE)


@attrs.frozen
class ProtocolOptions:
    """Options of `run_protocol`."""

    protocols: tuple[str, str] | None = attrs.field(
        default=None,
        metadata=meta(
            "Give twice. One archive: the two search-space names (space_name) to compare, e.g. "
            "lr-only and choi2019 (default: its two spaces, the one searching fewer "
            "hyperparameters first). Two archives: their labels.",
            kind=OptionKind.PROTOCOLS,
            flag="--protocol",
        ),
    )
    match: Match | None = attrs.field(
        default=None,
        metadata=meta(
            "Pair optimizers by name or family; default name for two archives, family within one.",
            kind=OptionKind.ENUM,
            enum=Match,
        ),
    )
    rule: SelectionRule = attrs.field(default=SelectionRule.FINAL_VALID, metadata=_RULE)
    budget: int | None = attrs.field(default=None, metadata=_TEST_BUDGET)
    n_boot: int = attrs.field(default=DEFAULT_TEST_N_BOOT, metadata=_TEST_N_BOOT)
    alpha: float = attrs.field(default=0.05, metadata=_ALPHA)


@attrs.frozen
class AggregateOptions:
    """Options of `aggregate_scores` (reference scores given imply
    normalisation "reference")."""

    unit: Unit = attrs.field(
        default=Unit.AUTO,
        metadata=meta(
            "What is resampled per workload and optimizer: trial (one tuning study, repeats "
            "averaged), repeat (every seed/study is its own tuning study), or auto (repeat where "
            "every repeat is a whole study, as AlgoPerf's, else trial)."
        ),
    )
    budget: int | None = attrs.field(
        default=None,
        metadata=meta(
            "Trials per tuning study (unit trial); default the smallest trial count of the "
            "compared cells. Intervals need a budget of at most half every cell's count.",
            kind=OptionKind.INT,
            minimum=1,
        ),
    )
    normalisation: Normalisation = attrs.field(
        default=Normalisation.TARGETS,
        metadata=meta(
            "Score 0 and 1 per workload: targets (0 = the untrained model's test value, 1 = the "
            "archive's target), reference (a --reference-scores file), identity (values already "
            "normalised, larger better), or minmax-compared (1 = best value seen, 0 = the worst "
            "compared optimizer: changes when an optimizer is added).",
            flag="--normalise",
        ),
    )
    reference_scores: ReferenceScores | None = attrs.field(
        default=None,
        metadata=meta(
            "TOML file with a table per workload holding `zero` and `one`, the test values that "
            "score 0 and 1 (implies --normalise reference).",
            kind=OptionKind.REFERENCE_SCORES,
        ),
    )
    reference: str | None = attrs.field(
        default=None,
        metadata=meta(
            "With --normalise minmax-compared: the optimizer whose tuned value scores 0 (default "
            "the worst one on each workload).",
            kind=OptionKind.STR,
        ),
    )
    n_boot: int = attrs.field(
        default=DEFAULT_N_BOOT_AGGREGATE,
        metadata=meta("Stratified bootstrap replicates.", minimum=1),
    )
    confidence: float = attrs.field(
        default=0.95, metadata=meta("Level of the (expanded) percentile intervals.")
    )
    rule: SelectionRule = attrs.field(default=SelectionRule.FINAL_VALID, metadata=_RULE)
    with_replacement: bool = attrs.field(default=False, metadata=_WITH_REPLACEMENT)


@attrs.frozen
class ProfilesOptions:
    """Options of `performance_profiles`."""

    measure: Measure = attrs.field(
        default=Measure.AUTO,
        metadata=meta(
            "Time to target in recorded time or in steps; auto: time where the archive records any."
        ),
    )
    max_tau: float = attrs.field(
        default=4.0, metadata=meta("Largest ratio to the fastest optimizer shown.")
    )
    budget: int | None = attrs.field(
        default=None,
        metadata=meta(
            "Trials per study whose fastest sets the study's time; default the smallest trial "
            "count of the compared cells.",
            kind=OptionKind.INT,
            minimum=1,
        ),
    )
    with_replacement: bool = attrs.field(default=False, metadata=_WITH_REPLACEMENT)


# --- the registry -----------------------------------------------------------------------


@functools.cache
def _resolve(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@attrs.frozen
class Analysis:
    """One analysis: its name, report title, one-line summary, options class, run function
    and result type ("module:attribute", imported on first use), whether it takes `rng`,
    and whether it takes an optional second archive (positional, after the first)."""

    name: str
    title: str
    summary: str
    options: type
    function: str
    result: str
    randomised: bool = True
    second_archive: bool = False

    def option_specs(self) -> tuple[OptionSpec, ...]:
        """The analysis's options, in field order."""
        return option_specs(self.options)

    def function_object(self) -> Callable[..., Any]:
        """The run function `f(archive, /, *, <options>, rng)` (imported on first call)."""
        return cast("Callable[..., Any]", _resolve(self.function))

    def result_type(self) -> type:
        """The class of the analysis's result (imported on first call)."""
        return cast("type", _resolve(self.result))

    def run(
        self,
        archive: xr.Dataset,
        second: xr.Dataset | None = None,
        /,
        *,
        options: Any = None,
        rng: np.random.Generator | None = None,
        **overrides: Any,
    ) -> Any:
        """Run the analysis on `archive` (and `second`, where it takes one) with `options`
        (default: the options class's defaults) and `overrides` of single options."""
        if options is None:
            options = self.options()
        elif not isinstance(options, self.options):
            raise TypeError(
                f"{self.name}: options must be {self.options.__name__}, "
                f"not {type(options).__name__}"
            )
        if overrides:
            options = attrs.evolve(options, **overrides)
        kwargs = attrs.asdict(options, recurse=False)
        if self.randomised:
            if rng is None:
                raise TypeError(f"{self.name}: rng is required")
            kwargs["rng"] = rng
        args = (archive,) if second is None else (archive, second)
        if second is not None and not self.second_archive:
            raise TypeError(f"{self.name}: takes one archive")
        return self.function_object()(*args, **kwargs)


_M = "optcmp_analysis."

#: Every built-in analysis: the one list of their names. Its order is the order of
#: `optcmp analyze`'s commands, `optcmp plot`'s kinds and the report's sections (the CLI
#: adds nothing to it: each analysis's CLI module is found by its name,
#: cli/optcmp_cli/_analyses.py). Analyses registered by other modules follow it.
ANALYSES: tuple[Analysis, ...] = (
    Analysis(
        "best",
        "Selected trials",
        "The best trial of every workload and optimizer under a selection rule, with its "
        "hyperparameters, selection value and test value.",
        BestOptions,
        _M + "_selection:select_best",
        _M + "_selection:Selection",
        randomised=False,
    ),
    Analysis(
        "budget",
        "Budget sensitivity",
        "Best-of-k outcome against the budget k (the paper's Figures 6-8).",
        BudgetOptions,
        _M + "_budget:budget_curve",
        _M + "_budget:BudgetCurve",
    ),
    Analysis(
        "rank",
        "Rankings",
        "Rank the optimizers of every workload by their selected trial's test metric, with "
        "rank probabilities at budget k.",
        RankOptions,
        _M + "_rank:rank_optimizers",
        _M + "_rank:Rankings",
    ),
    Analysis(
        "aggregate",
        "Across workloads",
        "Across workloads, rliable-style: normalised scores of the tuned optimizers, their "
        "IQM, mean, median and optimality gap, and the probability of improvement.",
        AggregateOptions,
        _M + "_aggregate:aggregate_scores",
        _M + "_aggregate:AggregateScores",
    ),
    Analysis(
        "profiles",
        "Time-to-target profiles",
        "Time-to-target performance profiles (AlgoPerf style).",
        ProfilesOptions,
        _M + "_profiles:performance_profiles",
        _M + "_profiles:PerformanceProfiles",
        randomised=False,
    ),
    Analysis(
        "inclusion",
        "Inclusion consistency",
        "Inclusion consistency: for every special ⊆ general pair and workload, is the tuned "
        "general optimizer worse than the one it includes?",
        InclusionOptions,
        _M + "_inclusion:run_inclusion",
        _M + "_inclusion:InclusionResult",
    ),
    Analysis(
        "targets",
        "Steps to target",
        "Target independence (the paper's Figure 10): steps and time to reach target "
        "validation values under truncated step budgets.",
        TargetsOptions,
        _M + "_targets:target_study",
        _M + "_targets:TargetStudy",
    ),
    Analysis(
        "boundary",
        "Boundary check",
        "Boundary check: do the best trials of each optimizer sit at an edge of a "
        "hyperparameter's search space?",
        BoundaryOptions,
        _M + "_boundary:boundary_check",
        _M + "_boundary:BoundaryCheck",
        randomised=False,
    ),
    Analysis(
        "protocol",
        "Protocol sensitivity",
        "Protocol sensitivity: rank the optimizers of each workload under two tuning "
        "protocols (two archives, or two search spaces of one archive).",
        ProtocolOptions,
        _M + "_protocol:run_protocol",
        _M + "_protocol:ProtocolComparison",
        second_archive=True,
    ),
)


# Analyses added by other modules (`register`), after the built-in ones.
_REGISTERED: list[Analysis] = []


def register(analysis: Analysis) -> Analysis:
    """Add an analysis defined outside this package's table (an extension: its module
    declares the options class, the run function and the result type, and calls this at
    import); AnalysisError if its name is taken. Returns `analysis`."""
    if any(a.name == analysis.name for a in analyses()):
        from optcmp_analysis._errors import AnalysisError

        raise AnalysisError(f"analysis {analysis.name!r} is already registered")
    option_specs(analysis.options)  # every field declares its help: fail here, not later
    _REGISTERED.append(analysis)
    return analysis


def analyses() -> tuple[Analysis, ...]:
    """Every analysis: the built-in ones (`ANALYSES`), then the registered ones."""
    return (*ANALYSES, *_REGISTERED)


def analysis_named(name: str) -> Analysis:
    """The analysis called `name` (AnalysisError naming the choices when there is none)."""
    for a in analyses():
        if a.name == name:
            return a
    from optcmp_analysis._errors import AnalysisError

    raise AnalysisError(
        f"{name!r}: no such analysis; choose one of {', '.join(a.name for a in analyses())}"
    )
