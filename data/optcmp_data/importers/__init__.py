"""Importers of other people's trials (DeepOBS trees, AlgoPerf logs, tidy tables, Optuna
studies, MLflow experiments); `IMPORTERS` is the one list of them, `register_importer`
adds one.

Dependency rule: numpy, xarray, attrs and optcmp_data only. Each importer reads a source
tree, builds the archive through `ArchiveBuilder` and returns it in memory with the
warnings of any skipped input; writing is the caller's (atomic `write_archive`).

Loading: the registry (names, options, help) is light and imported with the package; the
importers' own modules (numpy, xarray, pandas) load when one of their names is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optcmp_data._lazy import lazy_getattr
from optcmp_data.importers._registry import (
    IMPORTERS,
    TABLE_FORMATS,
    Draft,
    Importer,
    ImportOption,
    OptionKind,
    Ruleset,
    register_importer,
)

if TYPE_CHECKING:
    from optcmp_data.importers._algoperf import import_algoperf
    from optcmp_data.importers._common import ImportResult
    from optcmp_data.importers._deepobs import import_deepobs
    from optcmp_data.importers._mlflow import import_mlflow
    from optcmp_data.importers._optuna import import_optuna
    from optcmp_data.importers._table import TableMapping, export_table, import_table, sidecar_path

# Public name -> the module that defines it (imported on first use).
_LAZY = {
    "import_algoperf": "_algoperf",
    "ImportResult": "_common",
    "import_deepobs": "_deepobs",
    "import_mlflow": "_mlflow",
    "import_optuna": "_optuna",
    "TableMapping": "_table",
    "export_table": "_table",
    "import_table": "_table",
    "sidecar_path": "_table",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "IMPORTERS",
    "TABLE_FORMATS",
    "Draft",
    "ImportOption",
    "ImportResult",
    "Importer",
    "OptionKind",
    "Ruleset",
    "TableMapping",
    "export_table",
    "import_algoperf",
    "import_deepobs",
    "import_mlflow",
    "import_optuna",
    "import_table",
    "register_importer",
    "sidecar_path",
]
