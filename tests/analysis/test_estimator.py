"""The estimator's pieces against brute force: the estimate given a result, its leave-one-out
jackknife (with and without trials that have no result), and the rule that too few trials
get no test."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optcmp_analysis._estimator import (
    Verdict,
    jackknife_variance,
    min_test_trials,
    pair_tests,
    untested_reason,
    verdict_text,
)


def _given_result(value: list[float], usable: list[bool], k: int) -> float:
    """Average over the k-subsets of positions (sorted best first) that hold a usable trial
    of the value of the first usable position in the subset; NaN if none has one."""
    picked = [
        value[min(i for i in sub if usable[i])]
        for sub in itertools.combinations(range(len(value)), k)
        if any(usable[i] for i in sub)
    ]
    return sum(picked) / len(picked) if picked else math.nan


def _brute_jackknife(value: list[float], usable: list[bool], k: int) -> float:
    n = len(value)
    loo = [
        _given_result(value[:i] + value[i + 1 :], usable[:i] + usable[i + 1 :], k) for i in range(n)
    ]
    mean = sum(loo) / n
    return (n - 1) / n * sum((x - mean) ** 2 for x in loo)


@given(st.integers(3, 8), st.data())
def test_jackknife_matches_leave_one_out_by_brute_force(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, n - 1))
    value = data.draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n))
    n_usable = data.draw(st.integers(2, n))
    usable = [i < n_usable for i in range(n)]  # unusable trials sort last
    v = np.array(value)
    v[n_usable:] = 0.0
    got = float(jackknife_variance(v, k, np.array(usable, dtype=np.float64)))
    assert got == pytest.approx(_brute_jackknife(list(v), usable, k), rel=1e-9, abs=1e-12)
    if n_usable == n:  # the fast path (every trial usable) is the same number
        assert float(jackknife_variance(v, k)) == pytest.approx(got, rel=1e-9, abs=1e-12)


def test_estimate_is_the_expected_result_given_one() -> None:
    rng = np.random.default_rng(5)
    n, k = 12, 3
    score_g, score_s = rng.normal(size=(2, 1, n))
    value_g, value_s = rng.normal(size=(2, 1, n))
    usable_g = rng.uniform(size=(1, n)) > 0.4
    usable_s = np.ones((1, n), dtype=bool)
    present = np.ones((1, n), dtype=bool)
    out = pair_tests(
        score_g,
        value_g,
        usable_g,
        present,
        score_s,
        value_s,
        usable_s,
        present,
        budget=k,
        n_boot=99,
        alpha=0.05,
        margin=0.1,
        seeds=np.zeros((1, 1), dtype=np.int64),
    )
    order = np.argsort(np.where(usable_g[0], score_g[0], np.inf), kind="stable")
    expected = _given_result(list(value_g[0][order]), list(usable_g[0][order]), k)
    assert out.general_expected[0] == pytest.approx(expected)
    n_bad = int((~usable_g).sum())
    assert out.no_result_general[0] == pytest.approx(math.comb(n_bad, k) / math.comb(n, k))


@pytest.mark.parametrize(("alpha", "expected"), [(0.05, 11), (0.025, 13), (0.01, 17)])
def test_minimum_trials_miss_a_quarter_less_often_than_alpha(alpha: float, expected: int) -> None:
    n = min_test_trials(alpha)
    assert n == expected
    assert 0.75**n < alpha <= 0.75 ** (n - 1)


def test_too_few_trials_get_estimates_but_no_test() -> None:
    rng = np.random.default_rng(0)
    for n in (10, 11):
        shape = (1, n)
        ok = np.ones(shape, dtype=bool)
        out = pair_tests(
            *(rng.normal(size=shape), rng.normal(size=shape) + 1.0, ok, ok),
            *(rng.normal(size=shape), rng.normal(size=shape), ok, ok),
            budget=None,
            n_boot=199,
            alpha=0.05,
            margin=0.1,
            seeds=np.zeros((1, 1), dtype=np.int64),
        )
        assert np.isfinite(out.difference[0])
        assert bool(out.tested[0]) is (n >= 11)
        assert bool(np.isfinite(out.p_value[0])) is (n >= 11)
    assert untested_reason(2, 10, 0.05) == "fewer than 11 trials per optimizer"
    assert untested_reason(10, 10, 0.05) == "no variance estimate at k = N"
    assert untested_reason(2, 11, 0.05) == ""
    assert verdict_text(Verdict.NOT_TESTED, 0.1, "", 2, 10) == (
        "not tested at k = 2 of 10 trials (fewer than 11 trials per optimizer)"
    )
