"""The one list of importers: name, reader, what it reads and the extra it needs.

Dependency rule: this package only. Adding an importer is one module with its reader
plus one entry here; the CLI registers one `optcmp import NAME` command per entry (its
options are the reader's own) and a test checks that both lists agree.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from optcmp_data.importers._algoperf import import_algoperf
from optcmp_data.importers._common import ImportResult
from optcmp_data.importers._deepobs import import_deepobs
from optcmp_data.importers._mlflow import import_mlflow
from optcmp_data.importers._optuna import import_optuna
from optcmp_data.importers._table import import_table

__all__ = ["IMPORTERS", "Importer"]


@attrs.frozen
class Importer:
    """One importer: `reader` returns an ImportResult; `extra` names the optional
    dependency group it needs ("" for none)."""

    name: str
    reader: Callable[..., ImportResult]
    reads: str
    extra: str = ""


IMPORTERS: dict[str, Importer] = {
    imp.name: imp
    for imp in (
        Importer("deepobs", import_deepobs, "DeepOBS 1.1/1.2 output trees"),
        Importer("algoperf", import_algoperf, "AlgoPerf leaderboard logs (any version)"),
        Importer("table", import_table, "tidy tables (CSV; Parquet with the extra)", "parquet"),
        Importer("optuna", import_optuna, "Optuna studies", "optuna"),
        Importer(
            "mlflow", import_mlflow, "MLflow experiments (file or SQLite stores, servers)", "mlflow"
        ),
    )
}
