"""Protocol sensitivity: two archives, or two search-space groups of one archive."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from optcmp_analysis import AnalysisError, protocol_sensitivity
from optcmp_data.testing import synthetic_archive

OPTS = ("adam", "momentum", "sgd")


def _pair(shift_a: dict[str, float], shift_b: dict[str, float]) -> tuple[xr.Dataset, xr.Dataset]:
    kw: dict[str, object] = {
        "workloads": 2,
        "optimizers": OPTS,
        "n_trials": 12,
        "noise": 0.001,
        "spread": 0.01,
        "diverged_fraction": 0.1,
    }
    return (
        synthetic_archive(planted=shift_a, seed=1, **kw),  # type: ignore[arg-type]
        synthetic_archive(planted=shift_b, seed=2, **kw),  # type: ignore[arg-type]
    )


def test_same_archive_twice_has_no_flips() -> None:
    a, _ = _pair({}, {})
    r = protocol_sensitivity(a, a, protocols=["x", "y"])
    assert r.flips() == []
    cells = [rec for rec in r.to_json() if rec["record"] == "cell"]
    assert len(cells) == 2 * len(OPTS)
    assert all(rec["rank_change"] == 0 and rec["value"] == 0 for rec in cells)
    np.testing.assert_allclose(r.data["kendall_tau"].values, 1.0)


def test_planted_reversal_is_listed_with_its_size() -> None:
    a, b = _pair({"adam": 0.1}, {"sgd": 0.1})
    r = protocol_sensitivity(a, b, protocols=["lr-only", "choi2019"])
    flips = {(f["workload"], f["optimizer"], f["other"]): f for f in r.flips()}
    for w in ("w0", "w1"):
        f = flips[(w, "sgd", "adam")]  # sgd beat adam under lr-only, adam wins under choi2019
        assert f["first"] == "lr-only"
        assert f["second"] == "choi2019"
        assert f["gap_first"] == pytest.approx(0.1, abs=0.03)
        assert f["gap_second"] == pytest.approx(0.1, abs=0.03)
        assert f["rank_change"] > 0
    assert (r.data["kendall_tau"] < 1).all()


def _grouped() -> xr.Dataset:
    names = [*OPTS, *(f"{o}_lr" for o in OPTS)]
    families = {n: n.removesuffix("_lr") for n in names}
    planted = {"adam_lr": 0.1, "sgd": 0.05}
    ds = synthetic_archive(
        workloads=2,
        optimizers=names,
        families=families,
        n_trials=10,
        planted=planted,
        noise=0.001,
        seed=5,
    )
    space = np.where(
        np.char.endswith(ds["optimizer"].values.astype(str), "_lr"), "lr-only", "choi2019"
    )
    return ds.assign(space_name=ds["space_name"].copy(data=np.broadcast_to(space, (2, 6)).copy()))


def test_groups_of_one_archive_equal_two_archives() -> None:
    ds = _grouped()
    within = protocol_sensitivity(ds, protocols=["lr-only", "choi2019"])
    lr = ds.sel(optimizer=[f"{o}_lr" for o in OPTS])
    lr = lr.assign_coords(optimizer=list(OPTS))
    full = ds.sel(optimizer=list(OPTS))
    between = protocol_sensitivity(lr, full, protocols=["lr-only", "choi2019"])
    for var in ("test_value", "rank", "trial"):
        xr.testing.assert_equal(within.data[var], between.data[var])
    assert within.data["label"].sel(protocol="lr-only", workload="w0").values.tolist() == [
        "adam_lr",
        "momentum_lr",
        "sgd_lr",
    ]
    assert any(f["optimizer"] == "sgd" and f["other"] == "adam" for f in within.flips())


@settings(max_examples=15)
@given(st.permutations(range(3)))
def test_relabelling_optimizers_is_equivariant(perm: list[int]) -> None:
    a, b = _pair({"adam": 0.05}, {"momentum": 0.05})
    new = {OPTS[i]: f"opt{perm[i]}" for i in range(3)}

    def rename(ds: xr.Dataset) -> xr.Dataset:
        return ds.assign_coords(optimizer=[new[str(o)] for o in ds["optimizer"].values])

    r = protocol_sensitivity(a, b)
    s = protocol_sensitivity(rename(a), rename(b))
    for o in OPTS:
        for var in ("test_value", "rank", "trial"):
            np.testing.assert_array_equal(
                r.data[var].sel(optimizer=o).values, s.data[var].sel(optimizer=new[o]).values
            )
    assert len(r.flips()) == len(s.flips())


def test_subset_ranking_is_the_full_ranking_restricted() -> None:
    a, b = _pair({"adam": 0.05}, {"momentum": 0.05})
    full = protocol_sensitivity(a, b)
    sub = protocol_sensitivity(a.sel(optimizer=["adam", "sgd"]), b.sel(optimizer=["adam", "sgd"]))
    f = full.data["rank"].sel(optimizer=["adam", "sgd"]).values
    s = sub.data["rank"].values
    np.testing.assert_array_equal(np.sign(f[..., 0] - f[..., 1]), np.sign(s[..., 0] - s[..., 1]))


def test_json_and_errors() -> None:
    a, b = _pair({"adam": 0.1}, {"sgd": 0.1})
    records = protocol_sensitivity(a, b).to_json()
    json.dumps(records, allow_nan=False)
    for rec in records:
        assert all(isinstance(v, str | int | float | type(None)) for v in rec.values())
        assert {"workload", "optimizer", "metric", "split"} <= set(rec)
    with pytest.raises(AnalysisError, match="search-space name"):
        protocol_sensitivity(a, protocols=["lr-only", "choi2019"])
    with pytest.raises(AnalysisError, match="name two different"):
        protocol_sensitivity(a)
    ds = _grouped()
    with pytest.raises(AnalysisError, match="share the family"):
        protocol_sensitivity(ds, ds, match="family")
    with pytest.raises(AnalysisError, match="needs two archives"):
        protocol_sensitivity(ds, protocols=["lr-only", "choi2019"], match="name")
    with pytest.raises(AnalysisError, match="unknown workload"):
        protocol_sensitivity(a, b, workloads=["w9"])
    dead = synthetic_archive(optimizers=OPTS, diverged_fraction=1.0)
    with pytest.raises(AnalysisError, match="no usable"):
        protocol_sensitivity(dead, dead)
