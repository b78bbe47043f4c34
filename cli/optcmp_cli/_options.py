"""Typer option and argument types shared by the CLI's commands.

Dependency rule: typer and optcmp_analysis's enums only. One definition per option, so
`--workload` or `--rule` reads the same in every command that takes it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

import typer

from optcmp_analysis import (
    BUDGET_RULE,
    MARGIN_RULE,
    DivergedMode,
    Normalisation,
    RepeatMode,
    SelectionRule,
    Unit,
)
from optcmp_data import ConfigError

__all__ = [
    "DEFAULT_ALPHA",
    "AlphaOpt",
    "ArchiveArg",
    "DivergedOpt",
    "JsonOpt",
    "MarginOpt",
    "MarginsOpt",
    "NBootOpt",
    "NormaliseOpt",
    "OptimizerOpt",
    "ReferenceScoresOpt",
    "RepeatsOpt",
    "RuleOpt",
    "SeedOpt",
    "TestBootOpt",
    "TestBudgetOpt",
    "TestSeedOpt",
    "UnitOpt",
    "WithReplacementOpt",
    "WorkloadOpt",
    "margin_option",
]

ArchiveArg = Annotated[
    Path, typer.Argument(help="Archive file (.nc) or study directory of shards.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")]
WorkloadOpt = Annotated[
    list[str] | None,
    typer.Option("--workload", "-w", help="Only this workload (repeat the option for more)."),
]
OptimizerOpt = Annotated[
    list[str] | None,
    typer.Option("--optimizer", "-o", help="Only this optimizer (repeat the option for more)."),
]
RuleOpt = Annotated[
    SelectionRule,
    typer.Option(
        "--rule",
        help="Selection rule: final-valid (final metric on the archive's selection split), "
        "best-valid, final-train-loss, deepobs-final, deepobs-best.",
    ),
]
RepeatsOpt = Annotated[
    RepeatMode,
    typer.Option("--repeats", help="Repeat axes (seeds, studies): average them, or per-repeat."),
]
DivergedOpt = Annotated[
    DivergedMode,
    typer.Option(
        "--diverged",
        help="A diverged trial: exclude (never selected; a study of only such trials has no "
        "result, shown as the no-result share) or worst (scored as the worst usable value "
        "of its workload).",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap (reproducible).")]
NBootOpt = Annotated[int, typer.Option("--n-boot", min=1, help="Bootstrap replicates.")]
TestBootOpt = Annotated[
    int,
    typer.Option(
        "--n-test-boot",
        min=1,
        help="Bootstrap resamples per inclusion or protocol test (the smallest p-value is "
        "1/(n+1)).",
    ),
]
TestSeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed of the tests' bootstrap resamples (reproducible).")
]
TestBudgetOpt = Annotated[
    int | None,
    typer.Option(
        "--budget",
        min=1,
        help=f"Budget k tested (expected best-of-k); default {BUDGET_RULE}, the largest "
        "budget at which the test keeps its level in the calibration suite. At k = N the "
        "difference is shown without a test.",
    ),
]
AlphaOpt = Annotated[
    float,
    typer.Option(
        "--alpha",
        help="Level of the one-sided tests (Holm within each family) and of the interval "
        "(1 - 2 alpha).",
    ),
]
MarginOpt = Annotated[
    float | None,
    typer.Option(
        "--margin",
        # No min= here: the analysis refuses a negative margin in one line, as the number
        # check refuses inf and nan, where click's range check would print a usage block.
        help="Non-inferiority margin in the metric's units (>= 0) for every workload: "
        "'consistent' needs evidence that the general optimizer is worse by less than this. "
        f"Default per workload: {MARGIN_RULE}.",
    ),
]
WithReplacementOpt = Annotated[
    bool,
    typer.Option(
        "--with-replacement",
        help="Allow budgets above a cell's trial count by resampling its trials with "
        "replacement past their count (default: the largest budget of a comparison is its "
        "smallest trial count; a cell with fewer trials has no value there).",
    ),
]
UnitOpt = Annotated[
    Unit,
    typer.Option(
        "--unit",
        help="What is resampled per workload and optimizer: trial (one tuning study, repeats "
        "averaged), repeat (every seed/study is its own tuning study), or auto (repeat where "
        "every repeat is a whole study, as AlgoPerf's, else trial).",
    ),
]
NormaliseOpt = Annotated[
    Normalisation,
    typer.Option(
        "--normalise",
        help="Score 0 and 1 per workload: targets (0 = the untrained model's test value, 1 = "
        "the archive's target), reference (a --reference-scores file), identity (values "
        "already normalised, larger better), or minmax-compared (1 = best value seen, 0 = "
        "the worst compared optimizer: changes when an optimizer is added).",
    ),
]
ReferenceScoresOpt = Annotated[
    Path | None,
    typer.Option(
        "--reference-scores",
        help="TOML file with a table per workload holding `zero` and `one`, the test values "
        "that score 0 and 1 (implies --normalise reference).",
    ),
]
MarginsOpt = Annotated[
    Path | None,
    typer.Option(
        "--margins",
        help="TOML file of per-workload margins (lines `workload = 0.005`, or a [margins] "
        "table); workloads it does not name get --margin or the default rule.",
    ),
]

# The inference options' defaults (one definition, shared by analyze, plot and report).
DEFAULT_ALPHA = 0.05


def margin_option(margin: float | None, margins: Path | None) -> float | dict[str, float] | None:
    """What --margin and --margins ask for, as `inclusion_consistency`'s `margin`: None (the
    default rule), one number, or a workload -> margin table (--margin, if given, under the
    key "*": every workload the file does not name). ConfigError naming the file for an
    unreadable or malformed table."""
    if margins is None:
        return margin
    try:
        table = tomllib.loads(margins.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{margins}: not a readable TOML file ({exc})") from None
    inner = table.get("margins", table)
    if not isinstance(inner, dict):
        raise ConfigError(f"{margins}: [margins] must be a table of workload = margin")
    out: dict[str, float] = {}
    for name, value in inner.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ConfigError(
                f"{margins}: margin of workload {name!r} must be a non-negative number, "
                f"not {value!r}"
            )
        out[str(name)] = float(value)
    if margin is not None:
        out["*"] = float(margin)
    return out
