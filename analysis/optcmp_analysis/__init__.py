"""optcmp_analysis: the statistics of optimizer comparisons, from stored archives only.

Dependency rule: numpy, scipy, statsmodels, xarray, attrs and optcmp_data; never torch,
the simulation package `optcmp`, or the CLI libraries. Every analysis takes an archive
positionally and options by keyword, takes randomness as an explicit
`rng: np.random.Generator`, prints nothing, and returns a frozen record with
`.to_dataset()` and `.to_json()`.
"""

from optcmp_analysis._aggregate import (
    AGGREGATE_STATISTICS,
    MIN_INTERVAL_WORKLOADS,
    AggregateScores,
    Normalisation,
    ReferenceScores,
    Unit,
    aggregate_scores,
    interquartile_mean,
    probability_of_improvement,
    stratified_bootstrap,
)
from optcmp_analysis._boundary import BoundaryCheck, Edge, boundary_check, scaled_position
from optcmp_analysis._budget import (
    DEFAULT_N_BOOT,
    BudgetCurve,
    best_of_k_draws,
    budget_curve,
    default_budgets,
)
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._estimator import BUDGET_RULE, DEFAULT_TEST_N_BOOT, default_budget
from optcmp_analysis._inclusion import (
    InclusionResult,
    Verdict,
    inclusion_consistency,
)
from optcmp_analysis._margins import MARGIN_RULE
from optcmp_analysis._peer import (
    AlgoperfScore,
    DeepobsMode,
    DeepobsReport,
    algoperf_score,
    algoperf_study_times,
    deepobs_report,
)
from optcmp_analysis._plan import (
    DEFAULT_PLAN_BUDGET,
    DEFAULT_POWER,
    Goal,
    TrialPlan,
    default_trial_grid,
    plan_trials,
)
from optcmp_analysis._profiles import Measure, PerformanceProfiles, performance_profiles
from optcmp_analysis._protocol import Match, ProtocolComparison, protocol_sensitivity
from optcmp_analysis._rank import (
    P_BEST_CAVEAT,
    Rankings,
    RankMethod,
    rank_optimizers,
    rank_values,
)
from optcmp_analysis._records import Result, restrict
from optcmp_analysis._registry import (
    ANALYSES,
    Analysis,
    OptionKind,
    OptionSpec,
    analyses,
    analysis_named,
    meta,
    register,
)
from optcmp_analysis._selection import (
    DivergedMode,
    RepeatMode,
    Selection,
    SelectionRule,
    TrialScores,
    select_best,
    trial_scores,
)
from optcmp_analysis._targets import (
    ConditionKind,
    TargetStudy,
    first_reach,
    steps_to_target,
    target_study,
)

__all__ = [
    "AGGREGATE_STATISTICS",
    "ANALYSES",
    "BUDGET_RULE",
    "DEFAULT_N_BOOT",
    "DEFAULT_PLAN_BUDGET",
    "DEFAULT_POWER",
    "DEFAULT_TEST_N_BOOT",
    "MARGIN_RULE",
    "MIN_INTERVAL_WORKLOADS",
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
    "Edge",
    "Goal",
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
    "algoperf_study_times",
    "analyses",
    "analysis_named",
    "best_of_k_draws",
    "boundary_check",
    "budget_curve",
    "deepobs_report",
    "default_budget",
    "default_budgets",
    "default_trial_grid",
    "first_reach",
    "inclusion_consistency",
    "interquartile_mean",
    "meta",
    "performance_profiles",
    "plan_trials",
    "probability_of_improvement",
    "protocol_sensitivity",
    "rank_optimizers",
    "rank_values",
    "register",
    "restrict",
    "scaled_position",
    "select_best",
    "steps_to_target",
    "stratified_bootstrap",
    "target_study",
    "trial_scores",
]
