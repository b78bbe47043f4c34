"""The closed sets and defaults of the analyses' options, importable without numpy.

Dependency rule: the standard library only. The analysis registry (_registry.py) and the
CLI's option declarations read these without loading the statistics; the modules that
use them re-export them, so each enum and default has this one definition.
"""

from __future__ import annotations

import enum

__all__ = [
    "BUDGET_RULE",
    "DEFAULT_FRACTIONS",
    "DEFAULT_N_BOOT",
    "DEFAULT_N_BOOT_AGGREGATE",
    "DEFAULT_PLAN_BUDGET",
    "DEFAULT_POWER",
    "DEFAULT_TEST_N_BOOT",
    "MARGIN_RULE",
    "ConditionKind",
    "DeepobsMode",
    "DivergedMode",
    "Edge",
    "Match",
    "Measure",
    "Normalisation",
    "RankMethod",
    "RepeatMode",
    "SelectionRule",
    "Unit",
]

# Bootstrap replicates of the budget curve and the rank distributions.
DEFAULT_N_BOOT = 10_000
# Bootstrap resamples per test: the smallest p-value is 1 / (n_boot + 1).
DEFAULT_TEST_N_BOOT = 1999
# Stratified bootstrap replicates of the aggregate scores.
DEFAULT_N_BOOT_AGGREGATE = 2000
# The default budget of the tests, in words (every record and sentence names the k it used).
BUDGET_RULE = "k = max(1, floor(N / 4)), N the smaller study"
# The default non-inferiority margin of a workload, in words.
MARGIN_RULE = "half the IQR of the best quarter of the workload's test values"
# Truncated step budgets of the target study, as fractions of a workload's step budget.
DEFAULT_FRACTIONS = (0.25, 0.5, 1.0)
# The planner's defaults: the power a plan asks for, and the budget k of the studies it plans.
DEFAULT_POWER = 0.8
DEFAULT_PLAN_BUDGET = 16


class SelectionRule(enum.StrEnum):
    """How the best trial of a (workload, optimizer) cell is chosen."""

    FINAL_VALID = "final-valid"  # final metric on the archive's selection split (the paper)
    BEST_VALID = "best-valid"  # best metric on the selection split over the run
    FINAL_TRAIN_LOSS = "final-train-loss"  # lowest final training loss (the paper's Fig. 9)
    DEEPOBS_FINAL = "deepobs-final"  # DeepOBS: mean over seeds of the final value
    DEEPOBS_BEST = "deepobs-best"  # DeepOBS: best over evaluations of the seed-mean curve


class RepeatMode(enum.StrEnum):
    """What to do with repeat axes (seed, study)."""

    MEAN = "mean"  # a trial's score is the mean over its runs
    PER_REPEAT = "per-repeat"  # select separately in every repeat (repeat dims broadcast)


class DivergedMode(enum.StrEnum):
    """What a diverged trial counts as."""

    EXCLUDE = "exclude"  # unusable: never selected; a study of only such trials has no result
    WORST = "worst"  # usable, with the worst value of its workload


class RankMethod(enum.StrEnum):
    """How rank distributions at a budget are computed."""

    EXACT = "exact"  # closed form from order statistics (independent optimizers)
    BOOTSTRAP = "bootstrap"  # n_boot drawn studies per optimizer


class Unit(enum.StrEnum):
    """What one independent unit of evidence per (workload, optimizer) is."""

    AUTO = "auto"  # repeat where every repeat is a whole tuning study, else trial
    TRIAL = "trial"  # a trial of the (single) tuning study; repeats averaged
    REPEAT = "repeat"  # a whole tuning study (seed/study repeat) and its selected trial


class Normalisation(enum.StrEnum):
    """Where a workload's score 0 and score 1 come from."""

    TARGETS = "targets"  # 0: the untrained model's test value; 1: the workload's target
    REFERENCE = "reference"  # 0 and 1 from a reference-scores file, per workload
    IDENTITY = "identity"  # the values as they are (already normalised, larger is better)
    MINMAX_COMPARED = "minmax-compared"  # 1: best value seen, 0: a compared optimizer's


class Measure(enum.StrEnum):
    """What "time to target" counts."""

    AUTO = "auto"  # time where the archive records any, else steps
    TIME = "time"
    STEPS = "steps"


class Match(enum.StrEnum):
    """How optimizers of the two protocols are paired."""

    NAME = "name"  # the same optimizer label (two archives only)
    FAMILY = "family"  # the same optimizer family (each family once per protocol)


class ConditionKind(enum.StrEnum):
    """The two kinds of condition of the target study (see _targets.py)."""

    STEPS = "steps"
    FINAL = "final"


class Edge(enum.StrEnum):
    """Where the top trials of one hyperparameter sit."""

    NONE = "none"
    LOW = "low"
    HIGH = "high"
    BOTH = "both"


class DeepobsMode(enum.StrEnum):
    """How the DeepOBS analyser ranks settings."""

    FINAL = "final"
    BEST = "best"
