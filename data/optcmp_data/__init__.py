"""optcmp_data: the trial-archive contract (schema v1) shared by every layer.

Dependency rule: numpy, xarray, netCDF4, attrs and the standard library only; never
torch, statsmodels, or another optcmp package. Training writes archives through
`ArchiveBuilder`, importers write them the same way, and analysis reads them with
`open_archive`.
"""

from optcmp_data._builder import (
    ArchiveBuilder,
    Curves,
    SpaceDim,
    SpaceRecord,
    TrialRecord,
    WorkloadInfo,
)
from optcmp_data._errors import (
    ArchiveIOError,
    ConfigError,
    DataFormatError,
    MergeError,
    OptcmpError,
    SchemaError,
)
from optcmp_data._io import (
    list_shards,
    merge_archives,
    open_archive,
    stored_cells,
    write_archive,
    write_shard,
)
from optcmp_data._schema import (
    CURVE_VARS,
    REPEAT_DIMS,
    SCHEMA_VERSION,
    Direction,
    Scale,
    Split,
    Status,
    repeat_dims,
    validate,
)
from optcmp_data._summary import ArchiveSummary, summarize
from optcmp_data._taxonomy import FAMILIES, Inclusion, Taxonomy, default_taxonomy

__all__ = [
    "CURVE_VARS",
    "FAMILIES",
    "REPEAT_DIMS",
    "SCHEMA_VERSION",
    "ArchiveBuilder",
    "ArchiveIOError",
    "ArchiveSummary",
    "ConfigError",
    "Curves",
    "DataFormatError",
    "Direction",
    "Inclusion",
    "MergeError",
    "OptcmpError",
    "Scale",
    "SchemaError",
    "SpaceDim",
    "SpaceRecord",
    "Split",
    "Status",
    "Taxonomy",
    "TrialRecord",
    "WorkloadInfo",
    "default_taxonomy",
    "list_shards",
    "merge_archives",
    "open_archive",
    "repeat_dims",
    "stored_cells",
    "summarize",
    "validate",
    "write_archive",
    "write_shard",
]
