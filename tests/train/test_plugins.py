"""Plug-ins: torch.optim classes run one instance per trial and agree with a plain
training loop; study-file plug-ins run next to built-ins; bad plug-ins are one line and
exit code 2 before any trial; a plug-in raising in training stops the run with one line,
finished shards intact."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from optcmp._plugins import load_optimizer
from optcmp.optim import RULES
from optcmp.optim._torch_adapter import TorchOptimizerRule, torch_family
from optcmp.runner import GroupTrials, data_order, train_group
from optcmp.spaces import SearchSpace
from optcmp.workloads import get_workload
from optcmp_cli.app import app
from optcmp_data import ConfigError, archive_plugins, open_archive
from optcmp_data._io import list_shards

runner = CliRunner()


def test_torch_family_reads_constructor_keywords() -> None:
    family = torch_family("tadam", torch.optim.Adam, "torch.optim:Adam")
    names = family.hparam_names
    assert names[0] == "learning_rate"
    assert family.defaults()["learning_rate"] == pytest.approx(1e-3)
    assert "eps" in names
    assert "weight_decay" in names
    assert "betas" not in names
    assert "amsgrad" not in names


def test_torch_optimizer_per_trial_matches_a_plain_loop() -> None:
    """K = 3 Adagrad trials through the runner equal three plain loops to 1e-6."""
    load_optimizer("tadagrad_eq", torch.optim.Adagrad, source="torch.optim:Adagrad")
    workload = get_workload("digits_mlp")
    splits = workload.load(None)
    trials = [
        {"learning_rate": 0.05},
        {"learning_rate": 0.01, "weight_decay": 1e-3},
        {"learning_rate": 0.2, "lr_decay": 0.01},
    ]
    seeds, data_seed, budget, interval, batch = [3, 4, 5], 9, 40, 20, 64
    result = train_group(
        workload,
        splits,
        GroupTrials(trials, seeds, data_seed=data_seed),
        space=SearchSpace("test", "tadagrad_eq", "constant"),
        device=torch.device("cpu"),
        spec=attrs.evolve(
            workload.spec, step_budget=budget, eval_interval=interval, batch_size=batch
        ),
    )
    for k, (trial, seed) in enumerate(zip(trials, seeds, strict=True)):
        model = workload.build_model(seed)
        kwargs: dict[str, Any] = {
            ("lr" if n == "learning_rate" else n): v for n, v in trial.items()
        }
        opt = torch.optim.Adagrad(model.parameters(), **kwargs)
        order = data_order(len(splits.train), batch, data_seed)
        expected: dict[str, list[float]] = {"train_loss": [], "valid_loss": [], "test_loss": []}

        def evaluate(
            model: torch.nn.Module = model, expected: dict[str, list[float]] = expected
        ) -> None:
            with torch.no_grad():
                for name, split in (
                    ("train_loss", splits.train_eval),
                    ("valid_loss", splits.valid),
                    ("test_loss", splits.test),
                ):
                    expected[name].append(float(workload.loss(model(split.inputs), split.targets)))

        evaluate()
        for step in range(budget):
            idx = next(order)
            opt.zero_grad()
            loss = workload.loss(model(splits.train.inputs[idx]), splits.train.targets[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if (step + 1) % interval == 0:
                evaluate()
        for name, values in expected.items():
            got = result.curves[name][k]
            assert len(got) == len(values)
            np.testing.assert_allclose(got, values, rtol=1e-6, err_msg=f"trial {k} {name}")
        assert values[-1] < values[0] - 0.1  # it really trained


def _study(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


PLUGIN_MODULE = '''
import math
import torch
from optcmp_data import Family, HyperparamSpec

LR = HyperparamSpec("learning_rate", "eta", 0.01, 0.0, math.inf, True, False, "rate")
NOT_A_RULE = 42


class _Plain:
    """theta -= lr g, written out (no optcmp.optim.Rule base)."""

    hparam_names = ()

    @property
    def name(self):
        return self.family.name

    def init(self, params):
        return {}

    def update(self, grads, state, hparams, lr, step, params=None):
        return [-lr.view(-1, *([1] * (g.dim() - 1))) * g for g in grads], state

    def apply_(self, params, grads, state, hparams, lr, step):
        for p, u in zip(params, self.update(grads, state, hparams, lr, step)[0]):
            p.add_(u)


class _BadDefault(_Plain):
    family = Family(
        "baddefault", "Bad", (LR, HyperparamSpec("scale", "s", 2.0, 0.0, 1.0, True, True, "x")),
        "theta -= lr g",
    )
    hparam_names = ("scale",)


class _WrongShape(_Plain):
    family = Family("wrongshape", "Wrong", (LR,), "theta -= lr g")

    def update(self, grads, state, hparams, lr, step, params=None):
        return [g.sum(dim=-1) for g in grads], state


class _Boom(_Plain):
    family = Family("boom", "Boom", (LR,), "theta -= lr g until step 5")

    def apply_(self, params, grads, state, hparams, lr, step):
        if step >= 5:
            raise RuntimeError("exploded at step 5")
        super().apply_(params, grads, state, hparams, lr, step)


BAD_DEFAULT = _BadDefault()
WRONG_SHAPE = _WrongShape()
BOOM = _Boom()
'''


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "i11_bad_plugins.py").write_text(PLUGIN_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "i11_bad_plugins"


def _failed_run_with_sgd_and(tmp_path: Path, name: str, target: str, out: Path) -> str:
    """`run` of a study of sgd and plug-in `name` (`target`) on noisy_quadratic into `out`,
    which must exit 2 with one line on stderr: that line."""
    study = _study(
        tmp_path,
        f"""
        workloads = ["noisy_quadratic"]
        optimizers = ["sgd", "{name}"]
        trials = 2
        step_budget = 10
        eval_interval = 5
        [plugins]
        {name} = "{target}"
        [spaces.{name}]
        learning_rate = {{ low = 1e-3, high = 0.1, scale = "log" }}
        """,
    )
    result = runner.invoke(app, ["run", str(study), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("name", "target", "message"),
    [
        ("nosuch", "no_such_module_i11:Thing", "cannot import module 'no_such_module_i11'"),
        ("notrule", "{mod}:NOT_A_RULE", "neither a batched rule object"),
        ("adam", "torch.optim:Adam", "collides with the built-in optimizer 'adam'"),
        ("baddefault", "{mod}:BAD_DEFAULT", "default 2.0 is outside its own valid range"),
        ("wrongshape", "{mod}:WRONG_SHAPE", "update 0 is torch.float32 of shape (2, 3)"),
    ],
)
def test_bad_plugins_are_one_line_and_exit_2_before_any_trial(
    tmp_path: Path, plugin_module: str, name: str, target: str, message: str
) -> None:
    out = tmp_path / "runs"
    line = _failed_run_with_sgd_and(tmp_path, name, target.format(mod=plugin_module), out)
    assert f"plug-in {name}" in line, line
    assert message in line, line
    assert not out.exists() or not list_shards(out)


def test_a_plugin_raising_in_training_stops_the_run_naming_it(
    tmp_path: Path, plugin_module: str
) -> None:
    out = tmp_path / "runs"
    line = _failed_run_with_sgd_and(tmp_path, "boom", f"{plugin_module}:BOOM", out)
    assert "plug-in optimizer boom" in line
    assert "exploded at step 5" in line
    shards = list_shards(out)
    assert [s.name.split("--")[1] for s in shards] == ["sgd"]
    assert open_archive(out)["optimizer"].values.tolist() == ["sgd"]


def test_study_file_example_runs_and_analyses(tmp_path: Path) -> None:
    """The issue's example: adam and torch.optim's Adagrad (plus momentum, so that the
    inclusion analysis has a pair) on digits_mlp; then analyse and report."""
    study = _study(
        tmp_path,
        """
        workloads = ["digits_mlp"]
        optimizers = ["momentum", "adam", "adagrad"]
        trials = 3
        step_budget = 40
        eval_interval = 20
        [plugins]
        adagrad = "torch.optim:Adagrad"
        [spaces.adagrad]
        learning_rate = { low = 1e-4, high = 1.0, scale = "log" }
        """,
    )
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(study), "--out", str(out)])
    assert result.exit_code == 0, result.output
    archive = open_archive(out)
    record = archive_plugins(archive.attrs)["adagrad"]
    assert record["source"].startswith("torch.optim:Adagrad (torch ")
    assert next(h["name"] for h in record["family"]["hparams"]) == "learning_rate"
    assert isinstance(RULES["adagrad"], TorchOptimizerRule)
    for args in (["analyze", "best"], ["analyze", "inclusion", "--n-test-boot", "50"]):
        result = runner.invoke(app, [*args, str(out)])
        assert result.exit_code == 0, (args, result.output)
    assert "adagrad" in runner.invoke(app, ["analyze", "best", str(out)]).output
    result = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "adagrad" in (tmp_path / "report" / "report.md").read_text(encoding="utf-8")


def test_plugin_families_cannot_shadow_builtins() -> None:
    with pytest.raises(ConfigError, match="collides with the built-in optimizer 'sgd'"):
        load_optimizer("sgd", torch.optim.SGD, source="torch.optim:SGD")
    assert math.isclose(RULES["sgd"].family.defaults()["learning_rate"], 0.01)


def test_entry_points_that_fail_are_one_line_naming_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Discovery (on first use) loads every entry point; a broken one names itself, its
    group and the problem."""
    from importlib.metadata import EntryPoint

    import optcmp._plugins as plugins

    broken = EntryPoint("broken", "no_such_module_i11:RULE", "optcmp.optimizers")
    clash = EntryPoint("nadam", "torch.optim:NAdam", "optcmp.optimizers")
    for entry, message in (
        (
            broken,
            r"plug-in broken \(no_such_module_i11:RULE, entry point optcmp\.optimizers\): "
            r"cannot import",
        ),
        (clash, r"plug-in nadam .*collides with the built-in optimizer 'nadam'"),
    ):
        monkeypatch.setattr(plugins, "_discovered", False)
        monkeypatch.setattr(
            "importlib.metadata.entry_points",
            lambda group, entry=entry: [entry] if group == entry.group else [],
        )
        with pytest.raises(ConfigError, match=message):
            plugins.discover()
    monkeypatch.setattr(plugins, "_discovered", True)
