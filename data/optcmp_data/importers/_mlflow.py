"""Importer of MLflow experiments (the optional extra `mlflow`), read with MLflow's own
client.

Dependency rule: numpy, xarray, attrs, this package, and mlflow imported only when an
import runs (the base install does not need it).

The user's store is never written: MLflow's stores write when they are opened (a file
store adds `.trash/`, a SQLite store creates its tables or a default experiment), so a
local store is read from a private snapshot. A SQLite file is copied with SQLite's backup
API from a read-only connection; of a file store (`mlruns/`) the metadata, params, metrics
and tags are copied, not the artifacts or the trash. Other tracking URIs (a tracking server, a
database server) are only read through the client.

Mapping (docs/importers.md):
- workload = `--workload LABEL`, or the param / tag `--workload-from NAME` of each run, or
  the experiment name; optimizer = the param or tag named by `--optimizer-from` (default
  `optimizer`); trial = the run's index within its (workload, optimizer), in order of
  start time then run id; the run ids are kept in the attribute `mlflow_run_ids` (JSON
  {workload: {optimizer: [run id of trial 0, 1, ...]}}).
- hparams = the params other than those labels and the seed, read as numbers (`true` and
  `false` as 1 and 0); params that are not numbers are left out (named in a caveat);
  `trial_seed` = the param `--seed-from` (default `seed`) where a run logs it.
- search space of each (workload, optimizer) = the observed range of each param (MLflow
  records no search space; named `mlflow-observed`): `fixed` where one value was used,
  `log` where every value is positive and they span a factor of 10 or more, else
  `linear`.
- curves: valid_metric = the history of `--valid-metric`, test_metric = that of
  `--test-metric` (all NaN and a caveat when none is named), on the union of their steps
  (a step logged twice keeps the last value); `--series NAME=KEY` fills train_loss,
  train_metric, valid_loss or test_loss likewise; time = seconds from the run's start to
  the logging of the valid metric at that step.
- status: a run whose valid metric history holds NaN or infinity is diverged; otherwise
  FINISHED -> completed, FAILED and KILLED -> incomplete; RUNNING and SCHEDULED runs are
  left out (counted in a caveat); deleted runs are not read.
- workload facts from the mapping's [workload] (or [workloads.NAME]) table: direction
  (or `--direction`; required), metric_name (default: the valid metric's name without
  a split prefix: `val_loss` -> `loss`),
  valid_target, test_target, step_budget (default: the largest step logged),
  selection_split; optimizer families from its [families].
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sqlite3
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import xarray as xr

from optcmp_data._builder import ArchiveBuilder, Curves, SpaceDim, SpaceRecord, TrialRecord
from optcmp_data._errors import ConfigError, DataFormatError
from optcmp_data._schema import Scale, Status
from optcmp_data.importers._common import BadInputs, ImportResult, LabelRule, add_mapped_workload
from optcmp_data.importers._table import TableMapping

__all__ = ["EXTRA_SERIES", "MLFLOW_SPACE", "import_mlflow"]

# Archive series `--series NAME=KEY` may fill (valid_metric and test_metric have options).
EXTRA_SERIES = ("train_loss", "train_metric", "valid_loss", "test_loss")

MLFLOW_SPACE = "mlflow-observed"
_STATUSES = {
    "FINISHED": Status.COMPLETED,
    "FAILED": Status.INCOMPLETE,
    "KILLED": Status.INCOMPLETE,
}
_PAGE = 1000


def _skip_artifacts(folder: str, names: list[str]) -> list[str]:
    """What a file store's snapshot leaves out: the contents of artifact folders (MLflow
    needs the empty folder to recognise a run) and the trash of deleted runs."""
    if Path(folder).name == "artifacts":
        return names
    return [n for n in names if n == ".trash"]


def _mlflow() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import mlflow.tracking
    except ImportError:
        raise ConfigError(
            "importing MLflow runs needs mlflow, which is not installed "
            "(pip install 'optcmp[mlflow]')"
        ) from None
    return mlflow


def _local_path(uri: str, scheme: str) -> Path:
    """The local path of a `file:` or `sqlite:///` URI (or a bare path)."""
    if scheme == "sqlite":
        rest = uri.removeprefix("sqlite:///")
        return Path(unquote(rest.split("?", 1)[0]))
    if scheme == "file":
        return Path(unquote(urlparse(uri).path))
    return Path(uri)


def _scheme(uri: str) -> str:
    if uri.startswith("sqlite:///"):
        return "sqlite"
    if uri.startswith("sqlite:"):
        raise DataFormatError(
            f"{uri}: a SQLite tracking URI is sqlite:///PATH (three slashes, then the path)"
        )
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return "file"
    if len(parsed.scheme) > 1:  # a one-letter scheme is a Windows drive
        return "remote"
    return "file"


def _snapshot_sqlite(db: Path, into: Path) -> str:
    """Copy `db` (opened read-only) into `into`; the tracking URI of the copy."""
    if not db.is_file():
        raise DataFormatError(f"{db}: no such SQLite file (MLflow tracking URI sqlite:///{db})")
    copy = into / "mlflow.db"
    try:
        src = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(copy)
            try:
                src.backup(dst)
                tables = {
                    str(row[0])
                    for row in dst.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as err:
        raise DataFormatError(f"{db}: not a readable SQLite database ({err})") from None
    if not {"experiments", "runs", "metrics", "params"} <= tables:
        raise DataFormatError(
            f"{db}: a SQLite database without MLflow's tables (experiments, runs, metrics, "
            "params); is it an MLflow tracking store?"
        )
    return f"sqlite:///{copy}"


def _snapshot_files(root: Path, into: Path) -> str:
    """Copy the tracking data of file store `root` (no artifacts) into `into`."""
    if not root.is_dir():
        raise DataFormatError(f"{root}: not a directory (expected an MLflow file store, mlruns/)")
    try:
        has_experiment = any((child / "meta.yaml").is_file() for child in root.iterdir())
    except OSError as err:
        raise DataFormatError(f"{root}: cannot be listed ({err.strerror})") from None
    if not has_experiment:
        raise DataFormatError(
            f"{root}: no experiment folder (<id>/meta.yaml) inside; is it an MLflow file "
            "store (mlruns/)?"
        )
    copy = into / "mlruns"
    try:
        shutil.copytree(root, copy, ignore=_skip_artifacts, symlinks=True)
    except (OSError, shutil.Error) as err:
        raise DataFormatError(f"{root}: cannot be read ({err})") from None
    return copy.as_uri()


@contextlib.contextmanager
def _readable_store(uri: str) -> Iterator[str]:
    """The tracking URI to read: a private snapshot for a local store."""
    scheme = _scheme(uri)
    if scheme == "remote":
        yield uri
        return
    with tempfile.TemporaryDirectory(prefix="optcmp-mlflow-") as tmp:
        if scheme == "sqlite":
            yield _snapshot_sqlite(_local_path(uri, scheme), Path(tmp))
        else:
            old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
            # MLflow 3 refuses file stores unless told otherwise; reading one is fine.
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
            try:
                yield _snapshot_files(_local_path(uri, scheme), Path(tmp))
            finally:
                if old is None:
                    os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
                else:
                    os.environ["MLFLOW_ALLOW_FILE_STORE"] = old


def _one_line(err: BaseException) -> str:
    text = getattr(err, "message", None) or str(err)
    return " ".join(str(text).split())[:300] or type(err).__name__


def _number(text: str) -> float | None:
    low = text.strip().lower()
    if low in ("true", "false"):
        return 1.0 if low == "true" else 0.0
    try:
        return float(low)
    except ValueError:
        return None


def _experiment(client: Any, uri: str, name: str | None) -> Any:
    experiments = client.search_experiments()
    names = sorted(str(e.name) for e in experiments)
    if name is not None:
        for e in experiments:
            if e.name == name:
                return e
        raise DataFormatError(
            f"{uri}: no experiment named {name!r} (experiments: {', '.join(names) or 'none'})"
        )
    with_runs = [e for e in experiments if client.search_runs([e.experiment_id], max_results=1)]
    if len(with_runs) == 1:
        return with_runs[0]
    raise DataFormatError(
        f"{uri}: {'no experiment holds runs' if not with_runs else 'several experiments hold runs'}"
        f"; choose one with --experiment (experiments: {', '.join(names) or 'none'})"
    )


def _all_runs(client: Any, experiment_id: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], max_results=_PAGE, page_token=token, order_by=["start_time ASC"]
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _history(client: Any, run_id: str, key: str) -> dict[int, tuple[float, int]]:
    """step -> (value, timestamp ms); a step logged twice keeps the later value."""
    out: dict[int, tuple[float, int]] = {}
    for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp):
        out[int(m.step)] = (float(m.value), int(m.timestamp))
    return out


_SPLIT_PREFIXES = ("validation", "valid", "val", "eval")


def _metric_name(key: str) -> str:
    """The metric's name without a split prefix: `val_loss` -> `loss`."""
    for prefix in _SPLIT_PREFIXES:
        for sep in ("_", "/", "-", "."):
            if key.lower().startswith(prefix + sep) and len(key) > len(prefix) + 1:
                return key[len(prefix) + 1 :]
    return key


def _space_dim(name: str, values: list[float]) -> SpaceDim:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return SpaceDim(name, math.nan, math.nan, Scale.NONE)
    low, high = min(finite), max(finite)
    if low == high:
        return SpaceDim(name, low, high, Scale.FIXED)
    scale = Scale.LOG if low > 0 and high / low >= 10 else Scale.LINEAR
    return SpaceDim(name, low, high, scale)


def import_mlflow(
    tracking_uri: str,
    /,
    *,
    experiment: str | None = None,
    valid_metric: str,
    test_metric: str | None = None,
    direction: str | None = None,
    mapping: str | os.PathLike[str] | None = None,
    optimizer_from: str = "optimizer",
    workload_from: str | None = None,
    workload: str | None = None,
    seed_from: str = "seed",
    series: Mapping[str, str] | None = None,
    skip_bad: bool = False,
    command: str | None = None,
) -> ImportResult:
    """Import the runs of one MLflow experiment (module docstring); `series` maps further
    archive series (train_loss, train_metric, valid_loss, test_loss) to metric keys."""
    rule = LabelRule(optimizer_from, workload_from, workload, "param or tag")
    if direction is not None and direction not in ("min", "max"):
        raise ConfigError(f"--direction {direction!r}: expected min or max")
    extra = dict(series or {})
    bad_names = sorted(set(extra) - set(EXTRA_SERIES))
    if bad_names:
        raise ConfigError(
            f"--series {bad_names[0]}=...: not one of {', '.join(EXTRA_SERIES)} (valid_metric "
            "and test_metric have their own options)"
        )
    mapped = (
        TableMapping.from_file(mapping)
        if mapping is not None
        else TableMapping({}, source="<no mapping>")
    )
    mlflow = _mlflow()
    with warnings.catch_warnings():
        # MLflow and SQLAlchemy warn about their own internals; not the user's concern.
        warnings.simplefilter("ignore")
        with _readable_store(tracking_uri) as readable:
            try:
                client = mlflow.tracking.MlflowClient(tracking_uri=readable)
                exp = _experiment(client, tracking_uri, experiment)
                runs = _all_runs(client, exp.experiment_id)
                keys = sorted(
                    {valid_metric, *([test_metric] if test_metric else []), *extra.values()}
                )
                histories = {
                    run.info.run_id: {k: _history(client, run.info.run_id, k) for k in keys}
                    for run in runs
                }
            except DataFormatError:
                raise
            except Exception as err:  # MLflow raises many store-specific types
                raise DataFormatError(
                    f"{tracking_uri}: not a readable MLflow tracking store ({_one_line(err)})"
                ) from None
    return _build(
        tracking_uri,
        str(exp.name),
        runs,
        histories,
        mapped=mapped,
        valid_metric=valid_metric,
        test_metric=test_metric,
        direction=direction,
        rule=rule,
        seed_from=seed_from,
        extra=extra,
        bad=BadInputs(skip_bad=skip_bad),
        command=command,
    )


History = dict[int, tuple[float, int]]  # step -> (value, timestamp ms)


def _build(
    uri: str,
    exp_name: str,
    runs: list[Any],
    histories: Mapping[str, Mapping[str, History]],
    *,
    mapped: TableMapping,
    valid_metric: str,
    test_metric: str | None,
    direction: str | None,
    rule: LabelRule,
    seed_from: str,
    extra: Mapping[str, str],
    bad: BadInputs,
    command: str | None,
) -> ImportResult:
    """The archive of an experiment's runs (read, with their metric histories)."""
    where = f"{uri} experiment {exp_name!r}"
    kept = [
        labelled
        for run in runs
        if run.info.status in _STATUSES
        and (labelled := _labelled(run, histories, rule, exp_name, valid_metric, bad, where))
    ]
    if not kept:
        raise DataFormatError(f"{where}: no finished, failed or killed run to import")
    hparams, text_params = _hparams(kept, rule.names | {seed_from})

    caveats = [
        f"valid_metric is the MLflow metric {valid_metric!r}; time is the wall time from a "
        "run's start to the logging of that metric",
        f"search spaces are the observed ranges of the params ({MLFLOW_SPACE}): MLflow "
        "records no search space",
    ]
    caveats.extend(f"{name} is the MLflow metric {key!r}" for name, key in sorted(extra.items()))
    if test_metric is None:
        caveats.append("no test metric was mapped (--test-metric): test_metric is empty")
    else:
        caveats.append(f"test_metric is the MLflow metric {test_metric!r}")
    builder = ArchiveBuilder(
        source=f"MLflow experiment {exp_name!r} in {uri}", command=command, caveats=caveats
    )
    max_step: dict[str, int] = {}
    for wl, _, run in kept:
        steps = [s for series in histories[run.info.run_id].values() for s in series]
        max_step[wl] = max(max_step.get(wl, 0), *steps)
    for wl in sorted(max_step):
        _add_workload(builder, wl, mapped, direction, valid_metric, max_step[wl])
    values: dict[tuple[str, str], dict[str, list[float]]] = {}
    for wl, opt, run in kept:
        cell = values.setdefault((wl, opt), {})
        for name, v in hparams[run.info.run_id].items():
            cell.setdefault(name, []).append(v)
    for (wl, opt), cell in sorted(values.items()):
        builder.add_optimizer(opt, mapped.families.get(opt, ""))
        dims = tuple(_space_dim(name, vs) for name, vs in sorted(cell.items()))
        builder.add_space(wl, opt, SpaceRecord(MLFLOW_SPACE, dims))

    trial_of: dict[tuple[str, str, int], str] = {}
    counters: dict[tuple[str, str], int] = {}
    ordered = sorted(kept, key=lambda k: (k[0], k[1], k[2].info.start_time or 0, k[2].info.run_id))
    for wl, opt, run in ordered:
        rid = run.info.run_id
        trial = counters.get((wl, opt), 0)
        counters[(wl, opt)] = trial + 1
        trial_of[(wl, opt, trial)] = rid
        valid = histories[rid][valid_metric]
        diverged = any(not math.isfinite(v) for v, _ in valid.values())
        seed_text = run.data.params.get(seed_from)
        seed = _number(str(seed_text)) if seed_text is not None else None
        builder.add_trial(
            TrialRecord(
                workload=wl,
                optimizer=opt,
                trial=trial,
                status=Status.DIVERGED if diverged else _STATUSES[run.info.status],
                hparams=hparams[rid],
                curves=_curves(run, histories[rid], valid_metric, test_metric, extra),
                seed=int(seed) if seed is not None and seed.is_integer() and seed >= 0 else -1,
            )
        )
    if text_params:
        builder.add_caveat(f"params that are not numbers are not stored: {sorted(text_params)}")
    unfinished = sum(run.info.status not in _STATUSES for run in runs)
    if unfinished:
        builder.add_caveat(f"{unfinished} running or scheduled runs left out")
    ds = builder.build()
    ds = _with_run_ids(ds, trial_of)
    ds.attrs.update(importer="mlflow", mlflow_experiment=exp_name)
    return ImportResult(dataset=ds, warnings=tuple(bad.warnings), files_read=1)


def _labelled(
    run: Any,
    histories: Mapping[str, Mapping[str, History]],
    rule: LabelRule,
    exp_name: str,
    valid_metric: str,
    bad: BadInputs,
    where: str,
) -> tuple[str, str, Any] | None:
    """(workload, optimizer, run) of a finished, failed or killed run with its labels and
    a valid metric history; None (after `bad.bad`) otherwise."""
    rid = run.info.run_id
    labels = rule.labels(
        run.data.params,
        run.data.tags,
        item=f"run {rid}",
        default_workload=exp_name,
        bad=bad,
        where=where,
    )
    if labels is None:
        return None
    if not histories[rid][valid_metric]:
        bad.bad(
            f"{where}: run {rid} logged no metric {valid_metric!r} (--valid-metric); "
            f"its metrics: {', '.join(sorted(run.data.metrics)) or 'none'}"
        )
        return None
    return (*labels, run)


def _hparams(
    kept: list[tuple[str, str, Any]], not_hparams: set[str]
) -> tuple[dict[str, dict[str, float]], set[str]]:
    """Per run id its params read as numbers (not the labels and the seed), and the names
    of params with a value that is not a number."""
    hparams: dict[str, dict[str, float]] = {}
    text_params: set[str] = set()
    for _, _, run in kept:
        hp: dict[str, float] = {}
        for name, text in sorted(run.data.params.items()):
            if name in not_hparams:
                continue
            number = _number(str(text))
            if number is None:
                text_params.add(str(name))
                continue
            hp[str(name)] = number
        hparams[run.info.run_id] = hp
    return hparams, text_params


def _add_workload(
    builder: ArchiveBuilder,
    wl: str,
    mapped: TableMapping,
    direction: str | None,
    valid_metric: str,
    max_step: int,
) -> None:
    """Add a workload with the mapping's facts (direction required, there or by
    --direction), the metric's name from the valid metric, the largest logged step as the
    default budget."""
    facts = mapped.facts(wl)
    dirn = direction if direction is not None else facts.get("direction")
    if dirn not in ("min", "max"):
        raise ConfigError(
            f"{mapped.source}: workload {wl!r}: the direction of metric {valid_metric!r} is "
            'not given; pass --direction min|max, or add direction = "min" or "max" under '
            "[workload] (or [workloads.NAME]) in a --mapping file"
        )
    add_mapped_workload(
        builder,
        facts,
        name=wl,
        source=mapped.source,
        direction=dirn,
        metric_name=_metric_name(valid_metric),
        step_budget=max_step,
    )


def _curves(
    run: Any,
    history: Mapping[str, History],
    valid_metric: str,
    test_metric: str | None,
    extra: Mapping[str, str],
) -> Curves:
    """A run's curves on the union of its metrics' steps; time from the run's start to the
    logging of the valid metric."""
    valid = history[valid_metric]
    test = history.get(test_metric, {}) if test_metric else {}
    others = {name: history[key] for name, key in extra.items()}
    steps = sorted({*valid, *test, *(s for h in others.values() for s in h)})
    start = run.info.start_time
    return Curves(
        step=np.array(steps, dtype=np.int64),
        time=np.array(
            [
                (valid[s][1] - start) / 1000.0 if s in valid and start is not None else math.nan
                for s in steps
            ],
            dtype=np.float64,
        ),
        valid_metric=np.array([valid.get(s, (math.nan, 0))[0] for s in steps]),
        test_metric=np.array([test.get(s, (math.nan, 0))[0] for s in steps]),
        **{
            name: np.array([h.get(s, (math.nan, 0))[0] for s in steps])
            for name, h in others.items()
        },
    )


def _with_run_ids(ds: xr.Dataset, trial_of: Mapping[tuple[str, str, int], str]) -> xr.Dataset:
    """Global attribute `mlflow_run_ids`: JSON {workload: {optimizer: [run id of trial 0,
    1, ...]}} (an attribute, so that it survives `optcmp export` and re-import)."""
    ids: dict[str, dict[str, list[str]]] = {}
    for (wl, opt, trial), rid in sorted(trial_of.items()):
        runs = ids.setdefault(wl, {}).setdefault(opt, [])
        assert trial == len(runs)  # trials are numbered 0, 1, ... per cell
        runs.append(rid)
    ds.attrs["mlflow_run_ids"] = json.dumps(ids, sort_keys=True)
    return ds
