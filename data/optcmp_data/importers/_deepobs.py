"""Importer of DeepOBS output trees (formats 1.1 and 1.2) into the archive format.

Dependency rule: numpy, xarray, attrs and this package only; archives are produced through
`ArchiveBuilder`, like every other archive.

Mapping (docs/importers.md):
- workload = test problem folder; optimizer = optimizer class folder, plus the extra
  folder levels above the test problem (1.2: results/<budget>/<schedule>/) that differ
  between runs, joined with "-"; trial = setting folder, numbered per (workload,
  optimizer) in order of learning rate, then folder name; repeat axis `seed`.
- eval = epoch; `step` is the epoch index (eval 0 is the evaluation before training):
  DeepOBS logs do not record steps per epoch. No wall-clock times.
- metric "accuracy" (max) where runs log accuracies, else the loss (min), as the DeepOBS
  analyser does; the per-problem targets of convergence_performance.json become
  `test_target` (DeepOBS "speed" is measured on the test metric).
- 1.1 has no validation split: selection split "test" and a caveat. 1.2: "valid".
- Status "diverged" where a loss is NaN/inf (1.1), or where 1.2's divergence fill
  (remaining epochs equal to the epoch-0 values) is found; the filled epochs become NaN.
- When every setting shares some seeds but some settings have more (the chosen setting
  re-run with extra seeds), the archive attribute `selection_repeats` names the shared
  seeds, so selection can use the tuning runs alone.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_data._builder import (
    ArchiveBuilder,
    Curves,
    SpaceDim,
    SpaceRecord,
    TrialRecord,
    WorkloadInfo,
)
from optcmp_data._errors import DataFormatError
from optcmp_data._labels import import_label
from optcmp_data._schema import Direction, Scale, Split, Status
from optcmp_data.importers._common import (
    BadInputs,
    ImportResult,
    checked_float,
    checked_int,
    open_source_dir,
    read_json_object,
)

__all__ = ["DEEPOBS_FAMILIES", "import_deepobs"]

# DeepOBS optimizer class folders whose update rule is one of the paper's families.
DEEPOBS_FAMILIES = {
    "GradientDescentOptimizer": "sgd",
    "MomentumOptimizer": "momentum",
    "AdamOptimizer": "adam",
}
_RUN_FILE = re.compile(r"^random_seed__(-?\d+)__.*\.json$")
_TARGETS_FILE = "convergence_performance.json"
# The 1.1 re-runs store learning_rate rounded to 10 significant digits.
_LR_RTOL = 1e-8

FloatArray = npt.NDArray[np.float64]


@attrs.frozen
class _Run:
    path: Path
    levels: tuple[str, ...]  # extra folder levels above the test problem, inside src
    context: tuple[str, str]  # the two folder names above the test problem (1.2: budget, schedule)
    problem: str
    optimizer: str
    setting: str
    fmt: str  # "1.1" or "1.2"
    seed: int
    num_epochs: int
    learning_rate: float
    hparams: dict[str, float]
    nesterov: bool
    training_params: str  # canonical JSON of the schedule settings; "" where none
    series: dict[str, FloatArray]  # DeepOBS key -> values
    batch_size: float  # NaN where not logged
    l2_reg: float  # 1.2 l2_reg / 1.1 weight_decay; NaN where null or absent


def _find_run_files(src: Path) -> list[Path]:
    """Run files at any depth: SRC may be a tree of test problems, one test problem, one
    optimizer or one setting folder (the names above are read from the path)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        found.extend(Path(dirpath) / f for f in sorted(filenames) if _RUN_FILE.match(f))
    return found


def _series(path: Path, obj: dict[str, Any], key: str) -> FloatArray | None:
    if key not in obj or obj[key] is None:
        return None
    values = obj[key]
    if not isinstance(values, list):
        raise DataFormatError(f"{path}: {key} is a {type(values).__name__}, expected a list")
    if not values:
        return None
    for i, v in enumerate(values):
        if v is not None and not _number(v):
            raise DataFormatError(
                f"{path}: {key}[{i}] is {str(v)[:40]!r}, not a number (a flat list of numbers "
                "per epoch is expected)"
            )
    try:
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    except OverflowError:
        raise DataFormatError(f"{path}: {key} holds a number too large for a float") from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_SERIES_KEYS = (
    "train_losses",
    "valid_losses",
    "test_losses",
    "train_accuracies",
    "valid_accuracies",
    "test_accuracies",
)


def _parse_run(path: Path, src: Path) -> _Run:
    obj = read_json_object(path)
    parts = path.relative_to(src).parts
    full = path.absolute().parts
    if len(full) < 4:
        raise DataFormatError(f"{path}: not inside <testproblem>/<optimizer>/<setting>/")
    problem, optimizer, setting = full[-4], full[-3], full[-2]
    levels = parts[:-4]
    context = (full[-6] if len(full) >= 6 else "", full[-5] if len(full) >= 5 else "")
    problem, optimizer = import_label(problem), import_label(optimizer)
    if "optimizer_hyperparams" in obj:
        fmt = "1.2"
        hp_raw = obj["optimizer_hyperparams"]
        if isinstance(hp_raw, dict) and "learning_rate" not in hp_raw and "lr" in hp_raw:
            # PyTorch runners name it after the torch.optim argument
            hp_raw = {
                "learning_rate": hp_raw["lr"],
                **{k: v for k, v in hp_raw.items() if k != "lr"},
            }
        if not isinstance(hp_raw, dict) or "learning_rate" not in hp_raw:
            raise DataFormatError(
                f"{path}: optimizer_hyperparams is not an object holding learning_rate"
            )
        lr = hp_raw["learning_rate"]
    elif "learning_rate" in obj:
        fmt = "1.1"
        hp_raw = obj.get("hyperparams") or {}
        if not isinstance(hp_raw, dict):
            raise DataFormatError(f"{path}: hyperparams is not an object")
        lr = obj["learning_rate"]
    else:
        raise DataFormatError(
            f"{path}: not a DeepOBS run (neither learning_rate (1.1) nor "
            "optimizer_hyperparams (1.2) is present)"
        )
    for key in ("train_losses", "test_losses", "random_seed"):
        if key not in obj:
            raise DataFormatError(f"{path}: not a DeepOBS run (missing key {key!r})")
    lr = checked_float(lr, where=f"{path}: learning_rate")
    if not lr > 0 or not math.isfinite(lr):
        raise DataFormatError(f"{path}: learning_rate {lr!r} is not a positive number")
    seed = checked_int(obj["random_seed"], where=f"{path}: random_seed")
    testproblem = obj.get("testproblem", problem)
    if testproblem != problem:
        raise DataFormatError(
            f"{path}: testproblem {testproblem!r} differs from its folder {problem!r}"
        )
    series: dict[str, FloatArray] = {}
    for key in _SERIES_KEYS:
        arr = _series(path, obj, key)
        if arr is not None:
            series[key] = arr
    if "train_losses" not in series or "test_losses" not in series:
        raise DataFormatError(f"{path}: train_losses or test_losses is empty")
    lengths = {len(v) for v in series.values()}
    if len(lengths) != 1:
        detail = ", ".join(f"{k}={len(v)}" for k, v in series.items())
        raise DataFormatError(f"{path}: per-epoch lists differ in length ({detail})")
    n = lengths.pop()
    num_epochs = obj.get("num_epochs", n - 1)
    if not isinstance(num_epochs, int) or num_epochs != n - 1:
        raise DataFormatError(
            f"{path}: num_epochs {num_epochs!r} does not match {n} per-epoch values "
            "(expected num_epochs + 1)"
        )
    if fmt == "1.2" and "valid_losses" not in series:
        raise DataFormatError(f"{path}: DeepOBS 1.2 run without valid_losses")
    hparams = {
        str(k): (
            float(v)
            if isinstance(v, bool)
            else checked_float(v, where=f"{path}: hyperparameter {k!r}")
        )
        for k, v in hp_raw.items()
        if k != "learning_rate" and (_number(v) or isinstance(v, bool))
    }
    batch = obj.get("batch_size")
    l2 = obj.get("l2_reg", obj.get("weight_decay"))
    return _Run(
        path=path,
        levels=tuple(levels),
        context=context,
        batch_size=checked_float(batch, where=f"{path}: batch_size")
        if batch is not None
        else math.nan,
        l2_reg=checked_float(l2, where=f"{path}: l2_reg") if l2 is not None else math.nan,
        problem=problem,
        optimizer=optimizer,
        setting=setting,
        fmt=fmt,
        seed=seed,
        num_epochs=num_epochs,
        learning_rate=float(lr),
        hparams=hparams,
        nesterov=bool(hp_raw.get("use_nesterov", False) is True),
        training_params=_training_params(path, obj, fmt),
        series=series,
    )


def _training_params(path: Path, obj: dict[str, Any], fmt: str) -> str:
    """The run's schedule settings as canonical JSON (sorted keys, nulls dropped): 1.2's
    `training_params` object, 1.1's `lr_sched_epochs` and `lr_sched_factors`; "" when
    there are none (a constant learning rate)."""
    if fmt == "1.2":
        raw = obj.get("training_params")
        if raw is None:
            return ""
        if not isinstance(raw, dict):
            raise DataFormatError(
                f"{path}: training_params is a {type(raw).__name__}, expected an object"
            )
    else:
        raw = {k: obj[k] for k in ("lr_sched_epochs", "lr_sched_factors") if k in obj}
    kept = {str(k): v for k, v in raw.items() if v is not None}
    return json.dumps(kept, sort_keys=True) if kept else ""


def _restore_fill(series: dict[str, FloatArray]) -> int | None:
    """Index from which every series equals its epoch-0 value to the end (DeepOBS 1.2's
    divergence fill), or None. The evaluations before it are real."""
    stacked = np.stack(list(series.values()))
    same = (stacked == stacked[:, :1]).all(axis=0)
    n = same.shape[0]
    if n < 2 or not same[-1]:
        return None
    # Last index that differs from epoch 0; the fill starts right after it.
    differs = np.nonzero(~same[1:])[0]
    start = int(differs[-1]) + 2 if len(differs) else 1
    return start if start < n else None


def _read_targets(path: Path, bad: BadInputs) -> dict[str, float]:
    try:
        obj = read_json_object(path)
    except DataFormatError as err:
        bad.bad(str(err))
        return {}
    out: dict[str, float] = {}
    for key, value in obj.items():
        if not _number(value):
            bad.bad(f"{path}: target of {key!r} is {value!r}, not a number")
            continue
        out[str(key)] = float(value)
    return out


def import_deepobs(
    src: str | os.PathLike[str],
    /,
    *,
    targets: str | os.PathLike[str] | None = None,
    skip_bad: bool = False,
    command: str | None = None,
) -> ImportResult:
    """Import a DeepOBS output tree (1.1 or 1.2) as an archive.

    `src` holds `[<levels>/]<testproblem>/<optimizer>/<setting>/random_seed__*.json`;
    `targets` is a convergence_performance.json (default: the one in `src`, if any).
    Malformed files raise DataFormatError naming the file, or with `skip_bad` are skipped
    with one warning each (ImportResult.warnings).
    """
    src = open_source_dir(src, "a DeepOBS output tree")
    bad = BadInputs(skip_bad=skip_bad)
    runs, fmt = _discover_and_parse(src, bad)

    target_path = Path(targets) if targets is not None else src / _TARGETS_FILE
    if targets is not None and not target_path.is_file():
        raise DataFormatError(f"{target_path}: targets file not found")
    test_targets = _read_targets(target_path, bad) if target_path.is_file() else {}

    varying, opt_label, settings = _group(src, runs)

    caveats = [
        "step is the epoch index (eval 0 is the evaluation before training): DeepOBS "
        "logs do not record steps per epoch; no wall-clock times are recorded",
    ]
    if fmt == "1.1":
        caveats.append("selection uses the test split: DeepOBS 1.1 output has no validation split")
    builder = ArchiveBuilder(
        source=f"DeepOBS {fmt} output tree {src}",
        command=command,
        caveats=caveats,
        repeat_dims=("seed",),
    )

    metric_of = _declare_workloads(builder, runs, fmt, test_targets, bad)
    seed_sets, n_files, n_filled = _add_cells(builder, settings, metric_of, bad)
    if n_files == 0:
        raise DataFormatError(f"{src}: no usable DeepOBS runs")
    if n_filled:
        builder.add_caveat(
            f"{n_filled} diverged runs had their remaining epochs filled with epoch-0 values "
            "(DeepOBS 1.2); those epochs are stored as NaN"
        )
    selection_repeats = _shared_seeds(seed_sets)
    if selection_repeats:
        builder.add_caveat(
            f"selection uses only seed(s) {selection_repeats}, which every setting was run "
            "with; the other seeds re-ran chosen settings after the choice was made"
        )
    below = len(runs[0].path.relative_to(src).parts) < 4
    _level_caveats(builder, fmt, below, varying)
    ds = builder.build()
    ds = _with_run_settings(ds, runs, opt_label, fmt)
    ds.attrs["importer"] = "deepobs"
    ds.attrs["deepobs_format"] = fmt
    if selection_repeats:
        ds.attrs["selection_repeats"] = f"seed={selection_repeats}"
    return ImportResult(dataset=ds, warnings=tuple(bad.warnings), files_read=n_files)


def _discover_and_parse(src: Path, bad: BadInputs) -> tuple[list[_Run], str]:
    """Phase 1: every run file under `src`, parsed; one format for the whole tree."""
    files = _find_run_files(src)
    if not files:
        raise DataFormatError(
            f"{src}: no DeepOBS run files found (expected "
            "<testproblem>/<optimizer>/<setting>/random_seed__<seed>__<time>.json); "
            "is this a DeepOBS output tree?"
        )
    runs: list[_Run] = []
    for path in files:
        try:
            runs.append(_parse_run(path, src))
        except DataFormatError as err:
            bad.bad(str(err))
    if not runs:
        raise DataFormatError(f"{src}: none of its {len(files)} run files could be read")
    formats = sorted({r.fmt for r in runs})
    if len(formats) > 1:
        first = {f: next(r.path for r in runs if r.fmt == f) for f in formats}
        raise DataFormatError(
            f"{src}: mixes DeepOBS 1.1 and 1.2 files ({first['1.1']} and {first['1.2']})"
        )
    return runs, formats[0]


_Settings = dict[tuple[str, str], dict[str, list[_Run]]]


def _group(src: Path, runs: Sequence[_Run]) -> tuple[list[int], Callable[[_Run], str], _Settings]:
    """Phase 1b: the folder levels that differ between runs (part of the optimizer
    label; levels the same for every run carry no information), the label function, and
    runs grouped by (problem, label) and setting folder (re-runs store a rounded
    learning rate, so the folder, not the value, groups them)."""
    n_levels = {len(r.levels) for r in runs}
    if len(n_levels) > 1:
        raise DataFormatError(
            f"{src}: run files sit at different depths (e.g. {runs[0].path} and "
            f"{next(r.path for r in runs if len(r.levels) != len(runs[0].levels))})"
        )
    varying = [i for i in range(n_levels.pop()) if len({r.levels[i] for r in runs}) > 1]

    def opt_label(run: _Run) -> str:
        return "-".join([run.optimizer, *(run.levels[i] for i in varying)])

    settings: _Settings = {}
    for run in runs:
        cell = settings.setdefault((run.problem, opt_label(run)), {})
        key = "/".join([*run.levels, run.setting])
        cell.setdefault(key, []).append(run)
    return varying, opt_label, settings


def _declare_workloads(
    builder: ArchiveBuilder,
    runs: Sequence[_Run],
    fmt: str,
    test_targets: dict[str, float],
    bad: BadInputs,
) -> dict[str, str]:
    """Phase 2: one workload per test problem; returns its metric ("accuracy"/"loss")."""
    metric_of: dict[str, str] = {}
    epochs_of: dict[str, int] = {}
    for run in runs:
        has_acc = "test_accuracies" in run.series
        metric = "accuracy" if has_acc else "loss"
        old = metric_of.setdefault(run.problem, metric)
        if old != metric:
            bad.bad(
                f"{run.path}: logs {'accuracies' if has_acc else 'no accuracies'} unlike "
                f"other runs of {run.problem}"
            )
        epochs_of[run.problem] = max(epochs_of.get(run.problem, 0), run.num_epochs)
    for problem in sorted(metric_of):
        builder.add_workload(
            WorkloadInfo(
                name=problem,
                metric_name=metric_of[problem],
                direction=Direction.MAX if metric_of[problem] == "accuracy" else Direction.MIN,
                test_target=test_targets.get(problem, math.nan),
                step_budget=epochs_of[problem],
                selection_split=Split.TEST if fmt == "1.1" else Split.VALID,
            )
        )

    return metric_of


def _add_cells(
    builder: ArchiveBuilder, settings: _Settings, metric_of: dict[str, str], bad: BadInputs
) -> tuple[list[frozenset[int]], int, int]:
    """Phase 3: optimizers, spaces and one trial per setting (a run per seed); returns
    the seed set of every setting, the files used and the runs with 1.2's fill."""
    seed_sets: list[frozenset[int]] = []
    n_files = 0
    n_filled = 0
    for (problem, opt), cell in sorted(settings.items()):
        cell_runs = [r for rs in cell.values() for r in rs]
        family = _family(cell_runs, bad)
        builder.add_optimizer(opt, family)
        ordered = sorted(cell, key=lambda k: (min(r.learning_rate for r in cell[k]), k))
        lrs: list[float] = []
        other: dict[str, list[float]] = {}
        for trial, key in enumerate(ordered):
            setting_runs = sorted(cell[key], key=lambda r: r.seed)
            hparams = _setting_hparams(setting_runs, bad)
            if hparams is None:
                continue
            lrs.append(hparams["learning_rate"])
            for name, value in hparams.items():
                if name != "learning_rate":
                    other.setdefault(name, []).append(value)
            seeds: set[int] = set()
            for run in setting_runs:
                if run.seed in seeds:
                    bad.bad(f"{run.path}: a second run with seed {run.seed} in {key}")
                    continue
                if metric_of[problem] == "accuracy" and "test_accuracies" not in run.series:
                    continue  # reported above
                seeds.add(run.seed)
                record, filled = _record(run, problem, opt, trial, hparams, metric_of[problem])
                n_filled += filled
                builder.add_trial(record)
                n_files += 1
            if seeds:
                seed_sets.append(frozenset(seeds))
        builder.add_space(problem, opt, _observed_space(lrs, other))

    return seed_sets, n_files, n_filled


def _family(runs: Sequence[_Run], bad: BadInputs) -> str:
    name = runs[0].optimizer
    family = DEEPOBS_FAMILIES.get(name, "")
    if family == "momentum":
        nesterov = {r.nesterov for r in runs}
        if len(nesterov) > 1:
            bad.bad(
                f"{runs[0].path.parent.parent}: settings mix use_nesterov True and False; "
                "family left empty"
            )
            return ""
        if nesterov == {True}:
            return "nesterov"
    return family


def _setting_hparams(runs: Sequence[_Run], bad: BadInputs) -> dict[str, float] | None:
    first = runs[0]
    out = {"learning_rate": first.learning_rate, **first.hparams}
    for run in runs[1:]:
        if not math.isclose(run.learning_rate, first.learning_rate, rel_tol=_LR_RTOL):
            bad.bad(
                f"{run.path}: learning_rate {run.learning_rate!r} differs from "
                f"{first.learning_rate!r} in {first.path.name} of the same setting folder"
            )
            return None
        if run.hparams.keys() != first.hparams.keys() or any(
            not math.isclose(run.hparams[k], v, rel_tol=_LR_RTOL) for k, v in first.hparams.items()
        ):
            bad.bad(f"{run.path}: hyperparameters differ from {first.path.name} of its setting")
            return None
    return out


def _record(
    run: _Run, problem: str, opt: str, trial: int, hparams: dict[str, float], metric: str
) -> tuple[TrialRecord, int]:
    series = dict(run.series)
    filled = 0
    status = Status.COMPLETED
    if run.fmt == "1.2":
        start = _restore_fill(series)
        if start is not None:
            filled = 1
            series = {k: v.copy() for k, v in series.items()}
            for v in series.values():
                v[start:] = np.nan
            status = Status.DIVERGED
    if not filled and any(
        not np.isfinite(v).all() for k, v in series.items() if k.endswith("_losses")
    ):
        status = Status.DIVERGED
    n = len(series["train_losses"])
    suffix = "accuracies" if metric == "accuracy" else "losses"
    curves = Curves(
        step=np.arange(n),
        train_loss=series["train_losses"],
        valid_loss=series.get("valid_losses"),
        test_loss=series["test_losses"],
        train_metric=series.get(f"train_{suffix}"),
        valid_metric=series.get(f"valid_{suffix}"),
        test_metric=series.get(f"test_{suffix}"),
    )
    record = TrialRecord(
        workload=problem,
        optimizer=opt,
        trial=trial,
        status=status,
        hparams=hparams,
        curves=curves,
        seed=run.seed,
        repeat={"seed": run.seed},
    )
    return record, filled


def _observed_space(lrs: Sequence[float], other: dict[str, list[float]]) -> SpaceRecord:
    """The grid as observed: the DeepOBS protocol searched the learning rate on a log
    grid (its observed range, log scale); every other hyperparameter is fixed where one
    value was used, else its observed range on a linear scale (the files do not say how
    it was searched)."""
    dims = [_observed_dim("learning_rate", lrs, log=True)]
    dims.extend(_observed_dim(name, values, log=False) for name, values in sorted(other.items()))
    return SpaceRecord("deepobs-observed-grid", tuple(dims))


def _observed_dim(name: str, values: Sequence[float], *, log: bool) -> SpaceDim:
    low, high = min(values), max(values)
    if low == high:
        return SpaceDim(name, low, high, Scale.FIXED)
    return SpaceDim(name, low, high, Scale.LOG if log and low > 0 else Scale.LINEAR)


def _shared_seeds(seed_sets: Sequence[frozenset[int]]) -> str:
    """The seeds every setting shares, when some settings have more ("" otherwise)."""
    if not seed_sets or len(set(seed_sets)) == 1:
        return ""
    common = frozenset.intersection(*seed_sets)
    return ",".join(str(s) for s in sorted(common))


def _level_caveats(builder: ArchiveBuilder, fmt: str, below: bool, varying: list[int]) -> None:
    if varying:
        builder.add_caveat(
            "folder levels above the test problem that differ between runs are part of "
            "the optimizer label (e.g. AdamOptimizer-large_budget)"
        )
    if fmt == "1.2":
        builder.add_caveat(
            "coordinates budget and schedule (optimizer) hold the two folder names above "
            "the test problem (DeepOBS 1.2 layout results/<budget>/<schedule>/<problem>)"
            + (", read from the path above SRC" if below else "")
        )


def _schedule_text(found: set[str]) -> str:
    """One cell's training_params: its one JSON object ("" for none), or a JSON array of
    the distinct ones ({} standing for none)."""
    if len(found) == 1:
        return next(iter(found))
    return "[" + ", ".join(sorted(v or "{}" for v in found)) + "]"


def _with_run_settings(
    ds: xr.Dataset,
    runs: Sequence[_Run],
    opt_label: Callable[[_Run], str],
    fmt: str,
) -> xr.Dataset:
    """Coordinates batch_size and l2_reg (workload, optimizer; NaN where not logged or not
    one value), training_params (workload, optimizer; the cell's one JSON object, a JSON
    array of its distinct objects where settings differ, "" where none), and for 1.2
    budget and schedule (optimizer)."""
    workloads = [str(w) for w in ds["workload"].values]
    optimizers = [str(o) for o in ds["optimizer"].values]
    values: dict[str, dict[tuple[str, str], set[float]]] = {"batch_size": {}, "l2_reg": {}}
    folders: dict[str, set[tuple[str, str]]] = {}
    schedules: dict[tuple[str, str], set[str]] = {}
    for run in runs:
        label = opt_label(run)
        schedules.setdefault((run.problem, label), set()).add(run.training_params)
        for name in values:
            v = getattr(run, name)
            values[name].setdefault((run.problem, label), set()).add(v)
        folders.setdefault(label, set()).add(run.context)
    coords: dict[str, Any] = {}
    for name, cells in values.items():
        table = np.full((len(workloads), len(optimizers)), np.nan)
        for (w, o), vs in cells.items():
            finite = {v for v in vs if not math.isnan(v)}
            if w in workloads and o in optimizers and len(finite) == 1 and len(vs) == 1:
                table[workloads.index(w), optimizers.index(o)] = finite.pop()
        coords[name] = (("workload", "optimizer"), table)
    texts = np.full((len(workloads), len(optimizers)), "", dtype=object)
    for (w, o), found in schedules.items():
        if w in workloads and o in optimizers:
            texts[workloads.index(w), optimizers.index(o)] = _schedule_text(found)
    coords["training_params"] = (("workload", "optimizer"), texts.astype(str))
    if fmt == "1.2":
        budget = []
        schedule = []
        for o in optimizers:
            ctx = folders.get(o, set())
            one = next(iter(ctx)) if len(ctx) == 1 else ("", "")
            budget.append(one[0])
            schedule.append(one[1])
        coords["budget"] = ("optimizer", np.array(budget, dtype=str))
        coords["schedule"] = ("optimizer", np.array(schedule, dtype=str))
    return ds.assign_coords(coords)
