"""The JSON of the result records, declared once (`Result.JSON`, optcmp_analysis._records).

Every record's `to_json()` keys are the ones its class declares (`json_keys()`) and the
ones written down here (a key lost, renamed or moved fails), its values are plain JSON
(str, int, finite float, bool, None, dicts and lists of them), and the walk goes by named
dims: transposing a result's dataset leaves its JSON unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optcmp_analysis import algoperf_score, analyses, deepobs_report, trial_scores
from optcmp_analysis._peer import _DETAILS
from optcmp_analysis._plan import plan_trials
from optcmp_analysis._records import (
    ByLabel,
    Cell,
    Columns,
    Computed,
    Const,
    Extra,
    Field,
    Interleaved,
    Label,
    Labels,
    Records,
    Result,
    Spread,
    Var,
)
from optcmp_data.importers import import_algoperf, import_deepobs
from optcmp_data.testing import synthetic_archive
from tests.data.archive_trees import write_algoperf, write_deepobs

# The keys of each kind of record ("record" value, or None where the records have no
# "record" key), as the reports and `--json` consumers read them. {cells} stands for the
# labels of the cell dims (workload optimizer, plus the repeat dims per repeat), {places}
# for p_rank_1 ... p_rank_n.
_BUDGET_STATS = (
    "mean sd median lo hi expected expected_without_replacement exact_sd exact_median "
    "exact_lo exact_hi no_result no_result_exact n_boot_results"
)
_INCLUSION = (
    "special general special_family general_family k budget_rule metric split value "
    "difference se lo hi p_value p_adjusted p_noninferior p_noninferior_adjusted margin "
    "special_expected general_expected p_general_not_worse no_result_special "
    "no_result_general ci_level margin_rule holm_family verdict verdict_text reason "
    "pair_verdict n_special n_general n_resamples tested"
)
_CONDITION = "kind target target_value fraction step_limit metric split"
KEYS: dict[str, dict[str | None, str]] = {
    "best": {
        None: "{cells} trial hyperparameters selection_value selection_split test_value "
        "valid_value metric split value rule n_trials n_usable test_repeats test_mean "
        "test_min test_median test_max n_repeats n_tied"
    },
    "budget": {
        None: "{cells} k metric split "
        + _BUDGET_STATS
        + " "
        + " ".join(f"selection_{s}" for s in _BUDGET_STATS.split())
        + " n_trials enough_trials settled_k rule"
    },
    "rank": {
        None: "{cells} k rank mean_rank p_best p_best_caveat no_result {places} value metric "
        "split rule method p_best_by_k no_result_by_k"
    },
    "inclusion": {None: "rule {cells} " + _INCLUSION},
    "targets": {
        "tuned": f"record workload optimizer {_CONDITION} value reached time rank kendall_tau "
        "reference",
        "inclusion": "record workload "
        + _INCLUSION
        + " kind target target_value fraction step_limit verdict_changes",
        "flip": f"record workload {_CONDITION} optimizer other reference_value "
        "other_reference_value value other_value rank_change",
    },
    "boundary": {
        "edge": "record workload optimizer hparam scale low high top n_top n_near_low "
        "n_near_high edge trial best_value best_position metric split value warning"
    },
    "protocol": {
        "cell": "record workload optimizer first second label_first label_second trial_first "
        "trial_second metric split value_first value_second k budget_rule expected_first "
        "expected_second value tested lo hi p_value p_adjusted clear step level rank_first "
        "rank_second rank_change kendall_tau",
        "flip": "record workload optimizer other first second metric split value_first "
        "other_value_first value_second other_value_second gap_first gap_second gap_first_lo "
        "gap_first_hi gap_second_lo gap_second_hi rank_change p_first p_second supported",
        "pair": "record protocol workload optimizer other metric split value other_value k "
        "budget_rule gap lo hi p_value p_adjusted clear",
    },
    "aggregate": {
        "aggregate": "record optimizer statistic value lo hi confidence n_workloads unit "
        "budget normalisation rule interval_note",
        "improvement": "record optimizer other value lo hi p p_holm holm_family clear confidence",
        "score": "record workload optimizer metric split value tuned_value no_result units "
        "zero_value one_value anchors included",
    },
    "profiles": {
        "area": "record optimizer value n_workloads budget measure",
        "profile": "record optimizer tau value measure",
        "time": "record workload optimizer metric split target value ratio measure",
    },
    "trial-scores": {None: "{cells} trial score selection_value test_value valid_value usable"},
    "deepobs": {
        None: "workload optimizer trial hyperparameters metric split value selection_value "
        "selection_split selection_repeats performance speed n_seeds mode"
    },
    "algoperf": {None: "optimizer score"},
    "algoperf-details": {None: "optimizer workload role time time_scored ratio study_times"},
    "plan": {
        "plan": "record kind protocol workload a b goal metric k margin margin_rule effect "
        "pilot_a pilot_b pilot_difference true_difference level power needed "
        "power_at_needed n_sim",
        "curve": "record kind protocol workload a b goal trials approx_power test_power",
    },
}


def _expected(name: str, kind: str | None, cells: list[str], n_places: int) -> list[str]:
    text = KEYS[name][kind].format(
        cells=" ".join(cells), places=" ".join(f"p_rank_{i}" for i in range(1, n_places + 1))
    )
    return text.split()


def _is_plain(value: Any) -> bool:
    """Plain JSON: exactly str, int, finite float, bool or None, or dicts/lists of them."""
    if value is None or type(value) in (str, bool, int):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_is_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _is_plain(v) for k, v in value.items())
    return False


def _check(name: str, result: Result, cells: list[str], part: Records | None = None) -> None:
    """`result`'s JSON (or the records of its declared `part`) against its declaration,
    the keys written down in KEYS and plain JSON."""
    if part is None:
        records, declared = result.to_json(), result.json_keys()
    else:
        records = result.json_records(part)
        declared = {part.record: part.key_names(result, result.data)}  # type: ignore[attr-defined]
    assert records, name
    n_places = result.to_dataset().sizes.get("place", 0)
    for record in records:
        kind = record.get("record")
        assert list(record) == declared[kind], (name, kind)
        assert list(record) == _expected(name, kind, cells, n_places), (name, kind)
        assert _is_plain(record), (name, record)
    json.dumps(records, allow_nan=False)  # writes as it is: nothing to convert
    assert {r.get("record") for r in records} <= set(declared)


def _options(entry: Any, **extra: Any) -> Any:
    fields = attrs.fields_dict(entry.options)
    chosen = {"n_boot": 30, **extra}
    return attrs.evolve(entry.options(), **{k: v for k, v in chosen.items() if k in fields})


def _run(entry: Any, archive: xr.Dataset, seed: int, **extra: Any) -> Any:
    second = (archive,) if entry.second_archive else ()
    rng = np.random.default_rng(seed) if entry.randomised else None
    return entry.run(archive, *second, options=_options(entry, **extra), rng=rng)


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # each example runs every analysis
@given(
    seed=st.integers(0, 10_000),
    direction=st.sampled_from(["min", "max"]),
    diverged=st.sampled_from([0.0, 0.2]),
)
def test_every_record_has_its_declared_keys_and_plain_values(
    seed: int, direction: str, diverged: float
) -> None:
    archive = synthetic_archive(
        workloads=2,
        n_trials=8,
        n_evals=5,
        direction=direction,
        diverged_fraction=diverged,
        seed=seed,
    )
    for entry in analyses():
        if entry.name in KEYS:
            cells = ["workload"] if entry.name == "inclusion" else ["workload", "optimizer"]
            _check(entry.name, _run(entry, archive, seed), cells)
    plan = plan_trials(
        archive,
        budget=2,
        trials=[4, 6],
        n_sim=10,
        n_sd=10,
        n_boot=10,
        rng=np.random.default_rng(seed),
    )
    _check("plan", plan, [])


def test_the_records_outside_the_registry(tmp_path: Path) -> None:
    archive = synthetic_archive(workloads=2, n_trials=6, n_evals=4, repeats={"seed": 2}, seed=4)
    _check("trial-scores", trial_scores(archive), ["workload", "optimizer"])
    per_repeat = trial_scores(archive, repeats="per-repeat")
    _check("trial-scores", per_repeat, ["workload", "optimizer", "seed"])
    write_deepobs(tmp_path / "deepobs")
    deepobs = import_deepobs(tmp_path / "deepobs").dataset
    for mode in ("final", "best"):
        _check("deepobs", deepobs_report(deepobs, mode=mode), [])
    write_algoperf(tmp_path / "algoperf")
    score = algoperf_score(import_algoperf(tmp_path / "algoperf").dataset)
    _check("algoperf", score, [])
    records = score.to_json()
    assert [r["score"] for r in records] == sorted((r["score"] for r in records), reverse=True)
    _check("algoperf-details", score, [], _DETAILS)
    assert score.details_json() == score.json_records(_DETAILS)


@pytest.mark.parametrize("name", ["best", "budget", "rank", "inclusion"])
def test_per_repeat_records_name_the_repeats(name: str) -> None:
    archive = synthetic_archive(workloads=1, n_trials=6, n_evals=4, repeats={"seed": 2, "study": 2})
    entry = next(a for a in analyses() if a.name == name)
    result = _run(entry, archive, 0, repeats="per-repeat")
    cells = ["workload", "seed", "study"] if name == "inclusion" else ["workload", "optimizer"]
    _check(name, result, [*cells[:2], "seed", "study"] if name != "inclusion" else cells)
    assert {(r["seed"], r["study"]) for r in result.to_json()} == {(0, 0), (0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize(
    "name", ["best", "budget", "rank", "inclusion", "boundary", "protocol", "aggregate", "profiles"]
)
def test_the_walk_follows_named_dims_not_positions(name: str) -> None:
    """Reverse the order of every variable's dims: the records stay the same."""
    archive = synthetic_archive(workloads=2, n_trials=6, n_evals=4, diverged_fraction=0.2, seed=3)
    entry = next(a for a in analyses() if a.name == name)
    result = _run(entry, archive, 1)
    data = result.data
    flipped = data.transpose(*reversed(list(data.dims)))
    assert [tuple(flipped[v].dims) for v in data.data_vars] != [
        tuple(data[v].dims) for v in data.data_vars
    ]
    assert attrs.evolve(result, data=flipped).to_json() == result.to_json()


def test_the_plan_and_the_deepobs_choice_walk_by_name_too(tmp_path: Path) -> None:
    archive = synthetic_archive(workloads=1, n_trials=8, n_evals=4, seed=2)
    plan = plan_trials(
        archive, budget=2, trials=[4, 6], n_sim=10, n_sd=10, n_boot=10, rng=np.random.default_rng(0)
    )
    write_deepobs(tmp_path)
    choice = deepobs_report(import_deepobs(tmp_path).dataset)
    for result in (plan, choice):
        data = result.data
        flipped = attrs.evolve(result, data=data.transpose(*reversed(list(data.dims))))
        assert flipped.to_json() == result.to_json()


# --- the declarations themselves, on a hand-made record ---------------------------------


@attrs.frozen
class _Toy(Result):
    data: xr.Dataset
    rule: str = "final-valid"

    def _twice(self, cell: Cell) -> float:
        return 2 * float(cell["x"])

    def _both(self, cell: Cell) -> dict[str, Any]:
        return {"w_label": cell.labels["w"], "o_pos": cell.at["o"]}

    def _notes(self) -> list[dict[str, Any]]:
        return [{"record": "note", "text": "n", "value": math.nan}]

    JSON = (
        Records(
            record="cell",
            dims=("w", "o"),
            where=("keep",),
            keys=(
                Labels(),
                Var("x", cast=float),
                Var("n", cast=int, missing=-1),
                Const("split", "test"),
                Field("rule"),
                Columns("side", "{label}_y", vars=("y",), label_text=("first", "second")),
                ByLabel("by_k", "y", "side", label_cast=str),
                Computed("twice", "_twice"),
                Spread(("w_label", "o_pos"), "_both"),
            ),
        ),
        Extra("_notes", "note", ("record", "text", "value")),
    )


def _toy_data() -> xr.Dataset:
    return xr.Dataset(
        {
            # stored (o, w): the walk reads it by name as (w, o)
            "x": (("o", "w"), np.array([[1.0, 2.0], [3.0, np.inf]])),
            "n": (("w", "o"), np.array([[5, -1], [7, 8]])),
            "y": (("side", "w"), np.array([[0.5, 0.25], [np.nan, 1.0]])),
            "keep": (("w", "o"), np.array([[True, True], [False, True]])),
        },
        coords={"w": ["a", "b"], "o": ["p", "q"], "other": ["p", "q"], "side": ["s1", "s2"]},
    )


def test_a_declared_record_walks_its_cells_by_name() -> None:
    toy = _Toy(_toy_data())
    assert toy.to_json() == [
        {
            "record": "cell",
            "w": "a",
            "o": "p",
            "x": 1.0,
            "n": 5,
            "split": "test",
            "rule": "final-valid",
            "first_y": 0.5,
            "second_y": None,
            "by_k": {"s1": 0.5, "s2": None},
            "twice": 2.0,
            "w_label": "a",
            "o_pos": 0,
        },
        {
            "record": "cell",
            "w": "a",
            "o": "q",
            "x": 3.0,
            "n": None,
            "split": "test",
            "rule": "final-valid",
            "first_y": 0.5,
            "second_y": None,
            "by_k": {"s1": 0.5, "s2": None},
            "twice": 6.0,
            "w_label": "a",
            "o_pos": 1,
        },
        {
            "record": "cell",
            "w": "b",
            "o": "q",
            "x": None,
            "n": 8,
            "split": "test",
            "rule": "final-valid",
            "first_y": 0.25,
            "second_y": 1.0,
            "by_k": {"s1": 0.25, "s2": 1.0},
            "twice": None,
            "w_label": "b",
            "o_pos": 1,
        },
        {"record": "note", "text": "n", "value": None},
    ]
    assert toy.json_keys()["cell"] == list(toy.to_json()[0])


def test_a_renamed_variable_is_read_at_another_walked_dim() -> None:
    pairs = Records(
        dims=("w", "o", "other"),
        keep=lambda r, c: c.at["o"] != c.at["other"],
        keys=(Labels(), Var("x", cast=float), Var("other_x", "x", rename={"o": "other"})),
    )
    records = _Toy(_toy_data()).json_records(pairs)
    assert [tuple(r.values()) for r in records] == [
        ("a", "p", "q", 1.0, 3.0),
        ("a", "q", "p", 3.0, 1.0),
        ("b", "p", "q", 2.0, None),
        ("b", "q", "p", None, 2.0),
    ]


def test_interleaved_parts_take_one_label_at_a_time() -> None:
    parts = (
        Records(record="w", dims=("w",), keys=(Labels(),)),
        Records(record="wo", dims=("w", "o"), keys=(Label("o"), Label("w"))),
    )
    toy = _Toy(_toy_data())
    records = toy.json_records(Interleaved("w", parts))
    assert [tuple(r.values()) for r in records] == [
        ("w", "a"),
        ("wo", "p", "a"),
        ("wo", "q", "a"),
        ("w", "b"),
        ("wo", "p", "b"),
        ("wo", "q", "b"),
    ]


def test_a_hook_returning_undeclared_keys_fails() -> None:
    # An error, not an `assert` (which `python -O` would skip, letting the keys through).
    wrong_spread = Records(dims=("w", "o"), keys=(Spread(("w_label",), "_both"),))
    with pytest.raises(TypeError, match=r"^Spread '_both': keys .*, declared \('w_label',\)$"):
        _Toy(_toy_data()).json_records(wrong_spread)
    wrong_extra = Extra("_notes", "note", ("record", "text"))
    with pytest.raises(
        TypeError, match=r"^Extra '_notes': keys .*, declared \('record', 'text'\)$"
    ):
        _Toy(_toy_data()).json_records(wrong_extra)


def test_a_record_without_a_declaration_says_so() -> None:
    @attrs.frozen
    class Bare(Result):
        data: xr.Dataset

    with pytest.raises(NotImplementedError, match="Bare declares no JSON"):
        Bare(_toy_data()).to_json()
