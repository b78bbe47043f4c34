"""Importer of AlgoPerf training-algorithm competition logs into the archive format.

Dependency rule: numpy, xarray, attrs and this package only; archives are produced through
`ArchiveBuilder`, like every other archive.

Mapping (docs/importers.md):
- optimizer = submission; workload = workload folder with its framework suffix
  (_jax, _pytorch) stripped; the framework is kept in the non-dim coordinate `framework`
  (workload, optimizer); trial = n of trial_<n>; repeat axis `study` = k of study_<k>.
- step = global_step, time = score (accumulated submission time, seconds); valid/test/
  train metric = validation/<m>, test/<m>, train/<m> for the workload's target metric m;
  losses from the loss column (loss, ce_loss, ctc_loss or l1_loss).
- metric name, direction, validation target (valid_target) and step hint (step_budget)
  per workload from the targets file; the base and held-out workload lists go to the
  archive attributes `base_workloads` and `held_out_workloads` (comma-separated), the
  ruleset to `ruleset`.
- Folders that are not `<workload>_<jax|pytorch>/trial_<n>` (e.g. stray trial_* folders
  directly under study_*) are ignored, as the official scorer ignores them. A trial
  folder without eval_measurements.csv is imported as "incomplete" with no evaluations.
- Status "diverged" where a loss or metric cell is written as nan/inf (an empty cell is
  only a missing value).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np
import numpy.typing as npt
import xarray as xr

from optcmp_data._builder import ArchiveBuilder, Curves, TrialRecord, WorkloadInfo
from optcmp_data._errors import DataFormatError
from optcmp_data._labels import import_label
from optcmp_data._schema import Direction, Split, Status
from optcmp_data.importers._common import (
    INT64_MAX,
    BadInputs,
    ImportResult,
    checked_float,
    open_source_dir,
    read_json_object,
    read_text,
)
from optcmp_data.importers._registry import Ruleset

__all__ = ["ALGOPERF_DIRECTIONS", "Ruleset", "import_algoperf"]


# Target metric names and whether smaller is better (the official scorer's registry).
ALGOPERF_DIRECTIONS = {
    **dict.fromkeys(
        ("loss", "ce_loss", "ctc_loss", "l1_loss", "error_rate", "wer", "ppl"), Direction.MIN
    ),
    **dict.fromkeys(("accuracy", "bleu", "ssim", "mean_average_precision"), Direction.MAX),
}
_LOSS_NAMES = ("loss", "ce_loss", "ctc_loss", "l1_loss")
_STUDY = re.compile(r"^study_(\d+)$")
_WORKLOAD = re.compile(r"^(.+)_(jax|pytorch)$")
_TRIAL = re.compile(r"^trial_(\d+)$")
_CSV = "eval_measurements.csv"
_HPARAMS = "hparams.json"

FloatArray = npt.NDArray[np.float64]


class _Targets:
    def __init__(self, path: Path) -> None:
        obj = read_json_object(path)
        self.path = path
        try:
            self.base = [str(w) for w in obj["base_workloads"]]
            self.held_out = [str(w) for w in obj["held_out_workloads"]]
            workloads = obj["workloads"]
            self.version = str(obj.get("benchmark_version", ""))
            self.info: dict[str, tuple[str, float, int]] = {
                str(name): (
                    str(v["target_metric_name"]),
                    float(v["validation_target_value"]),
                    int(v["step_hint"]),
                )
                for name, v in workloads.items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise DataFormatError(
                f"{path}: not an AlgoPerf targets file (needs base_workloads, "
                "held_out_workloads and workloads{name: {target_metric_name, "
                f"validation_target_value, step_hint}}; problem: {err!r})"
            ) from None
        for name, (metric, _, _) in self.info.items():
            if metric not in ALGOPERF_DIRECTIONS:
                raise DataFormatError(
                    f"{path}: workload {name!r} has target metric {metric!r}, not one of "
                    f"{sorted(ALGOPERF_DIRECTIONS)}"
                )
        for name in (*self.base, *self.held_out):
            if name not in self.info:
                raise DataFormatError(f"{path}: listed workload {name!r} has no targets entry")


def _ruleset_root(src: Path, ruleset: Ruleset) -> Path:
    for candidate in (src / "logs" / ruleset.value, src / ruleset.value):
        if candidate.is_dir():
            return candidate
    # `src` itself may be a ruleset folder: submissions holding study_<k> folders.
    other = {r.value for r in Ruleset} - {ruleset.value}
    if src.name in other:
        raise DataFormatError(f"{src}: this is the {src.name} folder, not {ruleset.value}")
    for sub in src.iterdir():
        if sub.is_dir() and any(_STUDY.match(p.name) for p in sub.iterdir() if p.is_dir()):
            return src
    raise DataFormatError(
        f"{src}: not an AlgoPerf log tree (expected logs/{ruleset.value}/<submission>/"
        f"study_<k>/<workload>_<jax|pytorch>/trial_<n>/{_CSV})"
    )


def _find_targets(src: Path, root: Path) -> Path:
    """The targets file next to the logs: in SRC, or beside the `logs` folder holding the
    ruleset folder."""
    dirs = [src, root.parent]
    if root.parent.name == "logs":
        dirs.append(root.parent.parent)
    for d in dict.fromkeys(dirs):
        found = sorted(d.glob("workload_targets*.json"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise DataFormatError(
                f"{d}: several targets files ({', '.join(p.name for p in found)}); "
                "choose one with --targets"
            )
    raise DataFormatError(
        f"{src}: no workload_targets*.json next to the logs; give one with --targets"
    )


def _dirs(
    path: Path, pattern: re.Pattern[str], bad: BadInputs | None = None
) -> Iterator[tuple[int, Path]]:
    """Sub-folders matching `pattern` with their number. With `bad`, a folder of the same
    kind (same prefix) whose number is not a number an archive stores is reported."""
    with os.scandir(path) as entries:
        found = sorted((e.name, Path(e.path)) for e in entries if e.is_dir())
    prefix = pattern.pattern.lstrip("^").split("(")[0]
    for name, p in found:
        m = pattern.match(name)
        if m and int(m.group(1)) <= INT64_MAX:
            yield int(m.group(1)), p
        elif bad is not None and name.startswith(prefix):
            bad.bad(f"{p}: folder name {name!r} is not {prefix}<n> with n below 2**63")


def _read_csv(path: Path, metric: str) -> tuple[dict[str, FloatArray | None], bool]:
    """Columns of one eval_measurements.csv needed by the archive, and whether a loss or
    metric cell is written as a non-finite number (divergence)."""
    lines = read_text(path).splitlines()
    if not lines or not lines[0].strip():
        raise DataFormatError(f"{path}: empty file, expected a CSV header")
    header = lines[0].split(",")
    col: dict[str, int] = {}
    for i, name in enumerate(header):
        if name.strip() in col:
            raise DataFormatError(f"{path}: column {name.strip()!r} appears twice in the header")
        col[name.strip()] = i
    required = ("global_step", "score", f"validation/{metric}")
    for name in required:
        if name not in col:
            raise DataFormatError(
                f"{path}: missing column {name!r} (the target metric is {metric!r})"
            )
    rows = [line.split(",") for line in lines[1:] if line]
    if not rows:
        raise DataFormatError(f"{path}: no evaluation rows")
    if any(len(r) != len(header) for r in rows):
        bad_row = next(i for i, r in enumerate(rows) if len(r) != len(header))
        raise DataFormatError(
            f"{path}: row {bad_row + 2} has {len(rows[bad_row])} fields, the header "
            f"{len(header)} (the file may be cut short)"
        )
    table = np.array(rows)
    wanted: dict[str, str | None] = {
        "step": "global_step",
        "time": "score",
        "train_metric": f"train/{metric}",
        "valid_metric": f"validation/{metric}",
        "test_metric": f"test/{metric}",
    }
    for split, prefix in (("train", "train/"), ("valid", "validation/"), ("test", "test/")):
        wanted[f"{split}_loss"] = next((prefix + n for n in _LOSS_NAMES if prefix + n in col), None)
    out: dict[str, FloatArray | None] = {}
    diverged = False
    for key, column in wanted.items():
        if column is None or column not in col:
            out[key] = None
            continue
        cells = table[:, col[column]]
        empty = np.char.str_len(cells) == 0
        try:
            values = np.where(empty, "nan", cells).astype(np.float64)
        except ValueError:
            raise DataFormatError(
                f"{path}: column {column!r} holds values that are not numbers"
            ) from None
        if key not in ("step", "time") and (~np.isfinite(values) & ~empty).any():
            diverged = True
        out[key] = values
    step = out["step"]
    if step is None or np.isnan(step).any():
        raise DataFormatError(f"{path}: column 'global_step' has empty cells")
    bad_step = (step < 0) | (step >= float(INT64_MAX)) | (step != np.round(step))
    if bad_step.any():
        row = int(np.argmax(bad_step))
        raise DataFormatError(
            f"{path}: row {row + 2}: global_step {table[row, col['global_step']]!s} is not "
            "a step count (a whole number from 0 to 2**63 - 1)"
        )
    return out, diverged


def _read_hparams(path: Path) -> dict[str, float]:
    obj = read_json_object(path)
    out: dict[str, float] = {}
    for key, value in obj.items():
        # bools are 0/1 switches of the submission; strings carry no number
        if isinstance(value, bool):
            out[str(key)] = float(value)
        elif isinstance(value, int | float):
            out[str(key)] = checked_float(value, where=f"{path}: {key!r}")
    return out


@attrs.frozen
class _TrialDir:
    workload: str
    submission: str
    trial: int
    study: int
    path: Path


@attrs.define
class _Discovery:
    trials: list[_TrialDir]
    frameworks: dict[tuple[str, str], str]
    ignored: int  # folders under study_* that are not <workload>_<framework>


def _discover(root: Path, spec: _Targets, bad: BadInputs) -> _Discovery:
    """Phase 1a: every <submission>/study_<k>/<workload>_<framework>/trial_<n> folder."""
    found = _Discovery(trials=[], frameworks={}, ignored=0)
    for submission in sorted(p for p in root.iterdir() if p.is_dir()):
        label = import_label(submission.name)
        for study_no, study_dir in _dirs(submission, _STUDY, bad):
            with os.scandir(study_dir) as entries:
                folders = sorted((e.name, e.path) for e in entries if e.is_dir())
            for name, path in folders:
                wm = _WORKLOAD.match(name)
                if not wm:
                    found.ignored += 1
                    continue
                workload, framework = wm.group(1), wm.group(2)
                if workload not in spec.info:
                    bad.bad(f"{path}: workload {workload!r} is not in {spec.path}")
                    continue
                old = found.frameworks.setdefault((workload, label), framework)
                if old != framework:
                    bad.bad(
                        f"{path}: {submission.name} ran {workload} in both {old} and {framework}"
                    )
                    continue
                for trial_no, trial_dir in _dirs(Path(path), _TRIAL, bad):
                    found.trials.append(_TrialDir(workload, label, trial_no, study_no, trial_dir))
    if not found.trials:
        raise DataFormatError(
            f"{root}: no AlgoPerf trial folders found (expected <submission>/study_<k>/"
            f"<workload>_<jax|pytorch>/trial_<n>/{_CSV})"
        )
    return found


def _all_hparams(
    trials: list[_TrialDir], bad: BadInputs
) -> dict[tuple[str, str, int], dict[str, float]]:
    """Phase 1b: hyperparameters belong to a trial, not to one study; a trial's
    hparams.json must say the same in every study."""
    hparams: dict[tuple[str, str, int], dict[str, float]] = {}
    for t in trials:
        hp_path = t.path / _HPARAMS
        if not hp_path.is_file():
            continue
        try:
            values = _read_hparams(hp_path)
        except DataFormatError as err:
            bad.bad(str(err))
            continue
        old = hparams.setdefault((t.workload, t.submission, t.trial), values)
        if old != values:
            bad.bad(f"{hp_path}: differs from the same trial's hparams.json in another study")
    return hparams


@attrs.define
class _Parsed:
    records: list[TrialRecord]
    files: int
    no_csv: int


def _parse_trials(
    trials: list[_TrialDir],
    spec: _Targets,
    hparams: dict[tuple[str, str, int], dict[str, float]],
    bad: BadInputs,
) -> _Parsed:
    """Phase 1c: one TrialRecord per trial folder (incomplete without a CSV)."""
    out = _Parsed(records=[], files=0, no_csv=0)
    for t in trials:
        csv_path = t.path / _CSV
        if not csv_path.is_file():
            out.no_csv += 1
            status = Status.INCOMPLETE
            curves = Curves(step=np.zeros(0, dtype=np.int64))
        else:
            try:
                cols, diverged = _read_csv(csv_path, spec.info[t.workload][0])
            except DataFormatError as err:
                bad.bad(str(err))
                continue
            out.files += 1
            step = cols.pop("step")
            assert step is not None
            status = Status.DIVERGED if diverged else Status.COMPLETED
            curves = Curves(step=step.astype(np.int64), **cols)
        out.records.append(
            TrialRecord(
                workload=t.workload,
                optimizer=t.submission,
                trial=t.trial,
                status=status,
                hparams=hparams.get((t.workload, t.submission, t.trial), {}),
                curves=curves,
                repeat={"study": t.study},
            )
        )
    return out


def _declare(builder: ArchiveBuilder, spec: _Targets, records: list[TrialRecord]) -> None:
    """Phase 2: the workloads (facts from the targets file) and submissions present."""
    for workload in sorted({r.workload for r in records}):
        metric_name, target, step_hint = spec.info[workload]
        builder.add_workload(
            WorkloadInfo(
                name=workload,
                metric_name=metric_name,
                direction=ALGOPERF_DIRECTIONS[metric_name],
                valid_target=target,
                step_budget=step_hint,
                selection_split=Split.VALID,
            )
        )
    for sub in sorted({r.optimizer for r in records}):
        builder.add_optimizer(sub, "")


def _counts(trials: list[_TrialDir]) -> tuple[int, int, list[str]]:
    """Studies per submission and trials per study, as the logs hold them, and the
    submissions with fewer studies than the others."""
    studies: dict[str, set[int]] = {}
    per_study: dict[tuple[str, str, int], set[int]] = {}
    for t in trials:
        studies.setdefault(t.submission, set()).add(t.study)
        per_study.setdefault((t.workload, t.submission, t.study), set()).add(t.trial)
    n_studies = max(len(v) for v in studies.values())
    n_trials = max(len(v) for v in per_study.values())
    short = sorted(sub for sub, v in studies.items() if len(v) < n_studies)
    return n_studies, n_trials, short


def import_algoperf(
    src: str | os.PathLike[str],
    /,
    *,
    ruleset: Ruleset | str = Ruleset.EXTERNAL_TUNING,
    targets: str | os.PathLike[str] | None = None,
    skip_bad: bool = False,
    command: str | None = None,
) -> ImportResult:
    """Import one ruleset of an AlgoPerf log tree as an archive.

    `src` is the folder holding logs/<ruleset>/, the logs folder, or a ruleset folder;
    `targets` the workload targets JSON (default: a workload_targets*.json next to the
    logs). Malformed files raise DataFormatError naming the file, or with `skip_bad` are
    skipped with one warning each. Phases: discover and parse (folders, hparams, CSVs),
    declare (workloads and submissions), add the trials and build.
    """
    src = open_source_dir(src, "an AlgoPerf log tree")
    ruleset = Ruleset(ruleset)
    root = _ruleset_root(src, ruleset)
    target_path = Path(targets) if targets is not None else _find_targets(src, root)
    if not target_path.is_file():
        raise DataFormatError(f"{target_path}: targets file not found")
    spec = _Targets(target_path)
    bad = BadInputs(skip_bad=skip_bad)

    found = _discover(root, spec, bad)
    parsed = _parse_trials(found.trials, spec, _all_hparams(found.trials, bad), bad)
    if parsed.files == 0:
        raise DataFormatError(f"{root}: no readable {_CSV} files")

    builder = ArchiveBuilder(
        source=f"AlgoPerf {ruleset.value} logs {root} with targets {target_path}",
        command=command,
        caveats=[
            "time is AlgoPerf's 'score' column (accumulated submission time, seconds); "
            "steps and times of evaluations differ between trials",
            "the framework (jax/pytorch) of each run is in the coordinate 'framework' "
            "(workload, optimizer)",
        ],
        repeat_dims=("study",),
    )
    _declare(builder, spec, parsed.records)
    for record in parsed.records:
        builder.add_trial(record)

    # The version's study and trial counts come from the logs, not from constants.
    n_studies, n_trials, short = _counts(found.trials)
    if short:
        builder.add_caveat(
            f"submissions {short} have fewer than the {n_studies} studies of the others; "
            "their times are medians over the studies they have"
        )
    if found.ignored:
        builder.add_caveat(
            f"ignored {found.ignored} folders under study_* that are not "
            "<workload>_<framework> folders (e.g. stray trial_* folders), as the official "
            "scorer does"
        )
    if parsed.no_csv:
        builder.add_caveat(
            f"{parsed.no_csv} trial folders have no {_CSV}; imported as incomplete with no "
            "evaluations"
        )
    ds = _with_framework(builder.build(), found.frameworks)
    ds.attrs.update(
        importer="algoperf",
        ruleset=ruleset.value,
        base_workloads=",".join(spec.base),
        held_out_workloads=",".join(spec.held_out),
        benchmark_version=spec.version,
        studies_per_submission=n_studies,
        trials_per_study=n_trials,
    )
    return ImportResult(dataset=ds, warnings=tuple(bad.warnings), files_read=parsed.files)


def _with_framework(ds: xr.Dataset, frameworks: dict[tuple[str, str], str]) -> xr.Dataset:
    workloads = [str(w) for w in ds["workload"].values]
    optimizers = [str(o) for o in ds["optimizer"].values]
    table = np.array(
        [[frameworks.get((w, o), "") for o in optimizers] for w in workloads], dtype=str
    ).reshape(len(workloads), len(optimizers))
    return ds.assign_coords(framework=(("workload", "optimizer"), table))
