"""Peer scoring rules reproduced from stored archives: the DeepOBS analyser and the
AlgoPerf leaderboard score (docs/method.md, "Peer scoring rules").

Dependency rule: numpy, xarray, attrs, optcmp_data and this package (no torch, no CLI libraries).

DeepOBS analyser (`deepobs_report`): a setting is one trial; mode "final" ranks settings
by the mean over seeds of the final value of the selection-split metric, mode "best" by
the best value over evaluations of the seed-mean curve (NaN evaluations ignored); NaN
never wins and ties go to the lowest trial (DeepOBS itself takes the first folder
`os.listdir` returns). The selection
uses only the repeats named by the archive attribute `selection_repeats` (unless
`all_repeats=True`, which is what the DeepOBS analyser does on the final tree); the reported
performance is the mean over all the chosen setting's seeds of the final test metric, and
"speed" the mean over those seeds of the first evaluation index at which the test metric
reaches the workload's `test_target` (the number of evaluations, num_epochs + 1, if
never). Unlike `select_best`, run statuses are not consulted: DeepOBS looks at values only.

AlgoPerf (`algoperf_score`): per study, each trial's first evaluation whose validation
metric reaches `valid_target`; the study's time is the `time` (AlgoPerf's score column) of
the trial reaching it at the earliest evaluation index (ties, where several trials first
reach it at that same index: the earliest time), inf if none;
a submission's time on a workload is the median over the studies that hold any
evaluation (inf if none: a missing workload). Held-out rules, in order: a held-out
variant is inf where its base is inf; a time above 4x the fastest submission's on that
workload becomes inf; a base workload is inf where its held-out variant is inf. Only the
base workloads are scored: r = time / fastest, rho(tau) = share of base workloads with
r <= tau over tau = linspace(1, 4, 100), score = trapezoid integral of rho / 3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_analysis._enums import DeepobsMode
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._kernels import argbest, mean_where
from optcmp_analysis._records import (
    ByLabel,
    Cell,
    Computed,
    Const,
    Field,
    Labels,
    Records,
    Result,
    Var,
    attr,
    json_value,
)
from optcmp_analysis._selection import selection_repeat_mask
from optcmp_data import (
    Direction,
    Split,
    Status,
    archive_caveats,
    parse_selection_repeats,
    repeat_dims,
)

__all__ = [
    "AlgoperfScore",
    "DeepobsMode",
    "DeepobsReport",
    "algoperf_score",
    "algoperf_study_times",
    "base_of",
    "deepobs_report",
    "profile_score",
]

FloatArray = npt.NDArray[np.float64]

_RUN = "_run"


def _runs(archive: xr.Dataset, var: str | xr.DataArray) -> FloatArray:
    """`var` (a variable's name, or an array over the archive's dims) as (workload,
    optimizer, trial, run[, eval]) with repeat dims stacked as runs."""
    da = archive[var] if isinstance(var, str) else var
    reps = repeat_dims(archive)
    da = da.stack({_RUN: reps}) if reps else da.expand_dims(_RUN)
    order = ["workload", "optimizer", "trial", _RUN] + (["eval"] if "eval" in da.dims else [])
    return np.asarray(da.transpose(*order).values)


def _min_finite(values: FloatArray) -> FloatArray:
    """Smallest finite value along the last axis (NaN evaluations ignored); NaN if none."""
    finite = np.isfinite(values)
    return np.where(finite.any(axis=-1), np.where(finite, values, np.inf).min(axis=-1), np.nan)


@attrs.frozen
class DeepobsReport(Result):
    """The DeepOBS analyser's choice per (workload, optimizer).

    `data` (dims workload, optimizer) holds `trial` (-1 if none), `selection_value`,
    `performance` (final test metric, mean over the chosen setting's seeds), `speed`
    (NaN without a test target), `n_seeds`, `metric_name`, `direction`,
    `selection_split`, `test_target` and the chosen `hparams` (dim hparam).
    `selection_repeats`: the repeats settings were ranked on (the archive's attribute,
    e.g. "seed=42"; "" when every seed was used).
    """

    data: xr.Dataset
    mode: DeepobsMode = attrs.field(metadata=attr())
    caveats: tuple[str, ...] = attrs.field(metadata=attr())
    selection_repeats: str = ""

    # Records: workload, optimizer, trial, hyperparameters, metric, split ("test"), value
    # (= performance), selection_value, selection_split, selection_repeats (the repeats
    # selection_value comes from: e.g. "seed=42", or "all"), performance (over all n_seeds
    # seeds of the chosen setting), speed, n_seeds, mode.
    JSON = (
        Records(
            dims=("workload", "optimizer"),
            keys=(
                Labels(),
                Var("trial", cast=int, missing=-1),
                ByLabel("hyperparameters", "hparams", "hparam", finite_only=True),
                Var("metric", "metric_name", cast=str),
                Const("split", "test"),
                Var("value", "performance", cast=float),
                Var("selection_value", cast=float),
                Var("selection_split", cast=str),
                Field("selection_repeats", empty="all"),
                Var("performance", cast=float),
                Var("speed", cast=float),
                Var("n_seeds", cast=int),
                Field("mode"),
            ),
        ),
    )


def deepobs_report(
    archive: xr.Dataset,
    /,
    *,
    mode: DeepobsMode | str = DeepobsMode.FINAL,
    all_repeats: bool = False,
) -> DeepobsReport:
    """The DeepOBS analyser's setting choice, reported performance and speed (module
    docstring). `all_repeats` ignores `selection_repeats` and ranks by every seed."""
    mode = DeepobsMode(mode)
    chosen = {} if all_repeats else parse_selection_repeats(archive, source="archive")
    step = _runs(archive, "step")
    has_eval = step >= 0
    present = _runs(archive, "status").astype(str) != Status.MISSING.value
    maximise = archive["metric_direction"].values.astype(str) == Direction.MAX.value
    sign = np.where(maximise, -1.0, 1.0)
    s3, s4 = sign[:, None, None], sign[:, None, None, None]
    split_test = archive["selection_split"].values.astype(str) == Split.TEST.value
    test = np.where(has_eval, _runs(archive, "test_metric"), np.nan)
    valid = np.where(has_eval, _runs(archive, "valid_metric"), np.nan)
    sel = np.where(split_test[:, None, None, None, None], test, valid)
    n_evals = has_eval.sum(axis=-1)
    last = np.maximum(n_evals - 1, 0)

    def final(curve: FloatArray) -> FloatArray:
        value = np.take_along_axis(curve, last[..., None], axis=-1)[..., 0]
        return np.where(n_evals > 0, value, np.nan)

    # NaN in a masked-in run propagates into the mean, as np.mean does in DeepOBS.
    scored = present & _runs(archive, selection_repeat_mask(archive, chosen))
    if mode is DeepobsMode.FINAL:
        oriented = s3 * mean_where(final(sel), scored, axis=-1)
    else:
        mean_curve = mean_where(
            np.moveaxis(sel, -1, -2), scored[..., None, :], axis=-1
        )  # (w, o, t, eval)
        oriented = _min_finite(s4 * mean_curve)
    # The first minimum: ties go to the lowest trial.
    position = argbest(oriented, axis=2)
    has = position >= 0
    safe = np.maximum(position, 0)

    def pick(values: FloatArray) -> FloatArray:
        return np.where(has, np.take_along_axis(values, safe[..., None], axis=2)[..., 0], np.nan)

    run_ok = present & (n_evals > 0)
    if mode is DeepobsMode.FINAL:
        perf = mean_where(final(test), run_ok, axis=-1)
    else:
        # As the DeepOBS analyser in mode "best": the best value of the seed-mean test curve.
        test_curve = mean_where(np.moveaxis(test, -1, -2), run_ok[..., None, :], axis=-1)
        perf = s4[..., 0] * _min_finite(s4 * test_curve)
    target = archive["test_target"].values.astype(np.float64)
    oriented_test = s4[..., None] * test
    reached = oriented_test <= (sign * target)[:, None, None, None, None]
    first = np.where(reached.any(axis=-1), reached.argmax(axis=-1), n_evals).astype(np.float64)
    speed = mean_where(first, run_ok, axis=-1)
    speed = np.where(np.isfinite(target)[:, None, None], speed, np.nan)
    n_seeds = run_ok.sum(axis=-1)

    trial_labels = archive["trial"].values
    hp = archive["hparams"].transpose("workload", "optimizer", "trial", "hparam").values
    chosen_hp = np.where(
        has[..., None], np.take_along_axis(hp, safe[..., None, None], axis=2)[:, :, 0], np.nan
    )
    cell = ("workload", "optimizer")
    data = xr.Dataset(
        {
            "trial": (cell, np.where(has, trial_labels[safe], -1).astype(np.int64)),
            "selection_value": (cell, pick(s3 * oriented)),
            "performance": (cell, pick(perf)),
            "speed": (cell, pick(speed)),
            "n_seeds": (cell, np.where(has, pick(n_seeds.astype(np.float64)), 0).astype(np.int64)),
            "hparams": ((*cell, "hparam"), chosen_hp),
            "metric_name": ("workload", archive["metric_name"].values.astype(str)),
            "direction": ("workload", archive["metric_direction"].values.astype(str)),
            "selection_split": ("workload", archive["selection_split"].values.astype(str)),
            "test_target": ("workload", target),
        },
        coords={
            "workload": archive["workload"].values,
            "optimizer": archive["optimizer"].values,
            "hparam": archive["hparam"].values,
        },
    )
    caveats = archive_caveats(archive)
    if chosen:
        caveats.append(
            f"settings ranked on repeats {archive.attrs['selection_repeats']} only; "
            "performance and speed average all seeds of the chosen setting"
        )
    return DeepobsReport(
        data=data,
        mode=mode,
        caveats=tuple(dict.fromkeys(caveats)),
        selection_repeats=str(archive.attrs["selection_repeats"]) if chosen else "",
    )


# --- AlgoPerf ---------------------------------------------------------------------------


def _split_list(text: Any) -> list[str]:
    return [w.strip() for w in str(text).split(",") if w.strip()]


def base_of(held_out: str, base: Sequence[str]) -> str:
    """The base workload a held-out variant modifies: the longest base name that is a
    prefix of it followed by '_' (criteo1tb_embed_init -> criteo1tb)."""
    matches = [b for b in base if held_out.startswith(b + "_")]
    if not matches:
        raise AnalysisError(f"held-out workload {held_out!r} is a variant of no base {list(base)}")
    return max(matches, key=len)


def algoperf_study_times(archive: xr.Dataset, /) -> xr.DataArray:
    """Time to target per (workload, optimizer, study): the `time` of the trial that reaches
    `valid_target` at the earliest evaluation index; inf if no trial reaches it, NaN for a
    study without any evaluation (absent from the logs)."""
    if "study" in archive.dims:
        ds = archive
    else:
        ds = archive.expand_dims(study=[0])
        for var in ("step", "time", "valid_metric"):
            ds[var] = ds[var].transpose("workload", "optimizer", "trial", "study", "eval")
    order = ("workload", "optimizer", "study", "trial", "eval")
    extra = [d for d in repeat_dims(ds) if d != "study"]
    if extra:
        raise AnalysisError(f"AlgoPerf scoring expects only the repeat axis 'study', not {extra}")
    step = ds["step"].transpose(*order).values
    time = ds["time"].transpose(*order).values
    valid = ds["valid_metric"].transpose(*order).values
    maximise = ds["metric_direction"].values.astype(str) == Direction.MAX.value
    target = ds["valid_target"].values.astype(np.float64)
    if np.isnan(target).any():
        missing = [str(w) for w, t in zip(ds["workload"].values, target, strict=True) if t != t]
        raise AnalysisError(f"workloads {missing} have no valid_target; cannot score")
    sign = np.where(maximise, -1.0, 1.0)
    has_eval = step >= 0
    # Oriented so that smaller is better; NaN compares False, so it never reaches.
    reached = has_eval & (
        sign[:, None, None, None, None] * valid <= (sign * target)[:, None, None, None, None]
    )
    n_eval = step.shape[-1]
    first = np.where(reached.any(axis=-1), reached.argmax(axis=-1), n_eval)  # (w, o, s, t)
    best_index = first.min(axis=-1)  # (w, o, s)
    # Time of every trial at its first reaching evaluation (inf if it never reaches).
    at = np.take_along_axis(time, np.minimum(first, n_eval - 1)[..., None], axis=-1)[..., 0]
    at = np.where(first < n_eval, at, np.inf)
    # Tie rule: among the trials first reaching at the earliest index, the earliest time
    # wins (NaN times never win; equal times are equal whichever trial gives them).
    tied = first == best_index[..., None]
    tied_time = np.where(tied & ~np.isnan(at), at, np.inf)
    earliest = tied_time.min(axis=-1)
    times = np.where(best_index < n_eval, earliest, np.inf)
    present = has_eval.any(axis=(-1, -2))
    times = np.where(present, times, np.nan)
    return xr.DataArray(
        times,
        dims=("workload", "optimizer", "study"),
        coords={
            "workload": ds["workload"].values,
            "optimizer": ds["optimizer"].values,
            "study": ds["study"].values,
        },
        name="study_time",
    )


def _median_present(values: FloatArray) -> FloatArray:
    """Median over the last axis ignoring NaN (absent studies); inf where all are absent."""
    out = np.full(values.shape[:-1], np.inf)
    for index in np.ndindex(*values.shape[:-1]):
        row = values[index]
        row = row[~np.isnan(row)]
        if len(row):
            out[index] = float(np.median(row))
    return out


def profile_score(
    times: FloatArray, /, *, max_tau: float = 4.0, n_tau: int = 100
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Performance profile and score from times (submission, base workload): returns
    (ratio, tau, rho) and the score is `rho` integrated by the trapezoid rule over
    [1, max_tau] divided by max_tau - 1 (see `algoperf_score`)."""
    best = np.where(np.isfinite(times), times, np.inf).min(axis=0, initial=np.inf)
    ok = np.isfinite(times) & np.isfinite(best) & (best > 0)
    ratio = np.full(times.shape, np.inf)
    np.divide(times, best, out=ratio, where=ok)
    tau = np.linspace(1.0, max_tau, n_tau)
    n_workloads = times.shape[1]
    rho = (ratio[:, :, None] <= tau[None, None, :]).sum(axis=1) / max(n_workloads, 1)
    return ratio, tau, rho


def _trapezoid(y: FloatArray, x: FloatArray) -> FloatArray:
    return np.asarray(((y[..., 1:] + y[..., :-1]) / 2.0 * np.diff(x)).sum(axis=-1))


@attrs.frozen
class AlgoperfScore(Result):
    """AlgoPerf leaderboard scores of the submissions (optimizers) of one archive.

    `data` holds `study_time` (workload, optimizer, study), `time` (median over studies,
    workload x optimizer, for every base and held-out workload; inf when missing),
    `time_scored` (after the held-out and 4x rules), `ratio` (base workloads), `rho`
    (optimizer, tau) and `score` (optimizer); `role` (workload) is "base" or "held_out".
    """

    data: xr.Dataset
    caveats: tuple[str, ...] = attrs.field(metadata=attr())
    rules: tuple[tuple[str, str], ...] = ()

    def _extra_attrs(self) -> dict[str, Any]:
        return {f"rule_{k.replace(' ', '_')}": v for k, v in self.rules}

    def rules_json(self) -> dict[str, str]:
        """The rules applied, as {name: description}."""
        return dict(self.rules)

    def details_json(self) -> list[dict[str, Any]]:
        """Per (optimizer, workload): role, time (median over studies), time_scored (after
        the held-out rules), ratio (base workloads only), study_times."""
        return self.json_records(_DETAILS)

    def _ratio(self, cell: Cell) -> float | None:
        if str(cell["role"]) != "base":
            return None
        optimizer, workload = cell.labels["optimizer"], cell.labels["workload"]
        return float(self.data["ratio"].sel(optimizer=optimizer, base=workload).values)

    # [{"optimizer", "score"}], best score first (ties by name).
    JSON = (
        Records(
            dims=("optimizer",),
            keys=(Labels(), Var("score", cast=float)),
            sort=lambda r: (-(math.nan if r["score"] is None else r["score"]), r["optimizer"]),
        ),
    )


# Per (optimizer, workload): `AlgoperfScore.details_json`.
_DETAILS = Records(
    dims=("optimizer", "workload"),
    keys=(
        Labels(),
        Var("role", cast=str),
        Var("time", cast=float),
        Var("time_scored", cast=float),
        Computed("ratio", "_ratio"),
        Computed(
            "study_times",
            lambda r, c: [
                json_value(float(v)) if not np.isnan(v) else "absent" for v in c["study_time"]
            ],
        ),
    ),
)


def algoperf_score(
    archive: xr.Dataset,
    /,
    *,
    base_workloads: Sequence[str] | None = None,
    held_out_workloads: Sequence[str] | None = None,
    max_tau: float = 4.0,
    n_tau: int = 100,
) -> AlgoperfScore:
    """AlgoPerf scores of every optimizer (submission) in `archive` (module docstring).

    The base and held-out workload lists default to the archive attributes
    `base_workloads` / `held_out_workloads` (comma-separated) that the AlgoPerf importer
    writes. Raises AnalysisError when they are absent or inconsistent.
    """
    base = (
        list(base_workloads)
        if base_workloads is not None
        else _split_list(archive.attrs.get("base_workloads", ""))
    )
    held = (
        list(held_out_workloads)
        if held_out_workloads is not None
        else _split_list(archive.attrs.get("held_out_workloads", ""))
    )
    if not base:
        raise AnalysisError(
            "archive has no base_workloads attribute (is it an AlgoPerf import?); "
            "pass the base workloads explicitly"
        )
    if max_tau <= 1.0 or n_tau < 2:
        raise AnalysisError(f"max_tau {max_tau} must exceed 1 and n_tau {n_tau} be >= 2")
    study = algoperf_study_times(archive)
    medians = _median_present(study.values)  # (w, o)
    names = [str(w) for w in archive["workload"].values]
    optimizers = [str(o) for o in archive["optimizer"].values]
    scored = [*base, *held]
    # Workloads the archive lacks are missing for every submission: inf.
    table = np.full((len(optimizers), len(scored)), np.inf)
    for j, w in enumerate(scored):
        if w in names:
            table[:, j] = medians[names.index(w), :]
    raw = table.copy()
    col = {w: j for j, w in enumerate(scored)}
    pairs = [(col[h], col[base_of(h, base)]) for h in held]
    for h, b in pairs:
        table[~np.isfinite(table[:, b]), h] = np.inf
    fastest = table.min(axis=0)
    table[table > 4.0 * fastest[None, :]] = np.inf
    for h, b in pairs:
        table[~np.isfinite(table[:, h]), b] = np.inf
    base_times = table[:, : len(base)]
    ratio, tau, rho = profile_score(base_times, max_tau=max_tau, n_tau=n_tau)
    score = _trapezoid(rho, tau) / (max_tau - 1.0)

    study_sel = np.full((len(scored), len(optimizers), study.sizes["study"]), np.nan)
    for j, w in enumerate(scored):
        if w in names:
            study_sel[j] = study.values[names.index(w)]
    data = xr.Dataset(
        {
            "study_time": (("workload", "optimizer", "study"), study_sel),
            "time": (("workload", "optimizer"), raw.T),
            "time_scored": (("workload", "optimizer"), table.T),
            "ratio": (("optimizer", "base"), ratio),
            "rho": (("optimizer", "tau"), rho),
            "score": ("optimizer", score),
            "role": ("workload", np.array(["base"] * len(base) + ["held_out"] * len(held))),
        },
        coords={
            "workload": np.array(scored, dtype=str),
            "optimizer": np.array(optimizers, dtype=str),
            "study": study["study"].values,
            "base": np.array(base, dtype=str),
            "tau": tau,
        },
    )
    caveats = archive_caveats(archive)
    absent = [w for w in scored if w not in names]
    if absent:
        caveats.append(f"workloads {absent} are absent from the archive: scored as inf")
    rules = _algoperf_rules(archive, base, held, study.sizes["study"], max_tau, n_tau)
    return AlgoperfScore(data=data, caveats=tuple(caveats), rules=rules)


def _algoperf_rules(
    archive: xr.Dataset,
    base: Sequence[str],
    held: Sequence[str],
    n_studies: int,
    max_tau: float,
    n_tau: int,
) -> tuple[tuple[str, str], ...]:
    """What `algoperf_score` applied, read from the archive (targets file and logs as the
    importer recorded them), never from one benchmark version's constants."""
    version = str(archive.attrs.get("benchmark_version", "")) or "not recorded"
    ruleset = str(archive.attrs.get("ruleset", "")) or "not recorded"
    from_logs = archive.attrs.get("studies_per_submission")
    studies = (
        f"{int(from_logs)} per submission (from the logs)"
        if from_logs is not None
        else f"{n_studies} (the archive's study axis)"
    )
    trials = archive.attrs.get("trials_per_study")
    held_rule = (
        "a held-out variant is inf where its base is inf; a base is inf where its "
        f"held-out variant is inf (after the {max_tau:g}x rule)"
        if held
        else "not applied (no held-out workloads)"
    )
    return (
        ("benchmark version", version),
        ("ruleset", ruleset),
        ("base workloads", f"{len(base)}: {', '.join(base)}"),
        ("held-out workloads", f"{len(held)}: {', '.join(held)}" if held else "none"),
        ("studies", studies),
        ("trials per study", str(int(trials)) if trials is not None else "as in the archive"),
        (
            "time to target",
            "per study, the time of the trial first reaching the validation target at the "
            "earliest evaluation index; ties at that index: the earliest time; a "
            "submission's time is the median over its studies holding any evaluation",
        ),
        ("held-out rules", held_rule),
        (
            "profile",
            f"a time above {max_tau:g}x the fastest is inf; score = integral of the share of "
            f"base workloads within tau of the fastest over tau in [1, {max_tau:g}] "
            f"({n_tau} points, trapezoid) / {max_tau - 1:g}",
        ),
    )
