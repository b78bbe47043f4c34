"""optcmp_analysis: the statistics of optimizer comparisons, from stored archives only.

Dependency rule: numpy, scipy, statsmodels, xarray, attrs and optcmp_data; never torch,
the simulation package `optcmp`, or the CLI libraries. Every analysis takes an archive
positionally and options by keyword, takes randomness as an explicit
`rng: np.random.Generator`, prints nothing, and returns a frozen record with
`.to_dataset()` and `.to_json()`.

Loading: the public names are resolved lazily (`_LAZY` below), so `import optcmp_analysis`
imports nothing heavy, and the options' enums and defaults (`_enums`, standard library
only) load without numpy, xarray or scipy: the CLI declares its options from them and
answers `--help` without loading the statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optcmp_data import lazy_getattr

if TYPE_CHECKING:
    from optcmp_analysis._aggregate import (
        AGGREGATE_STATISTICS,
        AggregateScores,
        ReferenceScores,
        aggregate_scores,
    )
    from optcmp_analysis._boundary import BoundaryCheck, boundary_check
    from optcmp_analysis._budget import BudgetCurve, budget_curve, default_budgets
    from optcmp_analysis._enums import (
        BUDGET_RULE,
        DEFAULT_N_BOOT,
        DEFAULT_PLAN_BUDGET,
        DEFAULT_POWER,
        DEFAULT_TEST_N_BOOT,
        MARGIN_RULE,
        ConditionKind,
        DeepobsMode,
        DivergedMode,
        Match,
        Measure,
        Normalisation,
        RankMethod,
        RepeatMode,
        SelectionRule,
        Unit,
    )
    from optcmp_analysis._errors import AnalysisError
    from optcmp_analysis._estimator import default_budget, min_test_trials
    from optcmp_analysis._inclusion import InclusionResult, Verdict, inclusion_consistency
    from optcmp_analysis._peer import AlgoperfScore, DeepobsReport, algoperf_score, deepobs_report
    from optcmp_analysis._plan import TrialPlan, default_trial_grid, plan_trials
    from optcmp_analysis._profiles import PerformanceProfiles, performance_profiles
    from optcmp_analysis._protocol import ProtocolComparison, protocol_sensitivity
    from optcmp_analysis._rank import P_BEST_CAVEAT, Rankings, rank_optimizers
    from optcmp_analysis._records import Result, restrict
    from optcmp_analysis._registry import (
        Analysis,
        OptionKind,
        OptionSpec,
        analyses,
        analysis_named,
        meta,
        register,
    )
    from optcmp_analysis._selection import Selection, TrialScores, select_best, trial_scores
    from optcmp_analysis._targets import TargetStudy, target_study

# Public name -> the module of this package that defines it, imported on first use
# (PEP 562): importing the package costs nothing, each name loads only its own module.
# Adding a public name: a line here, its import above (for type checkers) and its entry
# in __all__ (tests/test_public_api.py checks that the three agree).
_LAZY: dict[str, str] = {
    "AGGREGATE_STATISTICS": "_aggregate",
    "BUDGET_RULE": "_enums",
    "DEFAULT_N_BOOT": "_enums",
    "DEFAULT_PLAN_BUDGET": "_enums",
    "DEFAULT_POWER": "_enums",
    "DEFAULT_TEST_N_BOOT": "_enums",
    "MARGIN_RULE": "_enums",
    "P_BEST_CAVEAT": "_rank",
    "AggregateScores": "_aggregate",
    "AlgoperfScore": "_peer",
    "Analysis": "_registry",
    "AnalysisError": "_errors",
    "BoundaryCheck": "_boundary",
    "BudgetCurve": "_budget",
    "ConditionKind": "_enums",
    "DeepobsMode": "_enums",
    "DeepobsReport": "_peer",
    "DivergedMode": "_enums",
    "InclusionResult": "_inclusion",
    "Match": "_enums",
    "Measure": "_enums",
    "Normalisation": "_enums",
    "OptionKind": "_registry",
    "OptionSpec": "_registry",
    "PerformanceProfiles": "_profiles",
    "ProtocolComparison": "_protocol",
    "RankMethod": "_enums",
    "Rankings": "_rank",
    "ReferenceScores": "_aggregate",
    "RepeatMode": "_enums",
    "Result": "_records",
    "Selection": "_selection",
    "SelectionRule": "_enums",
    "TargetStudy": "_targets",
    "TrialPlan": "_plan",
    "TrialScores": "_selection",
    "Unit": "_enums",
    "Verdict": "_inclusion",
    "aggregate_scores": "_aggregate",
    "algoperf_score": "_peer",
    "analyses": "_registry",
    "analysis_named": "_registry",
    "boundary_check": "_boundary",
    "budget_curve": "_budget",
    "deepobs_report": "_peer",
    "default_budget": "_estimator",
    "default_budgets": "_budget",
    "default_trial_grid": "_plan",
    "inclusion_consistency": "_inclusion",
    "min_test_trials": "_estimator",
    "meta": "_registry",
    "performance_profiles": "_profiles",
    "plan_trials": "_plan",
    "protocol_sensitivity": "_protocol",
    "rank_optimizers": "_rank",
    "register": "_registry",
    "restrict": "_records",
    "select_best": "_selection",
    "target_study": "_targets",
    "trial_scores": "_selection",
}

__all__ = [
    "AGGREGATE_STATISTICS",
    "BUDGET_RULE",
    "DEFAULT_N_BOOT",
    "DEFAULT_PLAN_BUDGET",
    "DEFAULT_POWER",
    "DEFAULT_TEST_N_BOOT",
    "MARGIN_RULE",
    "P_BEST_CAVEAT",
    "AggregateScores",
    "AlgoperfScore",
    "Analysis",
    "AnalysisError",
    "BoundaryCheck",
    "BudgetCurve",
    "ConditionKind",
    "DeepobsMode",
    "DeepobsReport",
    "DivergedMode",
    "InclusionResult",
    "Match",
    "Measure",
    "Normalisation",
    "OptionKind",
    "OptionSpec",
    "PerformanceProfiles",
    "ProtocolComparison",
    "RankMethod",
    "Rankings",
    "ReferenceScores",
    "RepeatMode",
    "Result",
    "Selection",
    "SelectionRule",
    "TargetStudy",
    "TrialPlan",
    "TrialScores",
    "Unit",
    "Verdict",
    "aggregate_scores",
    "algoperf_score",
    "analyses",
    "analysis_named",
    "boundary_check",
    "budget_curve",
    "deepobs_report",
    "default_budget",
    "default_budgets",
    "default_trial_grid",
    "inclusion_consistency",
    "meta",
    "min_test_trials",
    "performance_profiles",
    "plan_trials",
    "protocol_sensitivity",
    "rank_optimizers",
    "register",
    "restrict",
    "select_best",
    "target_study",
    "trial_scores",
]


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all
    __getattr__ = lazy_getattr(__name__, _LAZY, globals())

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})
