"""`optcmp plan`: how many trials per optimizer each verdict needs, from a pilot archive.

Dependency rule: typer, rich, matplotlib (through render), optcmp_data and
optcmp_analysis (no torch). With `--json` it prints only `{"plan": [flat records]}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from attrs import frozen
from rich.table import Table

from optcmp_analysis import (
    DEFAULT_PLAN_BUDGET,
    DEFAULT_POWER,
    SelectionRule,
)
from optcmp_cli._common import (
    about_archive,
    check_out_file,
    console,
    print_json,
    reports_errors,
    seeded_rng,
)
from optcmp_cli._options import (
    ArchiveArg,
    JsonOpt,
    MarginOpt,
    MarginsOpt,
    RuleOpt,
    SeedOpt,
    WorkloadOpt,
    margin_option,
)
from optcmp_cli.render.escape import term
from optcmp_cli.render.numbers import num
from optcmp_data import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from optcmp_analysis import TrialPlan
    from optcmp_data import Taxonomy

__all__ = ["needed_text", "plan", "plan_axes", "plan_figure"]

_KINDS = ("inclusion", "protocol", "pair")

_GOAL_TEXT = {
    "violated": "violated",
    "consistent": "consistent",
    "decided": "a verdict",
    "clear": "clear",
}


def needed_text(record: dict[str, Any], max_trials: int) -> str:
    """ "48" or "> 512": the trials needed of a plan record."""
    needed = record.get("needed")
    return str(needed) if isinstance(needed, int) else f"> {max_trials}"


def _comparison(record: dict[str, Any]) -> str:
    if record["kind"] == "protocol":
        return f"{record['a']} (protocol effect)"
    if record["kind"] == "pair":
        under = f" under {record['protocol']}" if record.get("protocol") else ""
        return f"{record['a']} vs {record['b']}{under}"
    return f"{record['a']} ⊆ {record['b']}"


#: The panel title of each kind of comparison in the plan figure.
_PANEL_TITLES = {
    "inclusion": "inclusion tests",
    "protocol": "protocol effects",
    "pair": "optimizer pairs",
}


def plan_axes(ax: Axes, result: TrialPlan, kind: str) -> None:
    """Power against trials per optimizer for the comparisons of one `kind` on `ax`, one
    line per (comparison, goal): the normal approximation (line) and the real test on
    drawn studies (markers), the goal dotted, a legend below the panel."""
    import numpy as np
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter, NullLocator

    d = result.data
    grid = [int(n) for n in d["trials"].values]
    several = len(set(d["workload"].values.tolist())) > 1
    rows = [r for r in range(d.sizes["row"]) if str(d["kind"].values[r]) == kind]
    colours: dict[tuple[str, str, str, str], str] = {}
    for r in rows:
        row = d.isel(row=r)
        key = (
            str(row["workload"].item()),
            str(row["a"].item()),
            str(row["b"].item()),
            str(row["protocol"].item()),
        )
        colour = colours.setdefault(key, f"C{len(colours) % 10}")
        label = {
            "inclusion": f"{key[1]} ⊆ {key[2]}",
            "protocol": key[1],
            "pair": f"{key[1]} vs {key[2]} {row['protocol'].item()}".rstrip(),
        }[kind] + f": {row['goal'].item()}"
        if several:
            label += f" ({key[0]})"
        style = "--" if str(row["goal"].item()) == "consistent" else "-"
        ax.plot(grid, row["approx_power"].values, style, color=colour, lw=1, label=label)
        tested = row["test_power"].values
        ok = np.isfinite(tested)
        ax.plot(np.array(grid)[ok], tested[ok], "o", color=colour, ms=5)
    ax.axhline(result.power, color="0.3", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(grid))
    ax.xaxis.set_major_formatter(FixedFormatter([str(n) for n in grid]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"trials per optimizer (verdicts at budget k = {result.budget})")
    ax.set_ylabel("power")
    ax.set_title(_PANEL_TITLES[kind], fontsize=10)
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)


def plan_figure(result: TrialPlan) -> Figure:
    """`plan_axes` for every kind of comparison in the plan, side by side, with a title."""
    from matplotlib.figure import Figure

    from optcmp_cli.render.style import figure_style

    d = result.data
    kinds = [k for k in _PANEL_TITLES if (d["kind"].values == k).any()]
    with figure_style():
        fig = Figure(figsize=(6.4 * len(kinds), 6.4), layout="constrained")
        axes = fig.subplots(1, len(kinds), squeeze=False)[0]
        for ax, kind in zip(axes, kinds, strict=True):
            plan_axes(ax, result, kind)
        fig.suptitle(
            f"power against trials: lines the normal approximation, markers the test on "
            f"{result.n_sim} drawn studies; goal {result.power:g} dotted",
            fontsize=9,
        )
        _fit_legends(fig)
    return fig


def _fit_legends(fig: Figure) -> None:
    """Widen and lengthen the figure so that the largest legend below a panel fits in it:
    its labels name optimizers and workloads (24 pairs of DeepOBS's long names do not fit a
    6.4-inch panel). Text widths depend on the resolution: measured at the figure's and at
    the 150 dpi PNGs are written with, the larger kept."""
    dpi = fig.dpi
    boxes = []
    for at in {dpi, 150.0}:
        fig.set_dpi(at)
        boxes += [
            (box.width / at, box.height / at)
            for ax in fig.axes
            if (leg := ax.get_legend()) is not None
            for box in [leg.get_window_extent()]
        ]
    fig.set_dpi(dpi)
    if not boxes:
        return
    width, height = fig.get_size_inches()
    # The legend is centred under its panel, which sits right of the y label: 1 inch spare.
    panel = max(width / len(fig.axes), max(w for w, _ in boxes) + 1.0)
    below = max(h for _, h in boxes)
    fig.set_size_inches(panel * len(fig.axes), max(height, 5.2 + 1.8 * below))
    # Padding round the edges: text measured at one resolution runs wider at another.
    fig.set_layout_engine("constrained", h_pad=0.2, w_pad=0.2)


_CompareOpt = Annotated[
    Path | None,
    typer.Option(
        "--compare",
        help="A second archive, the same optimizers under another protocol: plan its "
        "protocol effects too (matched by optimizer name).",
    ),
]
_ProtocolsOpt = Annotated[
    list[str] | None,
    typer.Option("--protocol", help="Give twice: labels of ARCHIVE and of --compare."),
]
_BudgetOpt = Annotated[
    int,
    typer.Option("--budget", min=1, help="The budget k the verdicts are about (k-trial studies)."),
]
_PowerOpt = Annotated[float, typer.Option("--power", help="The power asked for, in (0, 1).")]
_EffectOpt = Annotated[
    float | None,
    typer.Option(
        "--effect",
        help="The effect to detect, in the metric's units (default: the margin): "
        "violated at Δ = +effect, consistent at Δ = margin - effect, a protocol effect "
        "of that size.",
    ),
]
_PilotEffectOpt = Annotated[
    bool,
    typer.Option(
        "--pilot-effect",
        help="Plan for the pilot's own differences instead of --effect (how many trials "
        "would decide each comparison if the optimizers are as the pilot shows them).",
    ),
]
_PlanAlphaOpt = Annotated[float, typer.Option("--alpha", help="Family-wise error rate.")]
_TaxonomyOpt = Annotated[
    Path | None,
    typer.Option("--taxonomy", help="TOML file of inclusion relations (default: the paper's)."),
]
_TrialsOpt = Annotated[
    list[int] | None,
    typer.Option(
        "--trials",
        help="A trial count per optimizer to consider (repeat; default 1.5k, 2k, 3k, "
        "4k, ... up to 512).",
    ),
]
_KindOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--kind",
        help="Plan only these comparisons (repeat): inclusion (inclusion pairs), protocol "
        "(protocol effects, with --compare), pair (every two optimizers of a workload); "
        "default all.",
    ),
]
_NSimOpt = Annotated[
    int, typer.Option("--n-sim", min=10, help="Drawn studies per tested trial count.")
]
_FigureOpt = Annotated[
    Path | None,
    typer.Option("--figure", help="Also draw power against trials to this .png/.svg/.pdf."),
]


@reports_errors
def plan(
    archive: ArchiveArg,
    compare: _CompareOpt = None,
    protocols: _ProtocolsOpt = None,
    budget: _BudgetOpt = DEFAULT_PLAN_BUDGET,
    power: _PowerOpt = DEFAULT_POWER,
    effect: _EffectOpt = None,
    pilot_effect: _PilotEffectOpt = False,
    margin: MarginOpt = None,
    margins: MarginsOpt = None,
    alpha: _PlanAlphaOpt = 0.05,
    rule: RuleOpt = SelectionRule.FINAL_VALID,
    workload: WorkloadOpt = None,
    taxonomy: _TaxonomyOpt = None,
    trials: _TrialsOpt = None,
    kind: _KindOpt = None,
    n_sim: _NSimOpt = 100,
    figure_out: _FigureOpt = None,
    json_out: JsonOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Plan a study: for each inclusion pair, protocol effect and pair of optimizers of a
    pilot archive, the trials per optimizer needed for --power against --effect at budget
    --budget, found by drawing studies from the pilot's trials and running the test of
    `analyze inclusion` / `analyze protocol` on them.

    JSON records ("record" key): "plan" — kind (inclusion, protocol, pair), protocol (of a
    pair, with --compare), workload, a, b (special and general, the optimizer, or the two
    optimizers of a pair), metric, goal (violated, consistent, decided,
    clear), k, margin, margin_rule, effect, pilot_a, pilot_b (pilot trials), pilot_difference,
    true_difference (E_k(b) - E_k(a) planned for; positive: b worse), level (per test),
    power, needed (null: more than the largest count considered), power_at_needed, n_sim;
    "curve" — kind, protocol, workload, a, b, goal, trials, approx_power, test_power.

    Example: optcmp plan demo/study-choi2019 --compare demo/study-lr-only --figure plan.png
    """
    from optcmp_analysis import plan_trials

    pilot = _Pilot.open(archive, compare, protocols, workload, taxonomy, figure_out, kind, seed)
    with about_archive(archive):
        result = plan_trials(
            pilot.first,
            compare=pilot.second,
            protocols=pilot.labels,
            budget=budget,
            power=power,
            effect=effect,
            pilot_effect=pilot_effect,
            alpha=alpha,
            margin=margin_option(margin, margins),
            rule=rule,
            taxonomy=pilot.taxonomy,
            trials=trials or None,
            n_sim=n_sim,
            kinds=pilot.kinds,
            rng=pilot.rng,
        )
    _show(result, figure_out, json_out, _effect_text(effect, pilot_effect), rule)


@frozen
class _Pilot:
    """The checked options and opened pilot archives of one `optcmp plan`."""

    first: xr.Dataset
    second: xr.Dataset | None
    labels: tuple[str, str]
    taxonomy: Taxonomy | None
    kinds: tuple[str, ...]
    rng: np.random.Generator

    @classmethod
    def open(
        cls,
        archive: Path,
        compare: Path | None,
        protocols: list[str] | None,
        workload: list[str] | None,
        taxonomy: Path | None,
        figure_out: Path | None,
        kind: list[str] | None,
        seed: int,
    ) -> _Pilot:
        """Check the options (ConfigError, before any archive is read), then open and
        restrict ARCHIVE and --compare and read --taxonomy."""
        from optcmp_analysis import restrict
        from optcmp_data import Taxonomy, open_archive

        if figure_out is not None:
            from optcmp_cli.render.save import image_format

            image_format(figure_out)
            check_out_file(figure_out, "--figure")
        if protocols is not None and len(protocols) != 2:
            raise ConfigError("--protocol: give it twice (labels of ARCHIVE and of --compare)")
        kinds = tuple(kind or _KINDS)
        for k in kinds:
            if k not in _KINDS:
                raise ConfigError(f"--kind {k}: choose from {', '.join(_KINDS)}")
        rng = seeded_rng(seed)
        first = open_archive(archive)
        with about_archive(archive):
            first = restrict(first, workloads=workload or None)
        second = None
        if compare is not None:
            second = open_archive(compare)
            with about_archive(compare):
                second = restrict(second, workloads=workload or None)
        labels = (
            (protocols[0], protocols[1])
            if protocols
            else (archive.name or "first", compare.name if compare is not None else "second")
        )
        tax = Taxonomy.from_file(taxonomy) if taxonomy is not None else None
        return cls(first, second, labels, tax, kinds, rng)


def _effect_text(effect: float | None, pilot_effect: bool) -> str:
    """What the plan is for, in the table's title."""
    if pilot_effect:
        return "the pilot's own differences"
    if effect is not None:
        return f"effect {num(effect, 3)}"
    return "effect = each workload's margin"


def _show(
    result: TrialPlan, figure_out: Path | None, json_out: bool, effect_text: str, rule: str
) -> None:
    """Save the figure (--figure), then print the plan: JSON records, or the table, its
    notes, the margins, the caveats and the figure's path."""
    records = result.to_json()
    if figure_out is not None:
        from optcmp_cli.render.save import save_figure

        save_figure(plan_figure(result), figure_out)
    if json_out:
        print_json({"plan": records})
        return
    grid = [int(n) for n in result.data["trials"].values]
    console.print(_table(result, records, grid[-1], effect_text, rule))
    console.print(
        f"Δ = E_k(b) - E_k(a) in the metric's units, positive when b (the general optimizer, "
        f"or the --compare protocol) is worse; {result.n_sim} drawn studies per tested count, "
        f"{result.n_boot} bootstrap-t resamples per test at level alpha / (comparisons of "
        f"its family): "
        f"{_levels_text(result)}. `trials`: the fewest trials per optimizer whose tested power "
        f"reaches {result.power:g} (> {grid[-1]}: none up to {grid[-1]}); `power`: measured "
        "there.",
        highlight=False,
    )
    console.print(_margins_text(records), highlight=False)
    for caveat in result.caveats:
        console.print(f"[yellow]caveat:[/yellow] {term(caveat)}", highlight=False)
    if figure_out is not None:
        console.print(f"figure: {term(str(figure_out))}", highlight=False)


def _table(
    result: TrialPlan, records: list[dict[str, Any]], most: int, effect_text: str, rule: str
) -> Table:
    """One row per "plan" record: the comparison, its goal, the pilot's and the planned
    difference, the trials needed (`most`: the largest count considered) and the power."""
    table = Table(
        title=f"Trials per optimizer for power {result.power:g} at k = {result.budget} "
        f"({effect_text}; {term(str(rule))})"
    )
    several = len({r["workload"] for r in records}) > 1
    for col in ("comparison", "goal", "pilot Δ", "true Δ", "trials", "power"):
        table.add_column(col, overflow="fold")
    for r in records:
        if r["record"] != "plan":
            continue
        where = f" on {r['workload']}" if several else ""
        table.add_row(
            term(_comparison(r) + where),
            _GOAL_TEXT[r["goal"]],
            num(r["pilot_difference"], 3),
            num(r["true_difference"], 3),
            needed_text(r, most),
            num(r["power_at_needed"], 2),
        )
    return table


def _levels_text(result: TrialPlan) -> str:
    """ "inclusion 0.0063, pair 0.0033": the level of each test, by kind of comparison."""
    import numpy as np

    kind = result.data["kind"].values
    return ", ".join(
        f"{k} {num(float(result.data['level'].values[int(np.flatnonzero(kind == k)[0])]), 2)}"
        for k in _KINDS
        if (kind == k).any()
    )


def _margins_text(records: list[dict[str, Any]]) -> str:
    """ "margins: <rule>: <workload> <margin>, ...; ...": each workload's margin, by rule."""
    by_rule: dict[str, dict[str, str]] = {}
    for r in records:
        if r["record"] == "plan":
            by_rule.setdefault(r["margin_rule"], {})[r["workload"]] = num(r["margin"], 3)
    return "margins: " + "; ".join(
        f"{term(rule)}: " + ", ".join(f"{term(w)} {m}" for w, m in ws.items())
        for rule, ws in by_rule.items()
    )
