"""Fixtures shared by the CLI's tests.

`archive_path` is the folder's common archive: two workloads, eight trials per optimizer,
a fifth of the trials diverged, ragged curves and adam planted 0.05 behind (seed 4).
`tested_archive_path` is the same with twelve trials per optimizer, enough for the
inclusion test (`min_test_trials`: 11 at alpha 0.05; with eight no cell is tested).
`dead_path` is an archive in which every trial diverged. All three are written once per
test session and only read. A module that needs other data defines its own fixture,
named for what it holds (e.g. `across_path`, `report_archive_path`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from optcmp_data import write_archive
from optcmp_data.testing import synthetic_archive


def _planted(tmp_path_factory: pytest.TempPathFactory, folder: str, n_trials: int) -> Path:
    """The common archive with `n_trials` trials per optimizer, written to a new folder."""
    path = tmp_path_factory.mktemp(folder) / "a.nc"
    ds = synthetic_archive(
        workloads=2,
        n_trials=n_trials,
        diverged_fraction=0.2,
        ragged=True,
        planted={"adam": 0.05},
        seed=4,
    )
    write_archive(ds, path)
    return path


@pytest.fixture(scope="session")
def archive_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _planted(tmp_path_factory, "analyze", n_trials=8)


@pytest.fixture(scope="session")
def tested_archive_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _planted(tmp_path_factory, "tested", n_trials=12)


@pytest.fixture(scope="session")
def dead_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dead") / "dead.nc"
    write_archive(synthetic_archive(n_trials=3, diverged_fraction=1.0, seed=1), path)
    return path
