"""A draft mapping (TOML) for a table of runs, guessed from its columns: `optcmp import
table FILE --infer`. Every guess is marked for the user to check; the direction and the
search space are never taken on trust by the importer, so the draft writes them out as
guesses the user confirms by keeping them.

Dependency rule: numpy, pandas and this package; pyarrow only for Parquet.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optcmp_data._errors import DataFormatError
from optcmp_data._families import FAMILY_SPECS
from optcmp_data._schema import CURVE_VARS
from optcmp_data.importers._columns import check_unique, table_header

__all__ = ["infer_mapping"]

_SAMPLE_ROWS = 100_000
_OPTIMIZER_NAMES = frozenset(
    {
        "sgd",
        "momentum",
        "nesterov",
        "adam",
        "adamw",
        "nadam",
        "nadamw",
        "adagrad",
        "adadelta",
        "adamax",
        "rmsprop",
        "lbfgs",
        "l-bfgs",
        "lamb",
        "lars",
        "lion",
        "shampoo",
        "sophia",
        "radam",
        "adafactor",
    }
)
_SPLITS = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "dev": "valid",
    "eval": "valid",
    "test": "test",
}
_LOSS_WORDS = ("loss", "nll", "xent", "cross_entropy")
_METRIC_WORDS = {
    "accuracy": "max",
    "acc": "max",
    "top1": "max",
    "f1": "max",
    "auc": "max",
    "bleu": "max",
    "score": "max",
    "error": "min",
    "err": "min",
    "error_rate": "min",
    "perplexity": "min",
    "ppl": "min",
    "wer": "min",
}
_STEP_WORDS = ("step", "steps", "iteration", "iterations", "iter", "iters", "epoch", "epochs")
_TIME_WORDS = ("time", "duration", "runtime", "elapsed", "wall", "seconds")
_ID_WORDS = ("run", "run_id", "runid", "id", "name", "trial", "trial_id", "uuid")
_WORKLOAD_WORDS = ("workload", "task", "dataset", "problem", "benchmark", "testproblem")
_STATUS_WORDS = ("status", "state")
_LOG_HINTS = ("lr", "learning_rate", "eps", "epsilon", "weight_decay", "wd", "decay")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _words(name: str) -> list[str]:
    return [w for w in _norm(name).split("_") if w]


def _sample(path: Path) -> pd.DataFrame:
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        try:
            frames = []
            rows = 0
            for batch in parquet.iter_batches(batch_size=_SAMPLE_ROWS):
                frames.append(batch.to_pandas())
                rows += len(frames[-1])
                if rows >= _SAMPLE_ROWS:
                    break
        finally:
            parquet.close()
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    try:
        return pd.read_csv(path, nrows=_SAMPLE_ROWS, keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        detail = " ".join(str(err).split()) or type(err).__name__
        raise DataFormatError(f"{path}: not a readable CSV table ({detail})") from None


def _numeric(series: Any) -> bool:
    if series.dtype.kind in "fiu":
        return True
    if series.dtype.kind == "b":
        return False
    values = pd.to_numeric(series, errors="coerce")
    return bool(values.notna().sum() == series.notna().sum() and series.notna().any())


def _toml_str(text: str) -> str:
    return json.dumps(text)


def _toml_num(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _key(name: str, taken: set[str]) -> str:
    key = _norm(name) or "x"
    if key[0].isdigit():
        key = "h_" + key
    base, k = key, 2
    while key in taken:
        key, k = f"{base}_{k}", k + 1
    taken.add(key)
    return key


def infer_mapping(path: str | Path, /) -> str:
    """A draft mapping TOML for the table at `path` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    header = table_header(path)
    check_unique(path, header)
    frame = _sample(path)
    if frame.empty:
        raise DataFormatError(f"{path}: no rows to infer a mapping from")
    numeric = {c: _numeric(frame[c]) for c in header}
    roles, metric_dir = _roles(frame, header, numeric)
    hparams = [c for c in header if c not in roles and numeric[c]]
    unused = [c for c in header if c not in roles and not numeric[c]]
    by_role = {role: c for c, role in roles.items()}
    notes: list[str] = []

    out = [
        f"# Draft mapping for {path.name}, guessed by `optcmp import table --infer` from its",
        f"# columns ({len(frame):,} rows read). Check every line marked CHECK, then:",
        f"#   optcmp import table {path.name} --mapping THIS.toml --out ARCHIVE.nc",
        "",
        "[columns]",
    ]
    out += [f"{role} = {_toml_str(by_role[role])}" for role in _COLUMN_ROLES if role in by_role]
    if "optimizer" not in by_role:
        notes.append('no optimizer column found: name it in [columns] optimizer = "..."')
    taken: set[str] = set()
    hp_keys = {c: _key(c, taken) for c in hparams}
    trial_line, repeats = _trials(frame, by_role, hparams)
    if "workload" not in by_role:
        constant = f"workload = {_toml_str(_norm(path.stem) or 'workload')}   # CHECK"
        out += ["", "[values]   # labels that are not columns", constant]
    if repeats:
        out += ["", "[repeats]", *repeats]
    out += ["", "[hparams]   # CHECK: the numeric columns not named above"]
    inner = ", ".join(f"{k} = {_toml_str(c)}" for c, k in hp_keys.items())
    out.append(f"columns = {{{inner}}}")
    out += _workload_table(frame, by_role, metric_dir, notes)
    out += _space_table(frame, path, hp_keys)
    out += _label_tables(frame, by_role)
    if trial_line is not None:
        # A top-level key must come before the first table.
        out.insert(4, trial_line)
        out.insert(5, "")
    if unused:
        notes.append("text columns not used: " + ", ".join(unused[:10]))
    if notes:
        out += ["", *(f"# NOTE: {n}" for n in notes)]
    return "\n".join(out) + "\n"


# The [columns] roles, in the order the draft lists them.
_COLUMN_ROLES = ("optimizer", "workload", "trial", "step", "time", "status", *CURVE_VARS)


def _roles(
    frame: pd.DataFrame, header: list[str], numeric: dict[str, bool]
) -> tuple[dict[str, str], dict[str, str]]:
    """Column -> its guessed role (each role once): labels from the text columns, then
    trial, seed, step, time, losses and metrics from the numeric ones; and per split the
    metric word its metric column was recognised by."""
    roles: dict[str, str] = {}

    def take(role: str, column: str) -> None:
        if role not in roles.values() and column not in roles:
            roles[column] = role

    for c in header:
        words = _words(c)
        norm = _norm(c)
        if not numeric[c]:
            seen = {str(v).strip().lower() for v in frame[c].dropna().unique()[:50]}
            named = "optim" in norm or norm in ("opt", "optimizer", "algorithm", "method")
            if named or (seen and seen <= _OPTIMIZER_NAMES):
                take("optimizer", c)
            elif any(w in _WORKLOAD_WORDS for w in words):
                take("workload", c)
            elif norm in _STATUS_WORDS:
                take("status", c)
            elif norm in _ID_WORDS:
                take("trial", c)
    metric_dir: dict[str, str] = {}
    for c in header:
        if c in roles or not numeric[c]:
            continue
        words = _words(c)
        norm = _norm(c)
        split = next((_SPLITS[w] for w in words if w in _SPLITS), None)
        if norm in _ID_WORDS:
            take("trial", c)
        elif "seed" in words:
            take("seed", c)
        elif any(w in _STEP_WORDS for w in words) and split is None:
            take("step", c)
        elif any(w in _TIME_WORDS for w in words) and split is None:
            take("time", c)
        elif split is not None and any(w in _LOSS_WORDS for w in words):
            take(f"{split}_loss", c)
        elif split is not None:
            metric = next((w for w in words if w in _METRIC_WORDS), None)
            if metric is None and norm in _METRIC_WORDS:
                metric = norm
            if metric is not None:
                take(f"{split}_metric", c)
                metric_dir.setdefault(split, metric)
    return roles, metric_dir


def _trials(
    frame: pd.DataFrame, by_role: dict[str, str], hparams: list[str]
) -> tuple[str | None, list[str]]:
    """The top-level trial line (None with an id column) and the [repeats] lines: an id
    column, else each row a trial, or the distinct settings when rows repeat them."""
    if "trial" in by_role:
        seed = by_role.get("seed")
        return None, [f"seed = {_toml_str(seed)}"] if seed is not None else []
    keys = [by_role[r] for r in ("workload", "optimizer") if r in by_role] + hparams
    if "step" in by_role:
        keys.append(by_role["step"])
    repeated = bool(keys) and bool(frame.duplicated(subset=keys).any())
    if not (repeated and hparams):
        return 'trial = "row"   # CHECK: each row is a trial (no id column found)', []
    line = (
        'trial = "setting"   # CHECK: each distinct hyperparameter setting is a trial '
        "(rows repeat settings)"
    )
    if "seed" in by_role:
        return line, [f"seed = {_toml_str(by_role['seed'])}"]
    return line, ['seed = "repeated rows"   # the k-th row of a setting is its seed k']


def _workload_table(
    frame: pd.DataFrame, by_role: dict[str, str], metric_dir: dict[str, str], notes: list[str]
) -> list[str]:
    """[workload]: the metric (valid, else test, else train; a loss when no metric column)
    with its guessed direction, the selection split, the step budget."""
    split = next(
        (s for s in ("valid", "test", "train") if f"{s}_metric" in by_role),
        next((s for s in ("valid", "test", "train") if f"{s}_loss" in by_role), "valid"),
    )
    if f"{split}_metric" in by_role:
        metric = metric_dir[split]
        name = {"acc": "accuracy", "err": "error_rate", "ppl": "perplexity"}.get(metric, metric)
        direction = _METRIC_WORDS[metric]
    else:
        name, direction = "loss", "min"
        if f"{split}_loss" in by_role:
            notes.append(
                f"no {split} metric column: map the loss as the metric with "
                f'[columns] {split}_metric = "{by_role[f"{split}_loss"]}"'
            )
    out = [
        "",
        "[workload]",
        f"metric_name = {_toml_str(name)}",
        f'direction = "{direction}"   # CHECK: guessed from the metric\'s name',
        f'selection_split = "{split}"'
        + (
            "   # CHECK: no validation column, so selection uses the test split"
            if split == "test"
            else ""
        ),
    ]
    if "step" in by_role:
        steps = pd.to_numeric(frame[by_role["step"]], errors="coerce")
        if steps.notna().any():
            out.append(
                f"step_budget = {_toml_num(float(steps.max()))}   # CHECK: the largest step seen"
            )
    else:
        out.append("step_budget = 1   # CHECK: no step column; each run is one evaluation here")
    return out


def _space_table(frame: pd.DataFrame, path: Path, hp_keys: dict[str, str]) -> list[str]:
    """[space]: each hyperparameter's observed range, log where it spans a factor of 10
    or its name says so; one-valued ones as comments."""
    out = ["", "[space]   # CHECK: the observed ranges; give the ranges actually searched"]
    out.append(f"name = {_toml_str(_norm(path.stem) + '-observed')}")
    for c, key in hp_keys.items():
        col = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64)
        col = col[np.isfinite(col)]
        if not len(col):
            continue
        low, high = float(col.min()), float(col.max())
        if low == high:
            out.append(f"# {key}: one value ({_toml_num(low)}), not searched")
            continue
        log = low > 0 and (high / low >= 10 or _norm(c) in _LOG_HINTS)
        out.append(
            f"{key} = {{low = {_toml_num(low)}, high = {_toml_num(high)}, "
            f'scale = "{"log" if log else "linear"}"}}'
        )
    return out


def _label_tables(frame: pd.DataFrame, by_role: dict[str, str]) -> list[str]:
    """[status_map] (each state seen, guessed) and [families] (optimizer labels that are
    known families)."""
    out: list[str] = []
    if "status" in by_role:
        states = sorted({str(v) for v in frame[by_role["status"]].dropna().unique()})[:20]
        out += ["", "[status_map]   # CHECK: each state -> completed, diverged or incomplete"]
        for s in states:
            guess = (
                "completed"
                if s.lower() in ("finished", "completed", "complete", "done", "success")
                else "diverged"
                if s.lower() in ("crashed", "failed", "fail", "diverged", "nan")
                else "incomplete"
            )
            out.append(f'{_toml_str(s)} = "{guess}"')
    labels = frame[by_role["optimizer"]].dropna().unique() if "optimizer" in by_role else []
    families = sorted({str(v) for v in labels if str(v).lower() in FAMILY_SPECS})
    if families:
        out += ["", "[families]   # optional: optimizer families for the taxonomy"]
        out += [f"{_toml_str(f)} = {_toml_str(f.lower())}" for f in families]
    return out
