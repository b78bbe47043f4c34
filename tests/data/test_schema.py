"""Validation rejects every kind of malformed archive with a SchemaError naming the problem."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st

from optcmp_data import SchemaError, parse_selection_repeats
from optcmp_data._schema import validate
from optcmp_data.testing import synthetic_archive


@pytest.fixture(scope="module")
def archive() -> xr.Dataset:
    return synthetic_archive(workloads=2, n_trials=4, n_evals=5, repeats={"seed": 2})


def _set(
    name: str, values: Callable[[xr.Dataset], np.ndarray]
) -> Callable[[xr.Dataset], xr.Dataset]:
    def mutate(ds: xr.Dataset) -> xr.Dataset:
        out = ds.copy(deep=True)
        out[name] = (ds[name].dims, values(ds))
        return out

    return mutate


def _drop_attr(key: str) -> Callable[[xr.Dataset], xr.Dataset]:
    def mutate(ds: xr.Dataset) -> xr.Dataset:
        out = ds.copy()
        out.attrs = {k: v for k, v in ds.attrs.items() if k != key}
        return out

    return mutate


def _with_attr(key: str, value: object) -> Callable[[xr.Dataset], xr.Dataset]:
    def mutate(ds: xr.Dataset) -> xr.Dataset:
        out = ds.copy()
        out.attrs = {**ds.attrs, key: value}
        return out

    return mutate


def _first_set(name: str, value: object) -> Callable[[xr.Dataset], xr.Dataset]:
    def mutate(ds: xr.Dataset) -> xr.Dataset:
        out = ds.copy(deep=True)
        arr = out[name].values.astype(object) if isinstance(value, str) else out[name].values
        arr.reshape(-1)[0] = value
        out[name] = (ds[name].dims, arr.astype(str) if isinstance(value, str) else arr)
        return out

    return mutate


MUTATIONS: dict[str, tuple[Callable[[xr.Dataset], xr.Dataset], str]] = {
    "no schema version": (_drop_attr("schema_version"), "schema_version"),
    "future schema version": (_with_attr("schema_version", 2), "version 2"),
    "non-integer schema version": (_with_attr("schema_version", "one"), "not an integer"),
    "missing provenance": (_drop_attr("git_commit"), "git_commit"),
    "attribute not string or number": (_with_attr("note", [1, 2]), "only strings and numbers"),
    "missing variable": (lambda ds: ds.drop_vars("valid_metric"), "valid_metric"),
    "wrong dims": (lambda ds: ds.assign(test_loss=ds["test_loss"].isel(eval=0)), "test_loss"),
    "unexpected dim": (
        lambda ds: ds.assign(extra=xr.DataArray(np.zeros(3), dims="bogus")),
        "bogus",
    ),
    "bad status": (_first_set("status", "exploded"), "status"),
    "bad direction": (_first_set("metric_direction", "sideways"), "metric_direction"),
    "bad scale": (_first_set("space_scale", "cubic"), "space_scale"),
    "bad split": (_first_set("selection_split", "train"), "selection_split"),
    "float stored as int": (
        _set("valid_target", lambda ds: np.zeros(ds.sizes["workload"], dtype=np.int64)),
        "valid_target",
    ),
    "step stored as float": (
        _set("step", lambda ds: ds["step"].values.astype(float)),
        "step",
    ),
    "duplicate labels": (
        lambda ds: ds.assign_coords(trial=np.zeros(ds.sizes["trial"], dtype=np.int64)),
        "not unique",
    ),
    "log bound not positive": (_first_set("space_low", -1.0), "space_low"),
    "missing trial with evaluations": (_first_set("status", "missing"), "missing"),
    "bad selection_repeats": (_with_attr("selection_repeats", "seed=99"), "selection_repeats"),
    "selection_repeats on absent axis": (
        _with_attr("selection_repeats", "study=0"),
        "selection_repeats",
    ),
}


def test_valid_archive_passes(archive: xr.Dataset) -> None:
    validate(archive, source="x.nc")


@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_each_malformation_is_rejected(archive: xr.Dataset, kind: str) -> None:
    mutate, fragment = MUTATIONS[kind]
    with pytest.raises(SchemaError) as info:
        validate(mutate(archive), source="broken.nc")
    message = str(info.value)
    assert message.startswith("broken.nc: "), message
    assert fragment in message
    assert "\n" not in message


@given(kind=st.sampled_from(sorted(MUTATIONS)), seed=st.integers(0, 2**16))
def test_malformed_random_archives_rejected(kind: str, seed: int) -> None:
    ds = synthetic_archive(n_trials=3, n_evals=3, ragged=True, repeats={"seed": 2}, seed=seed)
    mutate, _ = MUTATIONS[kind]
    with pytest.raises(SchemaError):
        validate(mutate(ds))


def test_selection_repeats_parsed(archive: xr.Dataset) -> None:
    ds = archive.copy()
    ds.attrs = {**archive.attrs, "selection_repeats": "seed=1"}
    validate(ds)
    assert parse_selection_repeats(ds) == {"seed": [1]}
    assert parse_selection_repeats(archive) == {}
