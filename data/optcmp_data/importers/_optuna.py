"""Importer of Optuna studies (the optional extra `optuna`).

Dependency rule: numpy, xarray, attrs, this package, and optuna imported only when an
import runs (the base install does not need it).

Mapping (docs/importers.md):
- workload = `--workload LABEL`, or the param / user attribute `--workload-from NAME` of
  each trial, or the study name; optimizer = the param or user attribute named by
  `--optimizer-from` (default `optimizer`); trial = Optuna's trial number.
- hparams = the numeric params (bools as 0/1) other than those two; the search space of
  each (workload, optimizer) = the trials' distributions (float/int: low, high, log or
  linear); categorical params with text choices have no space, and text values are
  left out (a caveat names them).
- curves: valid_metric (and test_metric, a copy: Optuna has no separate test value;
  a caveat says so) = the intermediate values at their reported steps, then the
  objective (the selection metric, with the study's direction) as the evaluation at the
  workload's step budget (a mapping's `step_budget`, else the largest reported step);
  an intermediate value at that step is replaced by the objective. time = the trial's
  duration at that last evaluation only.
- status: COMPLETE -> completed, PRUNED -> incomplete, FAIL -> diverged; RUNNING and
  WAITING trials are left out (counted in a caveat).
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np

from optcmp_data._builder import ArchiveBuilder, Curves, SpaceDim, SpaceRecord, TrialRecord
from optcmp_data._errors import ConfigError, DataFormatError, OptcmpError
from optcmp_data._fs import check_regular_file
from optcmp_data._schema import Direction, Scale, Status
from optcmp_data.importers._common import BadInputs, ImportResult, LabelRule, add_mapped_workload
from optcmp_data.importers._table import TableMapping

__all__ = ["import_optuna"]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "importing an Optuna study needs optuna, which is not installed "
            "(pip install 'optcmp[optuna]')"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


#: Tables every Optuna RDB storage has; a SQLite file without them is not one.
_OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})


def _sqlite_read_only(db: Path, storage: str) -> Any:
    """A connection factory that opens `db` read-only (SQLite URI mode=ro), after checking
    that it is an Optuna storage: nothing of the user's file is created or changed, even
    when it is some other program's database."""
    if not os.path.exists(db):
        raise DataFormatError(f"{db}: no such SQLite file (storage {storage})")
    check_regular_file(db, "SQLite file")
    uri = f"file:{urllib.parse.quote(str(db.resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    try:
        with contextlib.closing(connect()) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as err:
        raise DataFormatError(f"{db}: not a readable SQLite file ({err})") from None
    missing = sorted(_OPTUNA_TABLES - tables)
    if missing:
        raise DataFormatError(
            f"{db}: not an Optuna storage (storage {storage}): it lacks the tables "
            f"{', '.join(repr(m) for m in missing)}"
        )
    return connect


def _load(optuna: Any, storage: str, study: str) -> Any:
    """The study, read from a storage that is never written: SQLite files are opened in
    read-only mode; other database URLs are opened as given (use a read-only account)."""
    try:
        if storage.startswith("sqlite:///"):
            db = Path(urllib.parse.unquote(storage.removeprefix("sqlite:///").split("?")[0]))
            connect = _sqlite_read_only(db, storage)
            opened: Any = optuna.storages.RDBStorage(
                storage, engine_kwargs={"creator": connect}, skip_table_creation=True
            )
        else:
            opened = optuna.storages.RDBStorage(storage, skip_table_creation=True)
        names = [s.study_name for s in opened.get_all_studies()]
    except OptcmpError:
        raise
    except Exception as err:  # optuna and SQLAlchemy raise many storage-specific types
        detail = " ".join(str(err).split())[:200] or type(err).__name__
        raise DataFormatError(f"{storage}: not a readable Optuna storage ({detail})") from None
    if study not in names:
        raise DataFormatError(
            f"{storage}: no study named {study!r} (studies: {', '.join(sorted(names)) or 'none'})"
        )
    return optuna.load_study(study_name=study, storage=opened)


def _text_caveat(
    builder: ArchiveBuilder, runs: list[tuple[str, str, Any]], labels: set[str]
) -> None:
    """One caveat naming the params whose values are text, which hparams cannot hold:
    those never stored, and those stored only for the trials where they are numbers."""
    text: dict[str, int] = {}
    numeric: dict[str, int] = {}
    for _, _, trial in runs:
        for name, value in trial.params.items():
            if name in labels:
                continue
            counts = numeric if isinstance(value, int | float) else text
            counts[name] = counts.get(name, 0) + 1
    never = sorted(n for n in text if n not in numeric)
    partly = sorted(n for n in text if n in numeric)
    parts = []
    if never:
        parts.append(f"params with text values are not stored: {never}")
    if partly:
        shown = ", ".join(f"{n!r} ({text[n]} of {text[n] + numeric[n]} trials)" for n in partly)
        parts.append(
            f"params stored only where their value is a number, text values left out: {shown}"
        )
    if parts:
        builder.add_caveat("; ".join(parts))


def import_optuna(
    storage: str,
    study: str,
    /,
    *,
    mapping: str | os.PathLike[str] | None = None,
    optimizer_from: str = "optimizer",
    workload_from: str | None = None,
    workload: str | None = None,
    skip_bad: bool = False,
    command: str | None = None,
) -> ImportResult:
    """Import one single-objective Optuna study (module docstring)."""
    rule = LabelRule(optimizer_from, workload_from, workload, "param or user attribute")
    optuna = _optuna()
    loaded = _load(optuna, storage, study)
    if len(loaded.directions) != 1:
        raise DataFormatError(
            f"{storage}: study {study!r} has {len(loaded.directions)} objectives; only "
            "single-objective studies can be imported"
        )
    direction = (
        Direction.MAX if loaded.direction == optuna.study.StudyDirection.MAXIMIZE else Direction.MIN
    )
    mapped = (
        TableMapping.from_file(mapping)
        if mapping is not None
        else TableMapping({}, source="<no mapping>")
    )
    state = optuna.trial.TrialState
    statuses = {
        state.COMPLETE: Status.COMPLETED,
        state.PRUNED: Status.INCOMPLETE,
        state.FAIL: Status.DIVERGED,
    }
    bad = BadInputs(skip_bad=skip_bad)
    trials = loaded.get_trials(deepcopy=False)
    runs = _labelled(trials, statuses, rule, study, bad, where=f"{storage} study {study!r}")
    spaces, max_step = _spaces(optuna, runs, rule.names)
    builder = ArchiveBuilder(
        source=f"Optuna study {study!r} in {storage}",
        command=command,
        caveats=[
            "valid_metric is the Optuna objective (final evaluation) and its intermediate "
            "values (earlier evaluations); time is the trial's duration, at the final "
            "evaluation only",
            "Optuna stores one objective and no separate test value: test_metric repeats "
            "valid_metric, so reported values are those the selection used (optimistic)",
        ],
    )
    budgets = _add_workloads(builder, sorted({r[0] for r in runs}), mapped, direction, max_step)
    for (wl, opt), dims in sorted(spaces.items()):
        builder.add_optimizer(opt, mapped.families.get(opt, ""))
        builder.add_space(wl, opt, SpaceRecord("optuna-distributions", tuple(dims.values())))
    for wl, opt, trial in runs:
        builder.add_trial(
            TrialRecord(
                workload=wl,
                optimizer=opt,
                trial=int(trial.number),
                status=statuses[trial.state],
                hparams={
                    name: float(value)
                    for name, value in trial.params.items()
                    if name not in rule.names and isinstance(value, int | float)
                },
                curves=_curves(trial, budgets[wl], complete=trial.state == state.COMPLETE),
            )
        )
    _text_caveat(builder, runs, rule.names)
    unfinished = sum(trial.state not in statuses for trial in trials)
    if unfinished:
        builder.add_caveat(f"{unfinished} running or waiting trials left out")
    ds = builder.build()
    ds.attrs.update(importer="optuna", optuna_study=study)
    return ImportResult(dataset=ds, warnings=tuple(bad.warnings), files_read=1)


def _labelled(
    trials: list[Any],
    statuses: dict[Any, Status],
    rule: LabelRule,
    study: str,
    bad: BadInputs,
    *,
    where: str,
) -> list[tuple[str, str, Any]]:
    """(workload, optimizer, trial) of each finished, pruned or failed trial that has its
    labels; DataFormatError when none is left."""
    runs: list[tuple[str, str, Any]] = []
    for trial in trials:
        if trial.state not in statuses:
            continue
        labels = rule.labels(
            trial.params,
            trial.user_attrs,
            item=f"trial {trial.number}",
            default_workload=study,
            bad=bad,
            where=where,
        )
        if labels is not None:
            runs.append((*labels, trial))
    if not runs:
        raise DataFormatError(f"{where}: no finished, pruned or failed trial to import")
    return runs


def _spaces(
    optuna: Any, runs: list[tuple[str, str, Any]], labels: set[str]
) -> tuple[dict[tuple[str, str], dict[str, SpaceDim]], dict[str, int]]:
    """The search space of each (workload, optimizer), merged over its trials'
    distributions, and each workload's largest reported step."""
    spaces: dict[tuple[str, str], dict[str, SpaceDim]] = {}
    max_step: dict[str, int] = {}
    for wl, opt, trial in runs:
        dims = spaces.setdefault((wl, opt), {})
        for name, dist in trial.distributions.items():
            if name in labels:
                continue
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                if not all(isinstance(c, int | float) for c in dist.choices):
                    continue  # no numeric range; the values are stored where numbers
                low, high, scale = min(dist.choices), max(dist.choices), Scale.LINEAR
            else:
                low, high = float(dist.low), float(dist.high)
                scale = Scale.LOG if getattr(dist, "log", False) else Scale.LINEAR
            if low == high:
                scale = Scale.FIXED
            old = dims.get(name)
            if old is not None and (old.low, old.high, old.scale) != (low, high, scale):
                low, high = min(old.low, low), max(old.high, high)
                scale = old.scale if old.scale == scale else Scale.LINEAR
            dims[name] = SpaceDim(name, float(low), float(high), scale)
        if trial.intermediate_values:
            max_step[wl] = max(max_step.get(wl, 0), max(trial.intermediate_values))
    return spaces, max_step


def _add_workloads(
    builder: ArchiveBuilder,
    workloads: list[str],
    mapped: TableMapping,
    direction: Direction,
    max_step: dict[str, int],
) -> dict[str, int]:
    """Add each workload with the mapping's facts; its step budget (the mapping's, else
    the largest reported step), where the objective is placed."""
    budgets: dict[str, int] = {}
    for wl in workloads:
        budgets[wl] = add_mapped_workload(
            builder,
            mapped.facts(wl),
            name=wl,
            source=mapped.source,
            direction=direction,
            metric_name="objective",
            step_budget=max_step.get(wl, 0),
        )
    return budgets


def _curves(trial: Any, budget: int, *, complete: bool) -> Curves:
    """The intermediate values at their steps, then the objective (of a complete trial)
    at the step budget, replacing an intermediate value there; the trial's duration as
    the time of the last evaluation."""
    inter = dict(sorted(trial.intermediate_values.items()))
    steps = [int(s) for s in inter]
    values = [float(v) for v in inter.values()]
    objective = trial.value if complete else None
    final_step = max(budget, steps[-1] if steps else 0)
    times = [math.nan] * len(steps)
    duration = (
        (trial.datetime_complete - trial.datetime_start).total_seconds()
        if trial.datetime_complete is not None and trial.datetime_start is not None
        else math.nan
    )
    if objective is not None:
        if steps and steps[-1] == final_step:
            values[-1] = float(objective)
            times[-1] = duration
        else:
            steps.append(final_step)
            values.append(float(objective))
            times.append(duration)
    elif times:
        times[-1] = duration
    return Curves(
        step=np.array(steps, dtype=np.int64),
        time=np.array(times, dtype=np.float64),
        valid_metric=np.array(values, dtype=np.float64),
        test_metric=np.array(values, dtype=np.float64),
    )
