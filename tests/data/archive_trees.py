"""Small DeepOBS (1.1, 1.2) and AlgoPerf output trees, written by the tests, with the
quirks of the published archives (../shared/archives/README.md and method.md section 6).

Each writer returns the facts the tests check against, derived from the generated data,
so no expected result is typed in by hand.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

# ../shared/archives from the project's root; OPTCMP_SHARED_ARCHIVES points elsewhere (a
# git worktree that is not next to shared/).
SHARED_ARCHIVES = Path(
    os.environ.get("OPTCMP_SHARED_ARCHIVES")
    or Path(__file__).resolve().parents[2].parent / "shared" / "archives"
)


@attrs.frozen
class DeepobsFacts:
    root: Path
    problems: dict[str, str]  # problem -> metric ("accuracy" or "loss")
    optimizers: tuple[str, ...]
    lrs: tuple[float, ...]
    num_epochs: int
    chosen: dict[tuple[str, str], float]  # (problem, optimizer label) -> lr chosen on seed 42
    rerun_seeds: tuple[int, ...]
    diverged_lr: float
    targets: dict[str, float]
    first_file: Path


def _curve(start: float, end: float, n: int, rate: float) -> list[float]:
    e = np.arange(n)
    return list(end + (start - end) * np.exp(-rate * e))


def _setting_name(lr: float, num_epochs: int, extra: str = "") -> str:
    return f"num_epochs__{num_epochs}__batch_size__32__{extra}lr__{lr:.10e}"


def write_deepobs(
    root: Path,
    *,
    fmt: str = "1.1",
    seed: int = 0,
    num_epochs: int = 5,
    levels: Sequence[tuple[str, ...]] = ((),),
) -> DeepobsFacts:
    """A DeepOBS tree: 2 problems (one with accuracies, one loss-only) x 3 optimizer
    folders x 4 learning rates, seed 42 everywhere; the setting best on seed 42 is re-run
    with seeds 43-45, which do worse (so averaging them in would change the choice); the
    largest learning rate diverges. 1.1 writes bare NaN; 1.2 writes valid_* series, the
    epoch-0 divergence fill and doubled minibatch losses, under each of `levels`."""
    rng = np.random.default_rng(seed)
    problems = {"toy_mlp": "accuracy", "toy_quadratic": "loss"}
    optimizers = ("GradientDescentOptimizer", "MomentumOptimizer", "MyOptimizer")
    lrs = (1e-3, 1e-2, 10**-0.8, 1.0)
    n = num_epochs + 1
    diverged_lr = lrs[-1]
    chosen: dict[tuple[str, str], float] = {}
    first_file: Path | None = None
    rerun_seeds = (43, 44, 45)

    def run_obj(problem: str, opt: str, lr: float, run_seed: int, quality: float) -> dict[str, Any]:
        metric = problems[problem]
        loss_end = 1.0 + 3.0 * quality
        series: dict[str, list[float]] = {}
        splits = ("train", "valid", "test") if fmt == "1.2" else ("train", "test")
        for split in splits:
            series[f"{split}_losses"] = _curve(5.0, loss_end + 0.01 * rng.random(), n, 0.8)
            if metric == "accuracy":
                acc_end = 0.95 - 0.5 * quality + 0.001 * rng.random()
                series[f"{split}_accuracies"] = _curve(0.1, acc_end, n, 0.8)
        diverges = lr == diverged_lr
        if diverges:
            for key, values in series.items():
                for e in range(2, n):
                    if fmt == "1.2":
                        values[e] = values[0]  # DeepOBS 1.2 fills with epoch-0 values
                    elif key.endswith("losses"):
                        values[e] = math.nan
        hyper: dict[str, Any] = {}
        if opt == "MomentumOptimizer":
            hyper = {"momentum": 0.99, "use_nesterov": False}
        elif opt == "MyOptimizer":
            hyper = {"beta": 0.5, "mode": "fancy"}
        stored_lr = lr if run_seed == 42 else float(f"{lr:.10g}")
        obj: dict[str, Any] = {
            **series,
            "testproblem": problem,
            "batch_size": 32,
            "num_epochs": num_epochs,
            "random_seed": run_seed,
            "train_log_interval": 1,
        }
        steps = 3 * num_epochs
        if fmt == "1.1":
            obj.update(
                optimizer=opt,
                learning_rate=stored_lr,
                hyperparams=hyper,
                weight_decay=None,
                lr_sched_epochs=None,
                lr_sched_factors=None,
            )
            if problem == "toy_quadratic":  # only some files keep minibatch losses
                obj["minibatch_train_losses"] = list(rng.random(steps))
        else:
            mb = list(rng.random(steps))
            obj.update(
                optimizer_name=opt,
                optimizer_hyperparams={"learning_rate": stored_lr, **hyper},
                l2_reg=None,
                training_params={"lr_sched_epochs": None, "lr_sched_factors": None},
                minibatch_train_losses=[v for v in mb for _ in range(2)],
            )
        return obj

    def write(folder: Path, run_seed: int, obj: dict[str, Any]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"random_seed__{run_seed}__2019-02-13-15-20-{run_seed % 60:02d}.json"
        path.write_text(json.dumps(obj))  # json.dumps writes bare NaN tokens
        return path

    varying = [i for i in range(len(levels[0])) if len({lv[i] for lv in levels}) > 1]
    for level in levels:
        suffix = "".join(f"-{level[i]}" for i in varying)
        for problem, metric in problems.items():
            for opt in optimizers:
                qualities = rng.permutation(len(lrs) - 1) / (len(lrs) - 1)
                finals: dict[float, float] = {}
                for lr, q in zip(lrs, [*qualities, 1.0], strict=True):
                    folder = root.joinpath(*level, problem, opt, _setting_name(lr, num_epochs))
                    obj = run_obj(problem, opt, lr, 42, float(q))
                    path = write(folder, 42, obj)
                    first_file = first_file or path
                    key = "test_accuracies" if metric == "accuracy" else "test_losses"
                    finals[lr] = obj[key][-1]
                ok = {lr: v for lr, v in finals.items() if lr != diverged_lr}
                best = (max if metric == "accuracy" else min)(ok, key=lambda k: ok[k])
                chosen[(problem, opt + suffix)] = best
                for s in rerun_seeds:  # re-runs of the chosen setting do much worse
                    folder = root.joinpath(*level, problem, opt, _setting_name(best, num_epochs))
                    write(folder, s, run_obj(problem, opt, best, s, 2.0))
    (root / "convergence_performance.json").write_text(
        json.dumps({"toy_mlp": 0.5, "toy_quadratic": 3.0})
    )
    assert first_file is not None
    return DeepobsFacts(
        root=root,
        problems=problems,
        optimizers=optimizers,
        lrs=lrs,
        num_epochs=num_epochs,
        chosen=chosen,
        rerun_seeds=rerun_seeds,
        diverged_lr=diverged_lr,
        targets={"toy_mlp": 0.5, "toy_quadratic": 3.0},
        first_file=first_file,
    )


# --- AlgoPerf ----------------------------------------------------------------------------

ALGOPERF_TARGETS = {
    "_comment": "test targets",
    "benchmark_version": "test",
    "base_workloads": ["wa", "wb"],
    "held_out_workloads": ["wa_variant"],
    "workloads": {
        "wa": {"target_metric_name": "accuracy", "validation_target_value": 0.8, "step_hint": 100},
        "wa_variant": {
            "target_metric_name": "accuracy",
            "validation_target_value": 0.75,
            "step_hint": 100,
        },
        "wb": {"target_metric_name": "wer", "validation_target_value": 0.3, "step_hint": 200},
    },
}


@attrs.frozen
class AlgoperfFacts:
    root: Path
    submissions: tuple[str, ...]
    # (submission, workload, study, trial) -> rows of (global_step, score, valid metric)
    rows: dict[tuple[str, str, int, int], list[tuple[int, float, float]]]
    frameworks: dict[str, str]
    hparams: dict[tuple[str, str, int], dict[str, Any]]
    no_csv: tuple[tuple[str, str, int, int], ...]


def _metric_cols(workload: str) -> tuple[str, str]:
    """(metric, loss column name) of a test workload."""
    return ("wer", "ctc_loss") if workload == "wb" else ("accuracy", "loss")


def write_algoperf(
    root: Path, *, ruleset: str = "external_tuning", seed: int = 0, n_studies: int = 3
) -> AlgoperfFacts:
    """An AlgoPerf log tree with 3 submissions (one in PyTorch), ragged evaluation
    schedules, empty loss cells, a stray trial_* folder under a study, a trial folder
    with hparams.json but no eval_measurements.csv, and the targets file next to logs/."""
    rng = np.random.default_rng(seed)
    submissions = ("sub_a", "sub_b", "sub_c")
    frameworks = {"sub_a": "jax", "sub_b": "pytorch", "sub_c": "jax"}
    n_trials = 1 if ruleset == "self_tuning" else 3
    rows: dict[tuple[str, str, int, int], list[tuple[int, float, float]]] = {}
    hparams: dict[tuple[str, str, int], dict[str, Any]] = {}
    no_csv: list[tuple[str, str, int, int]] = []
    base = root / "logs" / ruleset
    for sub in submissions:
        for study in range(n_studies):
            study_dir = base / sub / f"study_{study}"
            if sub == "sub_c" and study == 0:
                stray = study_dir / "trial_1"
                stray.mkdir(parents=True)
                (stray / "eval_measurements.csv").write_text("global_step,score\n1,2\n")
            for wl in ("wa", "wa_variant", "wb"):
                if sub == "sub_c" and wl == "wb":
                    continue  # a submission lacking a workload
                metric, loss = _metric_cols(wl)
                for trial in range(1, n_trials + 1):
                    tdir = study_dir / f"{wl}_{frameworks[sub]}" / f"trial_{trial}"
                    tdir.mkdir(parents=True)
                    hp = {
                        "learning_rate": float(10 ** -rng.uniform(1, 4)),
                        "nesterov": trial % 2 == 0,
                        "style": "reduced",
                    }
                    if ruleset == "external_tuning":
                        # a trial's hyperparameters are the same in every study
                        hp = hparams.setdefault((sub, wl, trial), hp)
                        (tdir / "hparams.json").write_text(json.dumps(hp, indent=2))
                    if sub == "sub_b" and wl == "wa" and trial == n_trials and study == 1:
                        no_csv.append((sub, wl, study, trial))
                        continue
                    n_rows = int(rng.integers(3, 8))
                    steps = np.sort(rng.choice(np.arange(1, 200), n_rows, replace=False))
                    times = np.cumsum(rng.uniform(10, 100, n_rows))
                    if metric == "accuracy":
                        final = rng.uniform(0.6, 0.95)
                        values = final * (1 - np.exp(-np.arange(1, n_rows + 1) / 2))
                    else:
                        final = rng.uniform(0.1, 0.5)
                        values = final + np.exp(-np.arange(1, n_rows + 1) / 2)
                    rows[(sub, wl, study, trial)] = [
                        (int(s), float(t), float(v))
                        for s, t, v in zip(steps, times, values, strict=True)
                    ]
                    header = [
                        "accumulated_eval_time",
                        "global_step",
                        "preemption_count",
                        "score",
                        f"test/{metric}",
                        f"test/{loss}",
                        f"train/{metric}",
                        f"train/{loss}",
                        f"validation/{metric}",
                        f"validation/{loss}",
                        "validation/num_examples",
                    ]
                    lines = [",".join(header)]
                    for i, (s, t, v) in enumerate(rows[(sub, wl, study, trial)]):
                        loss_cell = "" if i == 0 else f"{v + 1:.6f}"  # empty cells occur
                        lines.append(
                            f"{t / 10},{s},0,{t!r},{v!r},{loss_cell},{v!r},{loss_cell},"
                            f"{v!r},{loss_cell},3000"
                        )
                    (tdir / "eval_measurements.csv").write_text("\n".join(lines) + "\n")
    (root / "workload_targets_test.json").write_text(json.dumps(ALGOPERF_TARGETS, indent=2))
    return AlgoperfFacts(
        root=root,
        submissions=submissions,
        rows=rows,
        frameworks=frameworks,
        hparams=hparams,
        no_csv=tuple(no_csv),
    )


def reference_time_to_target(
    rows: dict[tuple[str, str, int, int], list[tuple[int, float, float]]],
    submission: str,
    workload: str,
    target: float,
    maximise: bool,
) -> float:
    """method.md section 6 written as plain loops: per study, the trial reaching the target
    at the earliest evaluation index (earliest time on ties), its time; median over studies
    present; inf if no study is present."""
    studies = sorted({k[2] for k in rows if k[0] == submission and k[1] == workload})
    per_study = []
    for study in studies:
        best: tuple[int, int, float] | None = None
        for key in sorted(k for k in rows if k[:3] == (submission, workload, study)):
            for index, (_, time, value) in enumerate(rows[key]):
                if (value >= target) if maximise else (value <= target):
                    if best is None or (index, time) < (best[0], best[2]):
                        best = (index, key[3], time)
                    break
        per_study.append(math.inf if best is None else best[2])
    return float(np.median(per_study)) if per_study else math.inf
