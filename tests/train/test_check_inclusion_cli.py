"""`optcmp optimizers check-inclusion`: declared relations pass, a wrong one fails with its
deviation shown (exit 1), mistakes are one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optcmp_cli.app import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("special", "general", "extra"),
    [
        ("adam", "adamw", []),
        ("momentum", "adam", ["--steps", "100"]),
        ("momentum", "rmsprop", []),
        ("adam", "adamw", ["--workload", "digits_mlp", "--steps", "20"]),
    ],
)
def test_declared_relations_pass(special: str, general: str, extra: list[str]) -> None:
    result = runner.invoke(app, ["optimizers", "check-inclusion", special, general, *extra])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"PASS {special} ⊆ {general}")


def test_a_wrong_declared_relation_fails_showing_its_deviation(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(
        '[[inclusion]]\nspecial = "momentum"\ngeneral = "rmsprop"\n'
        'map = { same = { momentum = "momentum" }, fixed = { rho = 1.0 }, '
        "free = { epsilon = 0.5 } }\n",
        encoding="utf-8",
    )
    args = ["optimizers", "check-inclusion", "momentum", "rmsprop", "--taxonomy", str(wrong)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["passed"] is False
    assert payload["max_deviation"] > 1e-3
    text = runner.invoke(app, args).output
    assert text.startswith("FAIL momentum ⊆ rmsprop")
    assert "max relative deviation" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sgd", "adam"], "follows from a chain"),
        (["adam", "sgd"], "is not among the declared relations"),
        (["adamx", "adamw"], "is not among"),
        (["adam", "adamw", "--workload", "cifar10_resnet32"], "reads files"),
    ],
)
def test_mistakes_are_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["optimizers", "check-inclusion", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert message in lines[0]
