"""The head of the report: the findings summary, the caveats and the archive.

Dependency rule: xarray, optcmp_data and the report's builder.
"""

from __future__ import annotations

import re

import xarray as xr

from optcmp_cli.render.escape import md
from optcmp_cli.render.markdown import number, table
from optcmp_cli.report.builder import Builder
from optcmp_data import ArchiveSummary

__all__ = ["header", "partial_caveat"]


def partial_caveat(b: Builder, summary: ArchiveSummary, name: str) -> None:
    """One caveat naming what an incomplete study lacks (missing and incomplete trials).

    Only for studies of `optcmp run`, where every (workload, optimizer, trial) is planned:
    an imported archive pads ragged trial and seed counts with "missing" by design."""
    if not str(summary.provenance.get("source") or "").startswith("optcmp run"):
        return
    missing = [(c.workload, c.optimizer, c.missing) for c in summary.cells if c.missing]
    incomplete = sum(c.incomplete for c in summary.cells)
    total = sum(c.completed + c.diverged + c.incomplete + c.missing for c in summary.cells)
    if not missing and not incomplete:
        return
    parts = []
    if missing:
        n = sum(m for _, _, m in missing)
        cells = ", ".join(f"{md(o)} on {md(w)} ({m})" for w, o, m in missing[:6])
        more = f" and {len(missing) - 6} more cells" if len(missing) > 6 else ""
        parts.append(f"{n} of {total} trials missing ({cells}{more})")
    if incomplete:
        parts.append(f"{incomplete} trials incomplete (stopped before their last step)")
    b.caveat(
        f"{md(name)} is an incomplete study: " + "; ".join(parts) + ". Results cover "
        "the trials present; rerun the study to complete it",
        key=True,
    )


def header(
    b: Builder,
    summary: ArchiveSummary,
    groups: list[tuple[str | None, list[str]]],
    compare: tuple[str, xr.Dataset] | None,
) -> list[str]:
    """The head of the report: title, how it was made, the findings, the caveats and the
    archive (it summarises the body, so it is written after it)."""
    return [
        f"# {md(b.title)}",
        "",
        f"Every analysis of {md(b.name)} in the method of Choi et al. 2019, *On Empirical "
        f"Comparisons of Optimizers for Deep Learning*: selection rule `{b.rule}`, seed "
        f"{b.seed}, {b.n_boot} bootstrap draws; inclusion and protocol tests: "
        f"{md(b.inference.describe())}. The same archive, seed and options reproduce this "
        "report.",
        "",
        *_findings(b),
        *_caveats(b),
        *_archive(summary, groups, compare),
    ]


def _caveats(b: Builder) -> list[str]:
    """Every caveat not under Findings, and the analyses not available."""
    lines = [
        "## Caveats",
        "",
        "Everything the archive records or the analyses found that qualifies a number "
        "below, each once (those that change a conclusion are listed under Findings).",
        "",
    ]
    others = _grouped([c for c in b.caveats if c not in b.key_caveats])
    if others:
        lines += [f"- {c}" for c in others]
    else:
        lines.append("- none beyond those under Findings")
    lines.append("")
    if b.skipped:
        lines += ["Analyses not available for this archive:", ""]
        lines += [f"- {md(k)}: {md(v)}" for k, v in b.skipped.items()]
        lines.append("")
    return lines


def _archive(
    summary: ArchiveSummary,
    groups: list[tuple[str | None, list[str]]],
    compare: tuple[str, xr.Dataset] | None,
) -> list[str]:
    """Where the data come from: provenance, workloads, every cell's trials, protocols."""
    prov = summary.provenance
    lines = [
        "## Archive",
        "",
        "Where the data come from and what it holds: provenance, workloads, and the "
        "status of every trial per (workload, optimizer).",
        "",
    ]
    lines += table(
        ["source", "created", "command", "optcmp", "torch", "git commit"],
        [
            [
                md(prov.get("source") or "-"),
                md(prov.get("created") or "-"),
                md(prov.get("command") or "-"),
                md(prov.get("optcmp_version") or "-"),
                md(prov.get("torch_version") or "-"),
                md(str(prov.get("git_commit") or "-")[:12]),
            ]
        ],
    )
    lines += _contents(summary)
    if len(groups) > 1:
        lines += [
            "Tuning protocols (search spaces) in this archive, each analysed on its own: "
            + "; ".join(f"{md(label)}: {', '.join(md(o) for o in opts)}" for label, opts in groups),
            "",
        ]
    if compare is not None:
        lines += [f"Compared with the archive {md(compare[0])} (protocol comparison below).", ""]
    return lines


def _contents(summary: ArchiveSummary) -> list[str]:
    """The archive's workloads, and the status of every cell's trials: two tables."""
    lines = table(
        ["workload", "metric", "direction", "selection split", "step budget", "valid target"],
        [
            [
                md(w["workload"]),
                md(w["metric"]),
                w["direction"],
                w["selection_split"],
                w["step_budget"] if w["step_budget"] >= 0 else "-",
                number(w["valid_target"]) if w["valid_target"] is not None else "-",
            ]
            for w in summary.workloads
        ],
    )
    lines += table(
        ["workload", "optimizer", "family", "completed", "diverged", "incomplete", "missing"],
        [
            [
                md(c.workload),
                md(c.optimizer),
                md(c.family) if c.family else "-",
                c.completed,
                c.diverged,
                c.incomplete,
                c.missing,
            ]
            for c in summary.cells
        ],
    )
    return lines


_PER_WORKLOAD = re.compile(r"^workload (?P<w>\S+): (?P<rest>.+)$")


def _grouped(caveats: list[str]) -> list[str]:
    """Caveats that differ only in their workload ("workload W: text") as one line naming
    every workload, at the place of the first; the others unchanged."""
    by_rest: dict[str, list[str]] = {}
    for c in caveats:
        m = _PER_WORKLOAD.match(c)
        if m:
            by_rest.setdefault(m["rest"], []).append(m["w"])
    out: list[str] = []
    for c in caveats:
        m = _PER_WORKLOAD.match(c)
        if m is None:
            out.append(c)
        elif by_rest[m["rest"]][0] == m["w"]:
            names = by_rest[m["rest"]]
            label = "workload" if len(names) == 1 else "workloads"
            out.append(f"{label} {', '.join(names)}: {m['rest']}")
    return out


def _findings(b: Builder) -> list[str]:
    """The summary that leads the report: what the data support, what they do not, what
    the protocol decides, and the caveats that change a conclusion."""
    lines = [
        "## Findings",
        "",
        "A statement is listed as supported only with an interval that excludes 0 (or a "
        "test verdict) behind it; differences within the uncertainty or within the "
        "metric's step are never read as one optimizer beating another.",
        "",
    ]
    sections = [
        ("Supported", b.supported, "nothing: no difference is clear at this budget"),
        ("Not supported", b.unsupported, "none listed"),
        ("Protocol findings", b.protocol_notes, "none"),
        ("Caveats that change conclusions", _grouped(b.key_caveats), "none"),
    ]
    for heading, items, empty in sections:
        lines += [f"**{heading}**", ""]
        lines += [f"- {text}" for text in items] if items else [f"- {empty}"]
        lines.append("")
    return lines
