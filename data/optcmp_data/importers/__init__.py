"""Importers of other people's trials (DeepOBS trees, AlgoPerf logs, tidy tables, Optuna
studies, MLflow experiments); `IMPORTERS` is the one list of them.

Dependency rule: numpy, xarray, attrs and optcmp_data only. Each importer reads a source
tree, builds the archive through `ArchiveBuilder` and returns it in memory with the
warnings of any skipped input; writing is the caller's (atomic `write_archive`).
"""

from optcmp_data.importers._algoperf import ALGOPERF_DIRECTIONS, Ruleset, import_algoperf
from optcmp_data.importers._common import ImportResult
from optcmp_data.importers._deepobs import DEEPOBS_FAMILIES, import_deepobs
from optcmp_data.importers._infer import infer_mapping
from optcmp_data.importers._mlflow import MLFLOW_SPACE, import_mlflow
from optcmp_data.importers._optuna import import_optuna
from optcmp_data.importers._registry import IMPORTERS, Importer
from optcmp_data.importers._table import (
    IMPORT_ATTRS,
    TABLE_FORMATS,
    TableMapping,
    archive_to_frame,
    escape_text,
    export_table,
    import_table,
    sidecar_path,
    unescape_text,
)

__all__ = [
    "ALGOPERF_DIRECTIONS",
    "DEEPOBS_FAMILIES",
    "IMPORTERS",
    "IMPORT_ATTRS",
    "MLFLOW_SPACE",
    "TABLE_FORMATS",
    "ImportResult",
    "Importer",
    "Ruleset",
    "TableMapping",
    "archive_to_frame",
    "escape_text",
    "export_table",
    "import_algoperf",
    "import_deepobs",
    "import_mlflow",
    "import_optuna",
    "import_table",
    "infer_mapping",
    "sidecar_path",
    "unescape_text",
]
