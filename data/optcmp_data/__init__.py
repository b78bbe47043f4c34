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
from optcmp_data._families import (
    FAMILY_NAMES,
    FAMILY_SPECS,
    PAPER_FAMILIES,
    SCHEDULE_SPECS,
    Family,
    HyperparamSpec,
    ScheduleKind,
    ScheduleSpec,
    SearchRange,
    closest_name,
    get_family,
    get_schedule,
    register_family,
)
from optcmp_data._fs import atomic_write, atomic_write_text, check_regular_file, os_error
from optcmp_data._io import (
    list_shards,
    merge_archives,
    open_archive,
    stored_cells,
    write_archive,
    write_shard,
)
from optcmp_data._provenance import archive_plugins, git_commit
from optcmp_data._schema import (
    CURVE_VARS,
    REPEAT_DIMS,
    SCHEMA_VERSION,
    Direction,
    Scale,
    Split,
    Status,
    archive_caveats,
    parse_selection_repeats,
    repeat_dims,
    validate,
)
from optcmp_data._summary import ArchiveSummary, summarize
from optcmp_data._taxonomy import (
    FAMILIES,
    HparamMap,
    Inclusion,
    LrScaling,
    Taxonomy,
    default_taxonomy,
    register_relation,
    taxonomy_labels,
)

__all__ = [
    "CURVE_VARS",
    "FAMILIES",
    "FAMILY_NAMES",
    "FAMILY_SPECS",
    "PAPER_FAMILIES",
    "REPEAT_DIMS",
    "SCHEDULE_SPECS",
    "SCHEMA_VERSION",
    "ArchiveBuilder",
    "ArchiveIOError",
    "ArchiveSummary",
    "ConfigError",
    "Curves",
    "DataFormatError",
    "Direction",
    "Family",
    "HparamMap",
    "HyperparamSpec",
    "Inclusion",
    "LrScaling",
    "MergeError",
    "OptcmpError",
    "Scale",
    "ScheduleKind",
    "ScheduleSpec",
    "SchemaError",
    "SearchRange",
    "SpaceDim",
    "SpaceRecord",
    "Split",
    "Status",
    "Taxonomy",
    "TrialRecord",
    "WorkloadInfo",
    "archive_caveats",
    "archive_plugins",
    "atomic_write",
    "atomic_write_text",
    "check_regular_file",
    "closest_name",
    "default_taxonomy",
    "get_family",
    "get_schedule",
    "git_commit",
    "list_shards",
    "merge_archives",
    "open_archive",
    "os_error",
    "parse_selection_repeats",
    "register_family",
    "register_relation",
    "repeat_dims",
    "stored_cells",
    "summarize",
    "taxonomy_labels",
    "validate",
    "write_archive",
    "write_shard",
]
