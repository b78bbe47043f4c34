"""Time-to-target performance profiles across workloads (Dolan and Moré 2002, as AlgoPerf
scores training algorithms; Dahl et al. 2023).

Dependency rule: numpy, xarray, attrs, optcmp_data and this package.

Definitions. A workload's target is its `valid_target` on the validation metric, or where
that is missing its `test_target` on the test metric (DeepOBS); a workload with neither is
left out, with a caveat. A run reaches the target at its first evaluation (by step) whose
metric is at least as good; its time to target is that evaluation's `time` (measure
"time") or `step` (measure "steps"), inf if it never does. A trial's time is the median
over its present runs of the seed repeat axis, if any; a study's time is its fastest
trial's (the tuned optimizer is the one whose search reached the target first), among k
trials: k is the smallest trial count of the workload's (optimizer, study) cells (a
profile compares optimizers within each workload), and a cell with more trials takes the
median over its k-trial subsets of their fastest trial, so more trials give no more
chances (equal counts: every trial, as before); an
optimizer's time on a workload is the median over the studies (the `study` repeat axis)
that hold a present run, inf if none. With t[w, o] the optimizer's time and
t*[w] = min_o t[w, o], the ratio is r = t / t* (inf where t or t* is inf), and the
profile is rho_o(tau) = |{w : r[w, o] <= tau}| / W over tau in [1, max_tau], W counting
every workload with a target (also those no optimizer reached). The area score is the
trapezoid integral of rho over [1, max_tau] divided by max_tau - 1 (1: fastest
everywhere; 0: never within max_tau). AlgoPerf's own leaderboard rules (the trial reaching
the target at the earliest evaluation index, the held-out workload rules) are in
`algoperf_score`; this profile applies to any archive with targets.
"""

from __future__ import annotations

import warnings

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_analysis._enums import Measure
from optcmp_analysis._errors import AnalysisError
from optcmp_analysis._kernels import exact_probabilities
from optcmp_analysis._records import (
    Field,
    Labels,
    Records,
    Result,
    Var,
    attr,
    finite,
    included_labels,
    where,
)
from optcmp_analysis._targets import steps_to_target
from optcmp_data import Status

__all__ = [
    "Measure",
    "PerformanceProfiles",
    "performance_profiles",
    "profile_curves",
]

FloatArray = npt.NDArray[np.float64]


def profile_curves(times: FloatArray, tau: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Ratios and profiles from times (W, O): returns r (W, O) and rho (O, len(tau)).

    r = t / min over optimizers (inf where t is inf or nobody reached); rho(tau) is the
    share of the W workloads with r <= tau."""
    t = np.asarray(times, dtype=np.float64)
    finite = np.isfinite(t)
    best = np.where(finite, t, np.inf).min(axis=1, initial=np.inf)
    ratio = np.full(t.shape, np.inf)
    ok = finite & np.isfinite(best)[:, None]
    # A time of 0 (reached at the first evaluation) against a best of 0 is a ratio of 1.
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(best[:, None] > 0, t / best[:, None], np.where(t > 0, np.inf, 1.0))
    ratio = np.where(ok, raw, np.inf)
    n_w = max(t.shape[0], 1)
    rho = (ratio[:, :, None] <= np.asarray(tau)[None, None, :]).sum(axis=0) / n_w
    return ratio, rho


def _trapezoid(y: FloatArray, x: FloatArray) -> FloatArray:
    return np.asarray(((y[..., 1:] + y[..., :-1]) / 2.0 * np.diff(x)).sum(axis=-1))


@attrs.frozen
class PerformanceProfiles(Result):
    """Time-to-target profiles.

    `data`: per (workload, optimizer) `time` (the optimizer's time to target; inf: not
    reached) and `ratio`; per (optimizer, tau) `rho`; per optimizer `area`; per workload
    `target`, `target_split`, `metric_name`, `included`.
    """

    data: xr.Dataset
    measure: Measure = attrs.field(metadata=attr())
    max_tau: float = attrs.field(metadata=attr())
    caveats: tuple[str, ...] = attrs.field(metadata=attr())
    # Trials per study whose fastest sets the study's time (the smallest over the included
    # workloads; per workload in the `budget` variable).
    budget: int = attrs.field(default=0, metadata=attr())

    @property
    def budget_phrase(self) -> str:
        """ "k = 5", or "k = 1 to 5 (per workload)" where the workloads' budgets differ."""
        ks = self.data["budget"].values[self.data["included"].values]
        if ks.size == 0 or int(ks.min()) == int(ks.max()):
            return f"k = {self.budget}"
        return f"k = {int(ks.min())} to {int(ks.max())} (per workload)"

    @property
    def workloads(self) -> list[str]:
        return included_labels(self.data)

    @property
    def n_workloads(self) -> int:
        return len(self.workloads)

    # Flat records with a "record" key: "area" -- optimizer, value (the area score in
    # [0, 1]), n_workloads, budget (trials per study), measure; "profile" -- optimizer,
    # tau, value (rho(tau), the share of workloads within tau of the fastest), measure;
    # "time" (included workloads) -- workload, optimizer, metric, split (the target's),
    # target, value (time or steps to target, null: never reached), ratio (null: never),
    # measure.
    JSON = (
        Records(
            record="area",
            dims=("optimizer",),
            keys=(
                Labels(),
                Var("value", "area", cast=float),
                Field("n_workloads"),
                Field("budget"),
                Field("measure"),
            ),
        ),
        Records(
            record="profile",
            dims=("optimizer", "tau"),
            keys=(Labels(), Var("value", "rho", cast=float), Field("measure")),
        ),
        Records(
            record="time",
            dims=("workload", "optimizer"),
            where=("included",),
            keys=(
                Labels(),
                Var("metric", "metric_name", cast=str),
                Var("split", "target_split", cast=str),
                Var("target", cast=float),
                Var("value", "time", cast=float),
                Var("ratio", cast=float),
                Field("measure"),
            ),
        ),
    )


def performance_profiles(
    archive: xr.Dataset,
    /,
    *,
    measure: Measure | str = Measure.AUTO,
    max_tau: float = 4.0,
    n_tau: int = 100,
    budget: int | None = None,
    with_replacement: bool = False,
) -> PerformanceProfiles:
    """Time-to-target performance profiles of every optimizer (see the module docstring).

    A study's time is that of its fastest trial among k (`budget`, default per workload the
    smallest trial count of its (optimizer, study) cells): with k equal to a
    cell's count, its fastest trial; with fewer, the median over k-trial subsets drawn
    without replacement of their fastest trial (so a cell with more trials gets no more
    chances). Raises AnalysisError when no workload has a target, for max_tau <= 1 or
    n_tau < 2, for measure "time" on an archive that records no times, or for a budget above
    some cell's trial count unless `with_replacement`.
    """
    if not max_tau > 1:
        raise AnalysisError(f"max_tau {max_tau} must be larger than 1")
    if n_tau < 2:
        raise AnalysisError(f"n_tau {n_tau} must be at least 2")
    measure, caveats = _measure(archive, Measure(measure))
    target, split, use_valid = _targets(archive)
    included = np.isfinite(target.values)
    workloads = [str(w) for w in archive["workload"].values]
    for w in np.array(workloads)[~included]:
        caveats.append(f"workload {w} has no target: left out of the profiles")
    if not included.any():
        raise AnalysisError(
            "no workload has a target (valid_target or test_target): no profiles to draw"
        )
    times, ks, counts_line = _cell_times(
        archive, target, use_valid, measure, budget, with_replacement
    )
    if counts_line:
        caveats.append(counts_line)
    t = times.transpose("workload", "optimizer").values.astype(np.float64)
    t = np.where(np.isnan(t), np.inf, t)  # no present run at all: never reached
    tau = np.linspace(1.0, max_tau, n_tau)
    t_in = t[included]
    ratio_in, rho = profile_curves(t_in, tau)
    ratio = np.full(t.shape, np.nan)
    ratio[included] = ratio_in
    never = [
        w
        for w, row in zip(np.array(workloads)[included], t_in, strict=True)
        if not np.isfinite(row).any()
    ]
    for w in never:
        caveats.append(f"workload {w}: no optimizer reached its target (counts as 0 for all)")
    data = xr.Dataset(
        {
            "time": (("workload", "optimizer"), t),
            "budget": ("workload", ks),
            "ratio": (("workload", "optimizer"), ratio),
            "rho": (("optimizer", "tau"), rho),
            "area": ("optimizer", _trapezoid(rho, tau) / (max_tau - 1.0)),
            "target": ("workload", target.values),
            "target_split": ("workload", np.asarray(split.values, dtype=str)),
            "metric_name": ("workload", archive["metric_name"].values.astype(str)),
            "included": ("workload", included),
        },
        coords={
            "workload": workloads,
            "optimizer": [str(o) for o in archive["optimizer"].values],
            "tau": tau,
        },
    )
    return PerformanceProfiles(
        data=data,
        measure=measure,
        max_tau=max_tau,
        caveats=tuple(dict.fromkeys(caveats)),
        budget=int(ks[included].min()) if included.any() else int(ks.min()),
    )


def _measure(archive: xr.Dataset, measure: Measure) -> tuple[Measure, list[str]]:
    """The measure, AUTO resolved (time where the archive records any), and its caveat."""
    has_time = bool(np.isfinite(archive["time"].values).any())
    if measure is Measure.AUTO:
        if not has_time:
            return Measure.STEPS, ["the archive records no times: time to target counts steps"]
        return Measure.TIME, []
    if measure is Measure.TIME and not has_time:
        raise AnalysisError("the archive records no times; use measure 'steps'")
    return measure, []


def _targets(archive: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """Per workload its target (the validation target, else the test target; NaN: none),
    the split it is on ("valid", "test" or ""), and whether that is the validation split."""
    valid_t = archive["valid_target"].astype(np.float64)
    test_t = archive["test_target"].astype(np.float64)
    use_valid = finite(valid_t)
    target = where(use_valid, valid_t, test_t)
    split = where(use_valid, "valid", where(np.isfinite(test_t), "test", ""))
    return target, split, use_valid


def _cell_times(
    archive: xr.Dataset,
    target: xr.DataArray,
    use_valid: xr.DataArray,
    measure: Measure,
    budget: int | None,
    with_replacement: bool,
) -> tuple[xr.DataArray, npt.NDArray[np.int64], str | None]:
    """Per (workload, optimizer) the time (or steps) to target of a study of k trials
    (median over seeds of a trial's runs, over studies of a cell's); the budget k per
    workload; the caveat on differing trial counts (None if none)."""
    curve = where(use_valid, archive["valid_metric"], archive["test_metric"])
    present = archive["status"].astype(str) != Status.MISSING.value
    # steps_to_target takes one direction; orient each workload by its own sign instead.
    sign = where(archive["metric_direction"].astype(str) == "max", -1.0, 1.0)
    reached = steps_to_target(
        sign * curve,
        archive["step"],
        archive["time"],
        (sign * target).expand_dims(target=1),
        target_dim="target",
    ).isel(target=0, drop=True)
    run_time = reached["time" if measure is Measure.TIME else "steps"].where(present)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        trial_time = run_time
        trial_present = present
        if "seed" in run_time.dims:
            trial_time = trial_time.median("seed", skipna=True)
            trial_present = trial_present.any("seed")
        # A present trial without a time (no evaluation at all) never reached the target.
        trial_time = where(trial_present, trial_time.fillna(np.inf), np.nan)
        ks, study_time, counts_line = _study_times(
            trial_time, trial_present, budget, with_replacement
        )
        if "study" in study_time.dims:
            return study_time.median("study", skipna=True), ks, counts_line
        return study_time, ks, counts_line


def _study_times(
    trial_time: xr.DataArray,
    trial_present: xr.DataArray,
    budget: int | None,
    with_replacement: bool,
) -> tuple[npt.NDArray[np.int64], xr.DataArray, str | None]:
    """Per workload the budget k (default the smallest trial count of its (optimizer, study)
    cells: a profile compares optimizers within a workload), each cell's k-trial study time
    (the median of the fastest of k trials, drawn without replacement, or with replacement
    past the cell's count where asked), and the mixed-trial-counts line (None: the counts
    agree on every workload)."""
    # Workload first: the loops below run over it by position.
    other = ["workload", *(str(d) for d in trial_time.dims if d not in ("trial", "workload"))]
    counts = trial_present.sum("trial").transpose(*other).values
    n_w = counts.shape[0]
    flat_counts = counts.reshape(n_w, -1)
    ks = np.ones(n_w, dtype=np.int64)
    mixed = []
    for wi in range(n_w):
        held = flat_counts[wi][flat_counts[wi] > 0]
        smallest = int(held.min()) if held.size else 1
        if held.size and int(held.max()) != smallest:
            mixed.append(f"{trial_time['workload'].values[wi]} ({smallest} to {int(held.max())})")
        k = smallest if budget is None else budget
        if k < 1:
            raise AnalysisError(f"budget {k} is not a positive number of trials")
        if k > smallest and not with_replacement:
            raise AnalysisError(
                f"budget {k} is larger than the smallest trial count {smallest} of a study "
                f"on workload {trial_time['workload'].values[wi]} (use a smaller budget, or "
                "--with-replacement to resample past a cell's trials)"
            )
        ks[wi] = k
    line = None
    if mixed:
        shown = ", ".join(mixed[:3]) + (f" and {len(mixed) - 3} more" if len(mixed) > 3 else "")
        line = (
            f"trial counts differ between the studies of {shown}: there a study's time is the "
            "median fastest of k trials, k the workload's smallest count, so a study with more "
            "trials gets no more chances (the AlgoPerf rule, every trial of a study, is "
            "`optcmp score`)"
        )
    t = trial_time.transpose(*other, "trial").values.astype(np.float64)
    n_t = t.shape[-1]
    flat = t.reshape(n_w, -1, n_t)
    out = np.full(flat.shape[:2], np.nan)
    for wi in range(n_w):
        k = int(ks[wi])
        for c, row in enumerate(flat[wi]):
            v = np.sort(row[~np.isnan(row)])  # fastest first; inf (never reached) last
            n = len(v)
            if n == 0:
                continue
            p = exact_probabilities(np.array([n]), k, n, replace=k > n)[0]
            out[wi, c] = v[int(np.argmax(np.cumsum(p) >= 0.5 - 1e-12))]
    coords = {d: trial_time[d].values for d in other}
    return ks, xr.DataArray(out.reshape(t.shape[:-1]), dims=other, coords=coords), line
