"""A study optcmp ran goes through `export_table` / `import_table` unchanged."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from optcmp_data.importers import export_table, import_table
from optcmp_data.importers._table import IMPORT_ATTRS
from tests.train.test_runner_study import _run, _study


def test_round_trip_of_a_study_optcmp_ran(tmp_path: Path) -> None:
    ds = _run(_study(tmp_path), tmp_path / "study")
    export_table(ds, tmp_path / "study.csv")
    back = import_table(tmp_path / "study.csv").dataset
    a, b = ds.copy(), back.copy()
    for key in IMPORT_ATTRS:
        a.attrs.pop(key, None)
        b.attrs.pop(key, None)
    xr.testing.assert_identical(a, b)
