"""The analysis registry: options that match their run functions, one call per analysis,
and a registry that loads without numpy."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import xarray as xr

import optcmp_analysis
from optcmp_analysis import (
    AnalysisError,
    Normalisation,
    SelectionRule,
    aggregate_scores,
    budget_curve,
    inclusion_consistency,
    protocol_sensitivity,
)
from optcmp_analysis import _registry as registry
from optcmp_analysis._records import Result, attr, variable
from optcmp_analysis._registry import (
    ANALYSES,
    Analysis,
    BudgetOptions,
    InclusionOptions,
    OptionKind,
    analyses,
    analysis_named,
    meta,
    register,
)
from optcmp_data.testing import synthetic_archive

REGISTRY = Path(optcmp_analysis.__file__).parent / "_registry.py"
ENUMS = Path(optcmp_analysis.__file__).parent / "_enums.py"


def _keywords(analysis: Any) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(analysis.function_object())
    return {n: p for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}


@pytest.mark.parametrize("analysis", ANALYSES, ids=lambda a: a.name)
def test_options_are_keywords_of_the_run_function_with_its_defaults(analysis: Any) -> None:
    keywords = _keywords(analysis)
    assert ("rng" in keywords) is analysis.randomised
    for spec in analysis.option_specs():
        assert spec.name in keywords, f"{analysis.name}: {spec.name} is not a keyword"
        default = keywords[spec.name].default
        if default is not inspect.Parameter.empty:
            assert default == spec.default, f"{analysis.name}.{spec.name}"


@pytest.mark.parametrize("analysis", ANALYSES, ids=lambda a: a.name)
def test_option_specs_are_complete(analysis: Any) -> None:
    specs = analysis.option_specs()
    assert len({s.flag for s in specs}) == len(specs)
    for s in specs:
        assert s.help.endswith("."), (analysis.name, s.name)
        assert s.flag.startswith("--")
        assert "_" not in s.flag
        if s.kind is OptionKind.ENUM:
            assert s.enum is not None
            assert s.default is None or isinstance(s.default, s.enum)
        if s.default is None:
            assert s.optional
    assert analysis.result_type().__name__ == analysis.result.rpartition(":")[2]


def test_names_are_unique_and_lookup_names_the_choices() -> None:
    names = [a.name for a in ANALYSES]
    assert len(set(names)) == len(names)
    assert analysis_named("rank").name == "rank"
    with pytest.raises(AnalysisError, match="choose one of best, budget"):
        analysis_named("ranks")


def test_flags_and_kinds_of_the_cli_options() -> None:
    budget = {s.name: s for s in analysis_named("budget").option_specs()}
    assert budget["budgets"].flag == "--budget"
    assert budget["budgets"].kind is OptionKind.INTS
    incl = {s.name: s for s in analysis_named("inclusion").option_specs()}
    assert incl["n_boot"].flag == "--n-test-boot"
    assert incl["margin"].kind is OptionKind.MARGIN
    assert incl["taxonomy"].kind is OptionKind.TAXONOMY
    assert incl["train_loss"].kind is OptionKind.BOOL
    assert incl["train_loss"].default is True
    assert incl["rule"].enum is SelectionRule


def test_run_is_the_direct_call() -> None:
    ds = synthetic_archive(workloads=2, optimizers=["sgd", "momentum", "adam"], n_trials=8)
    got = analysis_named("budget").run(
        ds, options=BudgetOptions(budgets=(1, 2), n_boot=50), rng=np.random.default_rng(3)
    )
    want: Any = budget_curve(ds, budgets=(1, 2), n_boot=50, rng=np.random.default_rng(3))
    assert json.dumps(got.to_json()) == json.dumps(want.to_json())
    # Overrides of single options, and the inclusion's two rules from rule + train_loss.
    got = analysis_named("inclusion").run(
        ds, rng=np.random.default_rng(1), n_boot=99, rule=SelectionRule.BEST_VALID
    )
    want = inclusion_consistency(
        ds,
        n_boot=99,
        rules=(SelectionRule.BEST_VALID, SelectionRule.FINAL_TRAIN_LOSS),
        rng=np.random.default_rng(1),
    )
    assert json.dumps(got.to_json()) == json.dumps(want.to_json())
    alone = analysis_named("inclusion").run(
        ds, options=InclusionOptions(train_loss=False, n_boot=99), rng=np.random.default_rng(1)
    )
    assert {r["rule"] for r in alone.to_json()} == {"final-valid"}
    got = analysis_named("aggregate").run(
        ds, rng=np.random.default_rng(2), n_boot=20, normalisation=Normalisation.MINMAX_COMPARED
    )
    want = aggregate_scores(
        ds, rng=np.random.default_rng(2), n_boot=20, normalisation="minmax-compared"
    )
    assert json.dumps(got.to_json()) == json.dumps(want.to_json())


def test_protocol_takes_a_second_archive_and_picks_two_spaces_of_one() -> None:
    one = synthetic_archive(optimizers=["sgd", "adam"], n_trials=8, seed=1)
    two = synthetic_archive(optimizers=["sgd", "adam"], n_trials=8, seed=2)
    protocol = analysis_named("protocol")
    got = protocol.run(one, two, rng=np.random.default_rng(0), n_boot=99)
    want = protocol_sensitivity(one, two, n_boot=99, level=0.95, rng=np.random.default_rng(0))
    assert json.dumps(got.to_json()) == json.dumps(want.to_json())
    # One archive with two search spaces: the narrower (fewer searched hparams) first,
    # whatever the names' order ("wide" sorts before "zz-narrow").
    names = ["sgd", "adam", "sgd_lr", "adam_lr"]
    ds = synthetic_archive(
        optimizers=names, families={n: n.removesuffix("_lr") for n in names}, n_trials=8
    )
    narrow = np.char.endswith(ds["optimizer"].values.astype(str), "_lr")
    space = ds["space_name"].copy(data=np.where(narrow, "zz-narrow", "wide")[None, :])
    scale = ds["space_scale"].transpose("workload", "optimizer", "hparam")
    fixed = narrow[None, :, None] & (scale["hparam"] != "learning_rate").values[None, None, :]
    scale = scale.copy(data=np.where(fixed & (scale.values != "none"), "fixed", scale.values))
    ds = ds.assign(space_name=space, space_scale=scale)
    result = protocol.run(ds, rng=np.random.default_rng(0), n_boot=99)
    assert result.protocols == ("zz-narrow", "wide")
    with pytest.raises(AnalysisError, match="1 search spaces"):
        protocol.run(one, rng=np.random.default_rng(0))


def test_run_refuses_unknown_options_and_a_missing_rng() -> None:
    ds = synthetic_archive(optimizers=["sgd", "adam"], n_trials=4)
    with pytest.raises(TypeError):
        analysis_named("rank").run(ds, rng=np.random.default_rng(0), n_bootstrap=3)
    with pytest.raises(TypeError, match="rng"):
        analysis_named("rank").run(ds)
    with pytest.raises(TypeError, match="RankOptions"):
        analysis_named("rank").run(ds, options=BudgetOptions(), rng=np.random.default_rng(0))
    assert attrs.has(analysis_named("best").options)


# --- light imports ----------------------------------------------------------------------

_ALLOWED = {"__future__", "attrs", "enum", "functools", "importlib", "collections.abc", "typing"}


@pytest.mark.parametrize("path", [REGISTRY, ENUMS], ids=lambda p: p.name)
def test_registry_modules_import_nothing_heavy_at_load(path: Path) -> None:
    """Module-level imports (outside `if TYPE_CHECKING`) of the registry and the enums:
    the standard library, attrs and the enums module only."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name in _ALLOWED or name == "optcmp_analysis._enums", name


def test_registry_loads_without_numpy() -> None:
    """Loaded on its own (the package's __init__ bypassed), the registry and its options
    pull in neither numpy nor xarray; running an analysis then imports its module."""
    code = f"""
import sys, types
pkg = types.ModuleType("optcmp_analysis")
pkg.__path__ = [{str(REGISTRY.parent)!r}]
sys.modules["optcmp_analysis"] = pkg
from optcmp_analysis._registry import ANALYSES
for a in ANALYSES:
    a.options()
    a.option_specs()
heavy = sorted(m for m in ("numpy", "xarray", "pandas", "scipy") if m in sys.modules)
print(",".join(heavy))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""


# --- an analysis added from outside the package's table ---------------------------------


@attrs.frozen
class _SpreadOptions:
    scale: float = attrs.field(default=1.0, metadata=meta("Multiply the spread by this."))


def _spread(archive: Any, /, *, scale: float, rng: np.random.Generator) -> list[float]:
    values = archive["test_metric"].values
    return [scale * float(np.nanstd(values)), float(rng.random())]


def test_an_analysis_registered_from_its_own_module_runs_like_the_built_in_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_REGISTERED", [])
    spread = register(
        Analysis(
            "spread",
            "Spread",
            "The spread of the final test values.",
            _SpreadOptions,
            f"{__name__}:_spread",
            "builtins:list",
        )
    )
    assert analyses()[-1] is spread
    assert analysis_named("spread") is spread
    assert [s.flag for s in spread.option_specs()] == ["--scale"]
    ds = synthetic_archive(optimizers=["sgd", "adam"], n_trials=4)
    got = spread.run(ds, rng=np.random.default_rng(0), scale=2.0)
    assert got[0] == pytest.approx(2 * float(np.nanstd(ds["test_metric"].values)))
    with pytest.raises(AnalysisError, match="already registered"):
        register(spread)


def test_an_option_without_help_is_refused_at_registration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry, "_REGISTERED", [])

    @attrs.frozen
    class Bare:
        scale: float = 1.0

    with pytest.raises(TypeError, match=r"Bare\.scale: declare the option"):
        register(Analysis("bare", "Bare", "Bare.", Bare, f"{__name__}:_spread", "builtins:list"))


# --- the result base ----------------------------------------------------------------------


@pytest.mark.parametrize("analysis", ANALYSES, ids=lambda a: a.name)
def test_every_result_type_shares_the_base(analysis: Any) -> None:
    assert issubclass(analysis.result_type(), Result)


@attrs.frozen
class _Toy(Result):
    values: xr.DataArray = attrs.field(metadata=variable())
    rule: SelectionRule = attrs.field(metadata=attr())
    budget: int | None = attrs.field(metadata=attr(none=-1))
    caveats: tuple[str, ...] = attrs.field(metadata=attr())
    replaced: bool = attrs.field(default=True, metadata=attr(name="with_replacement"))
    hidden: str = "not stored"


def test_to_dataset_takes_variables_and_attributes_from_the_field_metadata() -> None:
    toy = _Toy(
        values=xr.DataArray([1.0, 2.0], dims="k"),
        rule=SelectionRule.BEST_VALID,
        budget=None,
        caveats=("one", "two"),
    )
    ds = toy.to_dataset()
    assert list(ds.data_vars) == ["values"]
    assert ds.attrs == {
        "rule": "best-valid",
        "budget": -1,
        "caveats": "one\ntwo",
        "with_replacement": 1,
    }
    assert toy.caveats == ("one", "two")
    with pytest.raises(NotImplementedError, match=r"_Toy declares no JSON"):
        toy.to_json()


def test_the_public_registry_loads_without_numpy() -> None:
    """Through the package's lazy names: what the CLI does to build its options."""
    code = """
import sys
from optcmp_analysis import analyses, analysis_named, OptionKind
for a in analyses():
    a.options()
    a.option_specs()
print(",".join(sorted(m for m in ("numpy", "xarray", "pandas", "scipy") if m in sys.modules)))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == ""


# --- the same records on the same trials, however the archive holds them --------------------

_SMALL: dict[str, dict[str, Any]] = {
    "budget": {"n_boot": 50},
    "rank": {"n_boot": 50},
    "inclusion": {"n_boot": 99},
    "targets": {"n_boot": 99},
    "protocol": {"n_boot": 99},
    "aggregate": {"n_boot": 50, "normalisation": Normalisation.MINMAX_COMPARED},
}


def _dims_reversed(archive: xr.Dataset) -> xr.Dataset:
    """No statistics by axis position: every variable holding its dims in reverse order."""
    flipped = archive.transpose(*reversed(list(archive.dims)))
    assert flipped["status"].dims != archive["status"].dims
    return flipped


def _with_settings(archive: xr.Dataset) -> xr.Dataset:
    """An imported archive's settings as coordinates over (workload, optimizer) (DeepOBS:
    batch_size, l2_reg, training_params), differing between workloads: a step that
    splits the archive by workload and joins the pieces meets them (and must not warn,
    e.g. about xarray's changing concat defaults: warnings are errors here)."""
    shape = (archive.sizes["workload"], archive.sizes["optimizer"])
    dims = ("workload", "optimizer")
    return archive.assign_coords(
        batch_size=(dims, np.arange(np.prod(shape), dtype=float).reshape(shape) + 32.0),
        l2_reg=(dims, np.full(shape, 5e-4) * (1 + np.arange(shape[0]))[:, None]),
        training_params=(dims, np.full(shape, "")),
    )


@pytest.mark.parametrize("variant", [_dims_reversed, _with_settings], ids=lambda f: f.__name__)
@pytest.mark.parametrize("analysis", ANALYSES, ids=lambda a: a.name)
def test_every_analysis_gives_the_same_records_on_a_variant_of_the_archive(
    analysis: Any, variant: Any
) -> None:
    """The same trials (repeats, ragged curves and diverged trials included) held another
    way give the same records."""
    kw: dict[str, Any] = {"workloads": 2, "optimizers": ["sgd", "momentum", "adam"]}
    first = synthetic_archive(
        **kw, n_trials=12, repeats={"seed": 2}, ragged=True, diverged_fraction=0.1, seed=4
    )
    second = synthetic_archive(**kw, n_trials=12, repeats={"seed": 2}, seed=5)
    archives = (first, second) if analysis.second_archive else (first,)
    options = _SMALL.get(analysis.name, {})
    want = analysis.run(*archives, rng=np.random.default_rng(0), **options)
    got = analysis.run(*map(variant, archives), rng=np.random.default_rng(0), **options)
    assert json.dumps(got.to_json()) == json.dumps(want.to_json())
