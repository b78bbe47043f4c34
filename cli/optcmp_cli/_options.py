"""Typer option and argument types shared by the CLI's commands.

Dependency rule: typer and optcmp_analysis's enums only. One definition per option, so
`--workload` or `--rule` reads the same in every command that takes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from optcmp_analysis import DivergedMode, Normalisation, RepeatMode, SelectionRule, Unit

__all__ = [
    "ArchiveArg",
    "DivergedOpt",
    "JsonOpt",
    "MarginOpt",
    "NBootOpt",
    "NPermOpt",
    "NormaliseOpt",
    "OptimizerOpt",
    "PermSeedOpt",
    "ReferenceScoresOpt",
    "RepeatsOpt",
    "RuleOpt",
    "SeedOpt",
    "UnitOpt",
    "WithReplacementOpt",
    "WorkloadOpt",
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
PermSeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        help="Seed of the random splits, used where the permutation distribution is sampled "
        "(reproducible).",
    ),
]
NBootOpt = Annotated[int, typer.Option("--n-boot", min=1, help="Bootstrap replicates.")]
NPermOpt = Annotated[
    int,
    typer.Option(
        "--n-perm",
        min=1,
        help="Random splits per permutation test where it is not enumerated exactly (the "
        "smallest p-value is 1/(n+1)).",
    ),
]
MarginOpt = Annotated[
    float,
    typer.Option(
        "--margin",
        # No min= here: the analysis refuses a negative margin in one line, as the number
        # check refuses inf and nan, where click's range check would print a usage block.
        help="Non-inferiority margin in the metric's units (>= 0): 'consistent' needs "
        "evidence that the general optimizer is worse by less than this.",
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
