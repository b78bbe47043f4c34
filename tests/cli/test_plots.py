"""`optcmp plot`: every figure kind renders to PNG and SVG; figures carry labelled axes,
log scales where the data span decades, one panel per workload; errors are one line and
exit code 2."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pytest
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedFormatter, FuncFormatter
from typer.testing import CliRunner

from optcmp_analysis import (
    SelectionRule,
    aggregate_scores,
    boundary_check,
    budget_curve,
    inclusion_consistency,
    performance_profiles,
    protocol_sensitivity,
    rank_optimizers,
    select_best,
    target_study,
)
from optcmp_cli._plot_command import PlotKind, figure_for
from optcmp_cli._plots import (
    boundary_axes,
    boundary_figure,
    budget_axes,
    budget_figure,
    curves_axes,
    curves_figure,
    inclusion_axes,
    inclusion_figure,
    protocol_axes,
    protocol_figure,
    rank_axes,
    rank_figure,
    targets_axes,
    targets_figure,
)
from optcmp_cli._plots_across import aggregate_axes, profiles_axes
from optcmp_cli.app import app
from optcmp_cli.render.palette import optimizer_styles, styles_of
from optcmp_cli.render.save import save_figure
from optcmp_cli.render.style import figure_style
from optcmp_data import write_archive
from optcmp_data.testing import synthetic_archive
from tests.cli.helpers import error_line

runner = CliRunner()
OPTIMIZERS = ("sgd", "momentum", "adam")


def small_archive(**kwargs: object) -> xr.Dataset:
    options: dict[str, object] = dict(
        workloads=2, optimizers=OPTIMIZERS, n_trials=12, n_evals=6, diverged_fraction=0.1, seed=5
    )
    options.update(kwargs)
    return synthetic_archive(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def archive() -> xr.Dataset:
    return small_archive()


@pytest.fixture(scope="module")
def plot_archive_path(tmp_path_factory: pytest.TempPathFactory, archive: xr.Dataset) -> Path:
    path = tmp_path_factory.mktemp("plots") / "a.nc"
    write_archive(archive, path)
    return path


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_help_names_every_kind_and_has_example() -> None:
    result = runner.invoke(app, ["plot", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example" in result.output
    for kind in PlotKind:
        assert kind.value in result.output


def test_the_kinds_are_the_registrys_analyses_with_a_figure_then_the_views() -> None:
    """No list of kinds: each analysis of the registry whose CLI module draws a figure,
    in the registry's order, the views after those of one archive (the learning curves,
    declared by best's CLI module), the comparison of two archives last."""
    from optcmp_analysis import analyses
    from optcmp_cli._analyses import analysis_named

    with_figure = [
        a.name
        for a in analyses()
        if hasattr(importlib.import_module(f"optcmp_cli.analyses.{a.name}"), "figure")
    ]
    assert [k.value for k in PlotKind] == [*with_figure[:-1], "curves", with_figure[-1]]
    assert with_figure[-1] == "protocol"
    curves = analysis_named("curves")
    assert curves.shows == "best"
    assert curves.entry().name == "best"
    assert "curves" not in [a.name for a in analyses()]  # no `optcmp analyze curves`
    help_text = " ".join(runner.invoke(app, ["plot", "--help"]).output.split())
    assert "curves (learning curves of the selected trials)" in help_text


def test_budget_help_says_what_k_means_for_each_kind_that_takes_it() -> None:
    """No list of names in --budget's help: the kinds whose CLI module declares
    BUDGET_HELP, each named with its meaning; every other kind refuses --budget."""
    from optcmp_cli._analyses import analysis_named

    help_text = " ".join(
        runner.invoke(app, ["plot", "--help"], env={"COLUMNS": "200"}).output.split()
    )
    takes = [k.value for k in PlotKind if analysis_named(k.value).takes_budget]
    assert takes == ["budget", "rank", "inclusion"]
    assert (
        "Trials per study k (budget: the largest k drawn; rank, inclusion: the k compared). "
        "Default: all trials (inclusion: k = max(1, floor(N / 4)), N the smaller study)."
    ) in help_text


@pytest.fixture(scope="module")
def two_by_two_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smallest comparison: two workloads, sgd and adam, 8 trials each."""
    path = tmp_path_factory.mktemp("two") / "two.nc"
    write_archive(synthetic_archive(workloads=2, optimizers=["sgd", "adam"], n_trials=8), path)
    return path


@pytest.mark.parametrize("kind", list(PlotKind))
def test_every_kind_of_the_smallest_comparison_lays_out(
    two_by_two_path: Path, tmp_path: Path, kind: PlotKind
) -> None:
    """One row of panels under a title of several lines and a legend: constrained layout
    gave up on it (matplotlib's warning, an error here, and a title over the panel); the
    figure grows taller instead."""
    out = tmp_path / f"{kind}.png"
    extra = ["--compare", str(two_by_two_path)] if kind == "protocol" else []
    args = ["plot", str(kind), str(two_by_two_path), "--out", str(out), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


@pytest.mark.parametrize("kind", list(PlotKind))
@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_every_kind_renders(
    plot_archive_path: Path, tmp_path: Path, kind: PlotKind, suffix: str
) -> None:
    out = tmp_path / f"{kind}{suffix}"
    # A protocol figure compares two archives (here the same one twice).
    extra = ["--compare", str(plot_archive_path)] if kind == "protocol" else []
    result = runner.invoke(
        app,
        ["plot", kind.value, str(plot_archive_path), "--out", str(out), "--n-boot", "100", *extra],
    )
    assert result.exit_code == 0, result.output
    head = out.read_bytes()[:200]
    if suffix == ".png":
        assert head.startswith(b"\x89PNG\r\n\x1a\n")
    elif suffix == ".pdf":
        assert head.startswith(b"%PDF")
    else:
        assert b"<svg" in head
    assert str(out) in result.stdout


def test_json_output(plot_archive_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "rank.png"
    result = runner.invoke(
        app,
        ["plot", "rank", str(plot_archive_path), "--out", str(out), "--n-boot", "50", "--json"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload == {"kind": "rank", "archive": str(plot_archive_path), "out": str(out)}


def test_workload_and_optimizer_options_restrict(plot_archive_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "curves.svg"
    result = runner.invoke(
        app,
        [
            *("plot", "curves", str(plot_archive_path), "--out", str(out)),
            *("--workload", "w1", "-o", "sgd", "--optimizer", "adam"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_analysis_errors_name_the_archive(plot_archive_path: Path, tmp_path: Path) -> None:
    line = error_line(
        ["plot", "budget", str(plot_archive_path), "--out", str(tmp_path / "x.png"), "-o", "lion"]
    )
    assert str(plot_archive_path) in line
    assert "unknown optimizer 'lion'" in line


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["budget", "{archive}", "--out", "{tmp}/x.jpg"], "use .png, .svg or .pdf"),
        (["budget", "{archive}", "--out", "{tmp}/x"], "use .png, .svg or .pdf"),
        (["budget", "{tmp}/missing.nc", "--out", "{tmp}/x.png"], "no such file"),
        (["rank", "{archive}", "--out", "{tmp}/x.png", "--budget", "99"], "larger than"),
        (["boundary", "{archive}", "--out", "{tmp}/x.png", "--budget", "2"], "--budget"),
        (["curves", "{archive}", "--out", "{tmp}/x.png", "--workload", "w9"], "'w9'"),
    ],
)
def test_errors_are_one_line(
    plot_archive_path: Path, tmp_path: Path, extra: list[str], fragment: str
) -> None:
    args = [a.format(archive=plot_archive_path, tmp=tmp_path) for a in extra]
    line = error_line(["plot", *args])
    assert line.startswith("error: ")
    assert fragment in line
    assert not list(tmp_path.glob("x*"))


def test_unknown_kind_is_a_usage_error(plot_archive_path: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["plot", "pie", str(plot_archive_path), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2


def test_colours_stable_across_subsets() -> None:
    everything = optimizer_styles(["sgd", "adam", "nadam"], ["sgd", "adam", "nadam"])
    subset = optimizer_styles(["adam"], ["adam"])
    assert subset["adam"] == everything["adam"]
    # A second optimizer of one family, or an unknown family, still gets its own style.
    twins = optimizer_styles(["adam", "adam_lr", "mine"], ["adam", "adam", "custom"])
    assert len({(s.colour, s.marker) for s in twins.values()}) == 3


def test_budget_figure_axes(archive: xr.Dataset) -> None:
    curve = budget_curve(archive, n_boot=100, rng=rng())
    fig = budget_figure(curve)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["w0", "w1"]
    for ax in axes:
        assert ax.get_xscale() == "log"
        assert "error_rate" in ax.get_ylabel()
        assert "test" in ax.get_ylabel()
        assert "trials" in ax.get_xlabel()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert set(OPTIMIZERS) <= set(labels)
    assert "closed form (expected)" in labels


def test_budget_option_caps_the_budgets(archive: xr.Dataset) -> None:
    fig = figure_for("budget", archive, seed=0, budget=4, rule=SelectionRule.FINAL_VALID, n_boot=50)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "2", "4"]


def test_budget_figure_log_y_when_data_span_decades() -> None:
    ds = small_archive(workloads=1, mu=0.001, spread=0.5, noise=0.0001)
    fig = budget_figure(budget_curve(ds, n_boot=100, rng=rng()))
    assert fig.axes[0].get_yscale() == "log"
    plain = budget_figure(budget_curve(small_archive(workloads=1), n_boot=100, rng=rng()))
    assert plain.axes[0].get_yscale() == "linear"


def test_rank_bars_stack_to_one(archive: xr.Dataset) -> None:
    ranks = rank_optimizers(archive, n_boot=100, rng=rng())
    fig = rank_figure(ranks)
    ax = fig.axes[0]
    heights: dict[float, float] = {}
    for patch in ax.patches:
        x = round(patch.get_x(), 6)  # type: ignore[attr-defined]
        heights[x] = heights.get(x, 0.0) + patch.get_height()  # type: ignore[attr-defined]
    assert len(heights) == len(OPTIMIZERS)
    assert np.allclose(list(heights.values()), 1.0)
    assert "w0" in ax.get_title()


def test_rank_figure_with_many_optimizers_stays_readable() -> None:
    # AlgoPerf-like: eleven optimizers and long workload names in panels side by side.
    names = [f"submission_number_{i}" for i in range(11)]
    workloads = ["librispeech_conformer_layernorm", "imagenet_resnet_large_bn_init", "w2"]
    ds = synthetic_archive(
        workloads=workloads, optimizers=names, families={n: "" for n in names}, n_trials=4
    )
    fig = rank_figure(rank_optimizers(ds, rng=rng()))
    FigureCanvasAgg(fig).draw()  # type: ignore[no-untyped-call]
    axes = [ax for ax in fig.axes if ax.get_visible()]
    boxes = [ax.title.get_window_extent() for ax in axes]
    for i, box in enumerate(boxes):  # no two panel titles overlap
        for other in boxes[i + 1 :]:
            assert not box.overlaps(other), (box, other)
    for ax in axes:
        # Eleven annotations: written upwards, so that neighbours never run together.
        assert all(t.get_rotation() == 90 for t in ax.texts)
        for tick in ax.get_xticklabels():  # optimizer names dark enough to read on white
            red, green, blue = mpl.colors.to_rgb(tick.get_color())
            assert 0.2126 * red + 0.7152 * green + 0.0722 * blue <= 0.35 + 1e-9


def test_inclusion_figure_one_panel_per_rule(archive: xr.Dataset) -> None:
    result = inclusion_consistency(archive, n_boot=100, rng=rng())
    fig = inclusion_figure(result)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == result.data.sizes["rule"]
    ticks = [t.get_text() for t in visible[0].get_yticklabels()]
    assert "sgd ⊆ momentum" in ticks
    texts = [t.get_text() for t in visible[0].texts]
    assert len(texts) == result.data.sizes["pair"] * result.data.sizes["workload"]
    # Each cell shows the p-value its verdict rests on: within the margin for consistent.
    verdicts = result.data.isel(rule=0).transpose("pair", "workload")["verdict"].values.ravel()
    for text, verdict in zip(texts, verdicts, strict=True):
        expected = "p within=" if verdict == "consistent" else "p worse="
        assert text.startswith(expected), (text, verdict)
    # The legend's long labels stay inside the figure.
    fig.canvas.draw()
    box = fig.legends[0].get_window_extent()
    frame = fig.bbox
    assert box.x0 >= frame.x0 - 1, (box, frame)
    assert box.x1 <= frame.x1 + 1, (box, frame)


def test_targets_figure(archive: xr.Dataset) -> None:
    fig = targets_figure(target_study(archive, n_boot=50, rng=rng()))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    assert axes[0].get_ylabel() == "steps to reach the target"
    assert "error_rate" in axes[0].get_xlabel()
    # DeepOBS archives count epochs: the axis says so.
    epochs = targets_figure(target_study(archive, n_boot=50, rng=rng()), step_unit="epoch")
    assert epochs.axes[0].get_ylabel() == "epochs to reach the target"


def test_targets_figure_log_y_when_steps_span_decades() -> None:
    ds = small_archive(workloads=1, step_budget=100_000, n_evals=40)
    study = target_study(ds, n_boot=20, rng=rng(), targets=[0.8, 0.5, 0.2])
    fig = targets_figure(study)
    assert fig.axes[0].get_yscale() == "log"


def test_boundary_figure_scales_and_edges(archive: xr.Dataset) -> None:
    check = boundary_check(archive, workloads=["w0"])
    fig = boundary_figure(check)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    # sgd: learning_rate; momentum: learning_rate, momentum; adam: + epsilon.
    assert len(axes) == 1 + 2 + 3
    by_label = {ax.get_xlabel(): ax for ax in axes}
    assert "1 - momentum (log scale, reversed)" in by_label
    assert by_label["learning_rate (log scale)"].get_xscale() == "log"
    lr = by_label["learning_rate (log scale)"]
    edges = sorted(
        float(np.asarray(line.get_xdata())[0])
        for line in lr.get_lines()
        if line.get_linestyle() == "--"
    )
    assert np.allclose(edges, [1e-4, 1.0])
    one_minus = by_label["1 - momentum (log scale, reversed)"]
    edges = sorted(
        float(np.asarray(line.get_xdata())[0])
        for line in one_minus.get_lines()
        if line.get_linestyle() == "--"
    )
    assert np.allclose(edges, [1 - 0.999, 1.0])
    assert one_minus.xaxis_inverted()  # the low edge of momentum (1 - x = 1) on the left
    assert all(ax.get_title().startswith("w0 / ") for ax in axes)


def _tick_texts(fig: Figure) -> list[str]:
    fig.canvas.draw()
    return [
        t.get_text()
        for ax in fig.axes
        if ax.get_visible()
        for axis in (ax.xaxis, ax.yaxis)
        for t in [*axis.get_ticklabels(), *axis.get_ticklabels(minor=True)]
        if t.get_text()
    ]


def test_log_axes_get_plain_tick_labels(archive: xr.Dataset, tmp_path: Path) -> None:
    # Mathtext is off for labels from archives; a log axis must not fall back to
    # matplotlib's mathtext tick labels ("$\\mathdefault{10^{-4}}$" shown literally).
    fig = boundary_figure(boundary_check(archive, workloads=["w0"]))
    save_figure(fig, tmp_path / "boundary.png")
    texts = _tick_texts(fig)
    assert texts
    assert not [t for t in texts if "$" in t or "mathdefault" in t]
    assert "10\u207b\u00b3" in texts  # 1e-3 on the learning-rate axis [1e-4, 1]


@pytest.mark.parametrize(
    ("lim", "expected"),
    [((1e-5, 100), {"10\u207b\u2075", "10\u00b2"}), ((0.05, 50), {"0.1", "1", "10"})],
)
def test_plain_log_formatter(tmp_path: Path, lim: tuple[float, float], expected: set[str]) -> None:
    fig = Figure()
    ax = fig.subplots()
    ax.plot(list(lim), [1, 2])
    ax.set_xscale("log")
    ax.set_xlim(*lim)
    save_figure(fig, tmp_path / "log.png")
    assert expected <= set(_tick_texts(fig))


def test_curves_figure(archive: xr.Dataset) -> None:
    fig = curves_figure(archive, select_best(archive))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "step"
    assert ax.get_ylabel() == "error_rate (valid)"
    assert len(ax.get_lines()) == len(OPTIMIZERS)


def test_curves_with_repeats_draw_every_run() -> None:
    ds = small_archive(workloads=1, repeats={"seed": 2}, diverged_fraction=0.0)
    fig = curves_figure(ds, select_best(ds))
    assert len(fig.axes[0].get_lines()) == 2 * len(OPTIMIZERS)


def test_protocol_figure_one_row_per_matched_optimizer(archive: xr.Dataset) -> None:
    other = small_archive(seed=6, planted={"sgd": 0.1})
    comparison = protocol_sensitivity(archive, other, protocols=("narrow", "wide"), n_boot=200)
    fig = protocol_figure(comparison)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["w0", "w1"]
    ax = axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(rows) == sorted(OPTIMIZERS)
    # Best (under the second protocol) on top: planted, sgd is much worse there.
    assert rows[-1] == "sgd"
    assert ax.yaxis_inverted()
    # Per optimizer and protocol: a line (the effect's interval around the second protocol's
    # value; none around the first) and a marker (2 x 2 lines per row).
    assert len(ax.get_lines()) == 4 * len(OPTIMIZERS)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["narrow", "wide (95% interval of the effect)"]


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_files_are_reproducible(archive: xr.Dataset, tmp_path: Path, suffix: str) -> None:
    selection = select_best(archive)
    a = save_figure(curves_figure(archive, selection), tmp_path / f"a{suffix}").read_bytes()
    b = save_figure(curves_figure(archive, selection), tmp_path / f"b{suffix}").read_bytes()
    assert a == b
    assert b"<dc:date>" not in a


def test_one_colour_per_optimizer_label_across_figures() -> None:
    # Labels that are no paper family (like DeepOBS's) keep one colour in every figure
    # that is given the archive's styles, including those built from analysis records.
    from optcmp_analysis import target_study

    names = ("AdamOptimizer", "MomentumOptimizer", "GradientDescentOptimizer")
    families = {"AdamOptimizer": "adam", "MomentumOptimizer": "momentum"}
    ds = synthetic_archive(optimizers=names, families=families, n_trials=5, seed=4)
    styles = styles_of(ds)
    assert len({s.colour for s in styles.values()}) == len(names)
    curves = curves_figure(ds, select_best(ds), styles=styles)
    study = target_study(ds, n_boot=50, rng=np.random.default_rng(0))
    targets = targets_figure(study, styles=styles)
    for fig in (curves, targets):
        legend = fig.legends[0]
        colours: dict[str, object] = {}
        for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True):
            assert isinstance(h, Line2D)
            colours[t.get_text()] = tuple(mpl.colors.to_rgb(h.get_color()))
        for name in names:
            assert colours[name] == tuple(styles[name].colour)
    # More optimizers than ten still get distinct colours.
    many = [f"opt{i}" for i in range(14)]
    assert len({s.colour for s in optimizer_styles(many, many).values()}) == 14


def test_render_package_loads_no_heavy_library_until_a_figure_is_drawn() -> None:
    # `--help` of every command stays fast: the render modules a command imports at its
    # top (escape, numbers, tables, html, palette, save) load neither matplotlib nor
    # numpy or xarray; style and layout (imported when drawing) do load matplotlib.
    import subprocess
    import sys

    def loaded(modules: tuple[str, ...]) -> list[str]:
        code = (
            "import sys\n"
            + "".join(f"import optcmp_cli.render.{m}\n" for m in modules)
            + "print(*[m for m in ('matplotlib', 'numpy', 'xarray') if m in sys.modules])"
        )
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout.split()

    assert loaded(("escape", "numbers", "tables", "html", "palette", "save")) == []
    assert "matplotlib" in loaded(("style", "layout"))


def test_every_verdict_has_a_figure_and_a_terminal_colour() -> None:
    from optcmp_analysis import Verdict
    from optcmp_cli.render.palette import TERM_VERDICT_COLOURS, VERDICT_COLOURS

    assert set(VERDICT_COLOURS) == set(TERM_VERDICT_COLOURS) == {v.value for v in Verdict}


def _drawn(ax: Axes) -> tuple[object, ...]:
    """What a panel shows, up to the wrapping of its title: labels, scales, the data of
    every line, the number of collections, patches and images, and every text."""
    return (
        re.sub(r"\s", "", ax.get_title()),
        ax.get_xlabel(),
        ax.get_ylabel(),
        ax.get_xscale(),
        ax.get_yscale(),
        [repr(line.get_xydata().tolist()) for line in ax.get_lines()],  # type: ignore[union-attr]
        len(ax.collections),
        len(ax.patches),
        len(ax.images),
        [t.get_text() for t in ax.texts],
        [_fixed_tick_labels(axis) for axis in (ax.xaxis, ax.yaxis)],
    )


def _fixed_tick_labels(axis: Axis) -> list[str] | None:
    """Tick labels a panel sets itself (names, budgets); None for numbers, whose ticks
    depend on the size of the Axes."""
    if isinstance(axis.get_major_formatter(), (FixedFormatter, FuncFormatter)):
        return [t.get_text() for t in axis.get_ticklabels()]
    return None


def _panels(archive: xr.Dataset) -> list[tuple[Figure, list[Callable[[Axes], None]]]]:
    """Each figure of `_plots` with, per visible panel in order, its panel function."""
    curve = budget_curve(archive, n_boot=50, rng=rng())
    ranks = rank_optimizers(archive, n_boot=50, rng=rng())
    inclusion = inclusion_consistency(archive, n_boot=50, rng=rng())
    study = target_study(archive, n_boot=20, rng=rng())
    check = boundary_check(archive, workloads=["w0"])
    selection = select_best(archive)
    comparison = protocol_sensitivity(
        archive, small_archive(seed=6), protocols=("a", "b"), n_boot=50
    )
    workloads = [str(w) for w in archive["workload"].values]
    rules = [str(r) for r in inclusion.data["rule"].values]
    searched = {  # per optimizer, the hyperparameters it searched: one row of panels
        o: [
            h
            for h in check.data["hparam"].values.astype(str)
            if check.data["searched"].sel(workload="w0", optimizer=o, hparam=h)
        ]
        for o in check.data["optimizer"].values.astype(str)
    }
    return [
        (budget_figure(curve), [partial(budget_axes, curve=curve, workload=w) for w in workloads]),
        (
            rank_figure(ranks),
            [partial(rank_axes, rankings=ranks, workload=w, ylabel=w == "w0") for w in workloads],
        ),
        (
            inclusion_figure(inclusion),
            [partial(inclusion_axes, result=inclusion, rule=r) for r in rules],
        ),
        (
            targets_figure(study),
            [partial(targets_axes, study=study, workload=w) for w in workloads],
        ),
        (
            boundary_figure(check),
            [
                partial(
                    boundary_axes, check=check, workload="w0", optimizer=o, hparam=h, ylabel=c == 0
                )
                for o, hs in searched.items()
                for c, h in enumerate(hs)
            ],
        ),
        (
            curves_figure(archive, selection),
            [
                partial(curves_axes, archive=archive, selection=selection, workload=w)
                for w in workloads
            ],
        ),
        (
            protocol_figure(comparison),
            [partial(protocol_axes, comparison=comparison, workload=w) for w in workloads],
        ),
    ]


def test_figures_are_their_panels(archive: xr.Dataset) -> None:
    # Every figure is a grid of panel functions that draw into a given Axes: the same
    # panel drawn alone into an Axes of one's own shows the same thing.
    for fig, panels in _panels(archive):
        shown = [ax for ax in fig.axes if ax.get_visible()]
        assert len(shown) == len(panels)
        for ax, panel in zip(shown, panels, strict=True):
            with figure_style():
                alone = Figure(figsize=(fig.get_figwidth(), fig.get_figheight())).subplots()
                panel(alone)
            assert _drawn(alone) == _drawn(ax)


def test_panels_compose_into_a_figure_of_ones_own(archive: xr.Dataset, tmp_path: Path) -> None:
    # As with rliable: panels of different analyses side by side in the caller's figure.
    curve = budget_curve(archive, n_boot=50, rng=rng())
    aggregate = aggregate_scores(archive, n_boot=50, rng=rng())
    profiles = performance_profiles(archive)
    with figure_style():
        fig = Figure(figsize=(12, 3.5), layout="constrained")
        left, middle, right = fig.subplots(1, 3)
        budget_axes(left, curve, "w1")
        aggregate_axes(middle, aggregate, "iqm")
        profiles_axes(right, profiles)
    save_figure(fig, tmp_path / "mine.png")
    assert (tmp_path / "mine.png").read_bytes().startswith(b"\x89PNG")
    assert [left.get_title(), middle.get_title()] == ["w1", "IQM"]
    assert len(left.get_lines()) > 0
    assert len(right.get_lines()) == len(OPTIMIZERS)


def test_across_panels_draw_in_the_styles_they_are_given(archive: xr.Dataset) -> None:
    from optcmp_cli._plots_across import aggregate_figure, profiles_figure
    from optcmp_cli.render.palette import OptimizerStyle

    styles = {o: OptimizerStyle((0.1 * i, 0.5, 0.3), "o") for i, o in enumerate(OPTIMIZERS)}
    # Three workloads and k = n/2: intervals are drawn, as bands in each optimizer's colour.
    three = small_archive(workloads=3)
    result = aggregate_scores(three, n_boot=50, budget=4, rng=rng())
    aggregate = aggregate_figure(result, styles=styles)
    bands = [line for line in aggregate.axes[0].get_lines() if line.get_linewidth() == 6]
    assert bands
    assert {mpl.colors.to_rgb(line.get_color()) for line in bands} <= {
        s.colour for s in styles.values()
    }
    profiles = profiles_figure(performance_profiles(archive), styles=styles)
    drawn = {mpl.colors.to_rgb(line.get_color()) for line in profiles.axes[0].get_lines()}
    assert drawn == {s.colour for s in styles.values()}


def test_plan_figure_is_its_panels(archive: xr.Dataset) -> None:
    from optcmp_analysis import plan_trials
    from optcmp_cli._plan import plan_axes, plan_figure

    plan = plan_trials(archive, budget=2, trials=[4, 8], n_sim=10, rng=rng())
    fig = plan_figure(plan)
    kinds = ["inclusion", "pair"]  # no second archive: no protocol effects
    assert [ax.get_title() for ax in fig.axes] == ["inclusion tests", "optimizer pairs"]
    for ax, kind in zip(fig.axes, kinds, strict=True):
        with figure_style():
            alone = Figure(figsize=(6.4, 6.4)).subplots()
            plan_axes(alone, plan, kind)
        assert _drawn(alone) == _drawn(ax)
        legend = ax.get_legend()
        assert legend is not None
        assert len(legend.get_texts()) > 0


def test_profiles_of_plot_use_the_archive_families_colours() -> None:
    # Labels that are not family names (as DeepOBS's "AdamOptimizer"): `plot` and the
    # report colour a label by its family in the across-workload figures too (the
    # aggregate figure passes the same styles; its colours show in intervals only).
    three = small_archive(workloads=3)
    labels = {o: f"{o.capitalize()}Optimizer" for o in OPTIMIZERS}
    renamed = three.assign_coords(optimizer=[labels[str(o)] for o in three["optimizer"].values])
    styles = styles_of(renamed)
    by_name = optimizer_styles(list(labels.values()), list(labels.values()))
    assert {s.colour for s in styles.values()} != {s.colour for s in by_name.values()}
    fig = figure_for(
        "profiles", renamed, seed=0, budget=None, rule=SelectionRule.BEST_VALID, n_boot=50
    )
    drawn = {mpl.colors.to_rgb(line.get_color()) for line in fig.axes[0].get_lines()}
    assert drawn == {s.colour for s in styles.values()}
