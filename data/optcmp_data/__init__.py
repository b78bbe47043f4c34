"""optcmp_data: the trial-archive contract (schema v1) shared by every layer.

Dependency rule: numpy, xarray, netCDF4, attrs and the standard library only; never
torch, statsmodels, or another optcmp package. Training writes archives through
`ArchiveBuilder`, importers write them the same way, and analysis reads them with
`open_archive`.

Loading: the public names are resolved lazily (`_LAZY` below): `import optcmp_data`
imports nothing heavy, and a name loads only the module that defines it (the errors, the
families and the resource limits without numpy or xarray).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optcmp_data._lazy import lazy_getattr

if TYPE_CHECKING:
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
    from optcmp_data._fs import atomic_write, atomic_write_text, os_error, read_config_text
    from optcmp_data._io import (
        merge_archives,
        open_archive,
        stored_cells,
        write_archive,
    )
    from optcmp_data._labels import visible
    from optcmp_data._lazy import lazy_getattr
    from optcmp_data._limits import check_bootstrap, check_memory, memory_limit
    from optcmp_data._provenance import archive_plugins, git_commit
    from optcmp_data._schema import (
        CURVE_VARS,
        Direction,
        Scale,
        Split,
        Status,
        archive_caveats,
        parse_selection_repeats,
        repeat_dims,
    )
    from optcmp_data._summary import ArchiveSummary, summarize
    from optcmp_data._taxonomy import (
        HparamMap,
        Inclusion,
        LrScaling,
        Taxonomy,
        default_taxonomy,
        register_relation,
        taxonomy_labels,
    )

# Public name -> the module of this package that defines it, imported on first use
# (PEP 562): importing the package costs nothing, each name loads only its own module.
# Adding a public name: a line here, its import above (for type checkers) and its entry
# in __all__ (tests/test_public_api.py checks that the three agree).
_LAZY: dict[str, str] = {
    "lazy_getattr": "_lazy",
    "CURVE_VARS": "_schema",
    "FAMILY_SPECS": "_families",
    "PAPER_FAMILIES": "_families",
    "SCHEDULE_SPECS": "_families",
    "ArchiveBuilder": "_builder",
    "ArchiveIOError": "_errors",
    "ArchiveSummary": "_summary",
    "ConfigError": "_errors",
    "Curves": "_builder",
    "DataFormatError": "_errors",
    "Direction": "_schema",
    "Family": "_families",
    "HparamMap": "_taxonomy",
    "HyperparamSpec": "_families",
    "Inclusion": "_taxonomy",
    "LrScaling": "_taxonomy",
    "MergeError": "_errors",
    "OptcmpError": "_errors",
    "Scale": "_schema",
    "ScheduleKind": "_families",
    "ScheduleSpec": "_families",
    "SchemaError": "_errors",
    "SearchRange": "_families",
    "SpaceDim": "_builder",
    "SpaceRecord": "_builder",
    "Split": "_schema",
    "Status": "_schema",
    "Taxonomy": "_taxonomy",
    "TrialRecord": "_builder",
    "WorkloadInfo": "_builder",
    "archive_caveats": "_schema",
    "archive_plugins": "_provenance",
    "atomic_write": "_fs",
    "atomic_write_text": "_fs",
    "check_bootstrap": "_limits",
    "check_memory": "_limits",
    "closest_name": "_families",
    "default_taxonomy": "_taxonomy",
    "get_family": "_families",
    "get_schedule": "_families",
    "git_commit": "_provenance",
    "memory_limit": "_limits",
    "merge_archives": "_io",
    "open_archive": "_io",
    "os_error": "_fs",
    "parse_selection_repeats": "_schema",
    "read_config_text": "_fs",
    "register_family": "_families",
    "register_relation": "_taxonomy",
    "repeat_dims": "_schema",
    "stored_cells": "_io",
    "summarize": "_summary",
    "taxonomy_labels": "_taxonomy",
    "visible": "_labels",
    "write_archive": "_io",
}

__all__ = [
    "CURVE_VARS",
    "FAMILY_SPECS",
    "PAPER_FAMILIES",
    "SCHEDULE_SPECS",
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
    "check_bootstrap",
    "check_memory",
    "closest_name",
    "default_taxonomy",
    "get_family",
    "get_schedule",
    "git_commit",
    "lazy_getattr",
    "memory_limit",
    "merge_archives",
    "open_archive",
    "os_error",
    "parse_selection_repeats",
    "read_config_text",
    "register_family",
    "register_relation",
    "repeat_dims",
    "stored_cells",
    "summarize",
    "taxonomy_labels",
    "visible",
    "write_archive",
]


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all
    __getattr__ = lazy_getattr(__name__, _LAZY, globals())

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})
