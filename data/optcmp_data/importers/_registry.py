"""The one list of importers: each one's name, reader, help and options, as data.

Dependency rule: attrs, the standard library and `optcmp_data._errors` only: this module
is read to build `optcmp import NAME --help`, so it imports no importer (their modules
load numpy, xarray and pandas) and no CLI library. A reader is named as
"module:function" and imported when an import runs.

Adding an importer is one module with its reader plus one `Importer` entry here (or one
`register_importer` call from any module, for a plug-in): the CLI builds one
`optcmp import NAME` command per entry from its `options` and `help`, adds `--out`,
`--skip-bad` and `--json`, and calls the reader with the options' values.
"""

from __future__ import annotations

import enum
import importlib
import keyword
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from optcmp_data._errors import ConfigError

if TYPE_CHECKING:
    from optcmp_data.importers._common import ImportResult

__all__ = [
    "IMPORTERS",
    "RESERVED_OPTIONS",
    "TABLE_FORMATS",
    "Draft",
    "ImportOption",
    "Importer",
    "OptionKind",
    "Ruleset",
    "register_importer",
]


#: Table formats `optcmp export` writes and the table importer reads (parquet with the extra).
TABLE_FORMATS = ("csv", "parquet")


class Ruleset(enum.StrEnum):
    """The two AlgoPerf rulesets."""

    EXTERNAL_TUNING = "external_tuning"
    SELF_TUNING = "self_tuning"


class OptionKind(enum.Enum):
    """What an importer option's value is, as the reader receives it."""

    PATH = "path"  # a file or folder: pathlib.Path
    TEXT = "text"  # str
    INT = "int"  # int
    FLOAT = "float"  # float, finite
    FLAG = "flag"  # bool, False unless given
    CHOICE = "choice"  # one of `choices`, as str
    PAIRS = "pairs"  # repeatable NAME=VALUE: dict[str, str] (empty when not given)


#: Parameters every import command has (the CLI adds them): the archive to write, the
#: bad-input policy, JSON output, the mapping draft; `command` is passed to the reader.
RESERVED_OPTIONS = frozenset({"out", "skip_bad", "json_out", "infer", "command"})

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def _check_name(what: str, name: str) -> None:
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ConfigError(
            f"{what} {name!r}: expected lower-case letters, digits and _ (a Python name)"
        )


@attrs.frozen
class ImportOption:
    """One option of an importer, as the command line shows it and the reader takes it.

    `name` is the reader's parameter; the command-line option is `--name` with `_` as `-`
    (`flag` to choose another). An `argument` is positional on the command line (SRC);
    `positional` ones are passed to the reader by position, in declaration order (its
    positional-only parameters), the others by keyword. Optional options default to
    `default` (None: not given); `required` ones have none. `metavar` overrides the
    placeholder shown in the help (default: from the kind: <path>, <str>, <a|b>).
    """

    name: str
    kind: OptionKind
    help: str
    default: str | bool | int | float | None = None
    required: bool = False
    argument: bool = False
    positional: bool = False
    choices: tuple[str, ...] = ()
    metavar: str = ""
    flag: str = ""

    def __attrs_post_init__(self) -> None:
        _check_name("importer option", self.name)
        if self.name in RESERVED_OPTIONS:
            raise ConfigError(
                f"importer option {self.name!r}: the import commands give it themselves "
                f"(reserved: {', '.join(sorted(RESERVED_OPTIONS))})"
            )
        if self.flag and not re.match(r"--[a-z][a-z0-9-]*\Z", self.flag):
            raise ConfigError(f"importer option {self.name!r}: flag {self.flag!r} is not --name")
        if self.argument and not self.required:
            raise ConfigError(f"importer option {self.name!r}: an argument must be required")
        if self.required and self.default is not None:
            raise ConfigError(f"importer option {self.name!r}: required, so it has no default")
        if (self.kind is OptionKind.CHOICE) != bool(self.choices):
            raise ConfigError(f"importer option {self.name!r}: choices go with kind CHOICE only")
        if self.kind is OptionKind.CHOICE and self.default not in (None, *self.choices):
            raise ConfigError(
                f"importer option {self.name!r}: default {self.default!r} is not one of "
                f"{', '.join(self.choices)}"
            )
        if self.kind is OptionKind.FLAG and (self.required or self.default not in (None, False)):
            raise ConfigError(f"importer option {self.name!r}: a flag is off unless given")
        number: dict[OptionKind, tuple[type, ...]] = {
            OptionKind.INT: (int,),
            OptionKind.FLOAT: (int, float),
        }
        if (
            self.kind in number
            and self.default is not None
            and (isinstance(self.default, bool) or not isinstance(self.default, number[self.kind]))
        ):
            raise ConfigError(
                f"importer option {self.name!r}: default {self.default!r} is not "
                f"{'an integer' if self.kind is OptionKind.INT else 'a number'}"
            )
        if self.kind is OptionKind.PAIRS and (self.required or self.argument):
            raise ConfigError(f"importer option {self.name!r}: NAME=VALUE options are optional")

    @property
    def option(self) -> str:
        """The command-line option (`--name`), or the argument's name."""
        if self.argument:
            return self.name
        return self.flag or "--" + self.name.replace("_", "-")


def _load(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return function


@attrs.frozen
class Draft:
    """An importer that can guess its own mapping: the command gets `--infer`, which
    prints what `writer(argument)` returns (a draft to check and edit) and imports
    nothing; `--out` is then optional. `help` is `--infer`'s help."""

    writer: str | Callable[[Any], str]
    help: str

    def load(self) -> Callable[[Any], str]:
        return _load(self.writer)


@attrs.frozen
class Importer:
    """One importer: `reader` ("module:function", or the function itself) returns an
    ImportResult; it takes the options' values, `skip_bad` and `command` (the command line,
    for provenance). `help` is the command's help (a first sentence, details, an example);
    `extra` names the optional dependency group it needs ("" for none)."""

    name: str
    reader: str | Callable[..., ImportResult]
    reads: str
    help: str = ""
    options: tuple[ImportOption, ...] = ()
    extra: str = ""
    draft: Draft | None = None

    def __attrs_post_init__(self) -> None:
        _check_name("importer", self.name)
        names = [o.name for o in self.options]
        flags = [o.option for o in self.options]
        for seen in (names, flags):
            twice = sorted({n for n in seen if seen.count(n) > 1})
            if twice:
                raise ConfigError(f"importer {self.name!r}: option {twice[0]!r} declared twice")
        arguments = [o for o in self.options if o.argument]
        if self.draft is not None and len(arguments) != 1:
            raise ConfigError(f"importer {self.name!r}: --infer needs exactly one argument")

    def load(self) -> Callable[..., ImportResult]:
        """The reader function (imports its module)."""
        return _load(self.reader)


IMPORTERS: dict[str, Importer] = {}
"""Importer name -> Importer; `optcmp import` has one command per entry, in this order."""


def register_importer(importer: Importer, /) -> Importer:
    """Add `importer` to `IMPORTERS` (the one public way in, used by the built-ins too);
    ConfigError for a name that is taken."""
    if importer.name in IMPORTERS:
        raise ConfigError(f"importer {importer.name!r} is already registered")
    IMPORTERS[importer.name] = importer
    return importer


# --- the built-in importers -----------------------------------------------------------

_PKG = "optcmp_data.importers"


def _src(help: str) -> ImportOption:
    return ImportOption("src", OptionKind.PATH, help, required=True, argument=True, positional=True)


def _mapping(help: str) -> ImportOption:
    return ImportOption("mapping", OptionKind.PATH, help)


register_importer(
    Importer(
        "deepobs",
        f"{_PKG}._deepobs:import_deepobs",
        "DeepOBS 1.1/1.2 output trees",
        help="""Import a DeepOBS output tree: test problems as workloads, optimizer folders as
optimizers, setting folders as trials, seeds as a repeat axis.

Example: optcmp import deepobs ../shared/archives/deepobs-baselines --out deepobs.nc""",
        options=(
            _src("DeepOBS output tree (1.1 or 1.2 format)."),
            ImportOption(
                "targets",
                OptionKind.PATH,
                "convergence_performance.json with per-problem targets "
                "(default: the one in SRC, if any).",
            ),
        ),
    )
)
register_importer(
    Importer(
        "algoperf",
        f"{_PKG}._algoperf:import_algoperf",
        "AlgoPerf leaderboard logs (any version)",
        help="""Import AlgoPerf logs: submissions as optimizers, trials as hyperparameter points,
studies as a repeat axis, with each workload's target metric and step hint.

Example: optcmp import algoperf ../shared/archives/algoperf-v05 --ruleset self_tuning
--out algoperf-self.nc""",
        options=(
            _src("AlgoPerf log tree (holding logs/<ruleset>/), or a ruleset folder."),
            ImportOption(
                "ruleset",
                OptionKind.CHOICE,
                "Which ruleset's logs to import.",
                default=Ruleset.EXTERNAL_TUNING.value,
                choices=tuple(r.value for r in Ruleset),
            ),
            ImportOption(
                "targets",
                OptionKind.PATH,
                "Workload targets JSON (default: a workload_targets*.json next to the logs).",
            ),
        ),
    )
)
register_importer(
    Importer(
        "table",
        f"{_PKG}._table:import_table",
        "tidy tables (CSV; Parquet with the extra)",
        extra="parquet",
        help="""Import a tidy table: optcmp's own export (with its FILE.meta.json sidecar), or any
table of runs whose columns a mapping file declares (docs/importers.md); `--infer`
prints a draft mapping for it.

Example: optcmp import table runs.csv --infer (save the draft as runs.toml and edit
it), then optcmp import table runs.csv --mapping runs.toml --out runs.nc""",
        options=(
            _src(
                "Table (.csv, or .parquet with the parquet extra): one row per evaluation "
                "or per run."
            ),
            _mapping(
                "TOML naming the table's columns and giving the facts it lacks (metric "
                "direction, search space); not needed for a table `optcmp export` wrote."
            ),
        ),
        draft=Draft(
            f"{_PKG}._infer:infer_mapping",
            "Print a draft mapping TOML guessed from the table's columns (optimizer, "
            "metrics, hyperparameters, step) for you to check and edit; imports nothing.",
        ),
    )
)
register_importer(
    Importer(
        "optuna",
        f"{_PKG}._optuna:import_optuna",
        "Optuna studies",
        extra="optuna",
        help="""Import an Optuna study (needs the optuna extra): params as hyperparameters,
intermediate values as curves, the objective as the selection metric with the
study's direction; pruned trials incomplete, failed ones diverged.

Example: optcmp import optuna --storage sqlite:///hpo.db --study resnet --out hpo.nc""",
        options=(
            ImportOption(
                "storage",
                OptionKind.TEXT,
                "Optuna storage URL, e.g. sqlite:///study.db.",
                required=True,
                positional=True,
            ),
            ImportOption(
                "study",
                OptionKind.TEXT,
                "Name of the study in the storage.",
                required=True,
                positional=True,
            ),
            _mapping(
                "TOML with workload facts ([workload] metric_name, valid_target, "
                "step_budget) and optimizer families ([families])."
            ),
            ImportOption(
                "optimizer_from",
                OptionKind.TEXT,
                "Param or user attribute naming each trial's optimizer.",
                default="optimizer",
            ),
            ImportOption(
                "workload_from",
                OptionKind.TEXT,
                "Param or user attribute naming each trial's workload.",
            ),
            ImportOption(
                "workload",
                OptionKind.TEXT,
                "Workload label for every trial (default: the study name).",
            ),
        ),
    )
)
register_importer(
    Importer(
        "mlflow",
        f"{_PKG}._mlflow:import_mlflow",
        "MLflow experiments (file or SQLite stores, servers)",
        extra="mlflow",
        help="""Import an MLflow experiment (needs the mlflow extra): runs as trials, numeric params
as hyperparameters, metric histories as curves; FINISHED runs completed, FAILED and
KILLED incomplete, runs with a NaN or infinite valid metric diverged.

Example: optcmp import mlflow --tracking-uri sqlite:///mlflow.db --experiment sweep
--valid-metric val_loss --test-metric test_loss --direction min --out sweep.nc""",
        options=(
            ImportOption(
                "tracking_uri",
                OptionKind.TEXT,
                "MLflow tracking URI: a file store (file:///path/mlruns or a path), "
                "sqlite:///path/mlflow.db, or a tracking server. Local stores are read from a "
                "private copy, never written.",
                required=True,
                positional=True,
            ),
            ImportOption(
                "valid_metric",
                OptionKind.TEXT,
                "Metric whose history is the selection curve.",
                required=True,
            ),
            ImportOption(
                "experiment",
                OptionKind.TEXT,
                "Experiment name (default: the one experiment holding runs).",
            ),
            ImportOption("test_metric", OptionKind.TEXT, "Metric whose history is the test curve."),
            ImportOption(
                "direction",
                OptionKind.TEXT,
                "min or max: which way the metrics are better (or direction under "
                "[workload] in --mapping).",
            ),
            _mapping(
                "TOML with workload facts ([workload] direction, metric_name, valid_target, "
                "step_budget) and optimizer families ([families])."
            ),
            ImportOption(
                "optimizer_from",
                OptionKind.TEXT,
                "Param or tag naming each run's optimizer.",
                default="optimizer",
            ),
            ImportOption(
                "workload_from", OptionKind.TEXT, "Param or tag naming each run's workload."
            ),
            ImportOption(
                "workload",
                OptionKind.TEXT,
                "Workload label for every run (default: the experiment name).",
            ),
            ImportOption(
                "seed_from",
                OptionKind.TEXT,
                "Param holding each run's seed (not a hyperparameter).",
                default="seed",
            ),
            ImportOption(
                "series",
                OptionKind.PAIRS,
                "NAME=KEY: archive series NAME (train_loss, train_metric, valid_loss, "
                "test_loss) from metric KEY's history; repeat for several.",
            ),
        ),
    )
)
