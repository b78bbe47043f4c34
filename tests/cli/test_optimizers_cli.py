"""`optcmp optimizers`: the rules, defaults and inclusions as a table or JSON (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from optcmp_cli.app import app
from optcmp_data import FAMILY_SPECS, ScheduleKind, default_taxonomy

runner = CliRunner()


def test_help_has_example() -> None:
    result = runner.invoke(app, ["optimizers", "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_json_lists_families_schedules_and_inclusions() -> None:
    result = runner.invoke(app, ["optimizers", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [f["name"] for f in payload["families"]] == list(FAMILY_SPECS)
    for fam in payload["families"]:
        spec = FAMILY_SPECS[fam["name"]]
        assert fam["update_rule"] == spec.update_rule
        assert fam["provided_by"] == spec.source
        assert {h["name"]: h["default"] for h in fam["hparams"]} == spec.defaults()
    rho = next(h for h in payload["families"][3]["hparams"] if h["name"] == "rho")
    assert rho["valid"] == "[0, 1]"
    assert [s["name"] for s in payload["schedules"]] == [k.value for k in ScheduleKind]
    pairs = [(r["special"], r["general"]) for r in payload["inclusions"]]
    assert pairs == [(r.special, r.general) for r in default_taxonomy().relations]
    adam = next(r for r in payload["inclusions"] if r["general"] == "adam")
    assert adam["exact"] is False
    assert adam["map"]["limit"]["hparam"] == "epsilon"
    assert adam["map"]["lr_scaling"] == "adam_bias"


def test_table_shows_rules_and_maps() -> None:
    result = runner.invoke(app, ["optimizers"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("RMSProp", "NAdam", "beta2", "linear_decay", "rho = 1", "epsilon -> inf"):
        assert text in result.output, text


def test_user_taxonomy_file(tmp_path: Path) -> None:
    path = tmp_path / "tax.toml"
    path.write_text('[[inclusion]]\nspecial = "sgd"\ngeneral = "adam"\n', encoding="utf-8")
    result = runner.invoke(app, ["optimizers", "--json", "--taxonomy", str(path)])
    assert result.exit_code == 0, result.output
    (rel,) = json.loads(result.stdout)["inclusions"]
    assert rel["map"] is None
    assert rel["exact"] is None


def test_bad_taxonomy_file_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "tax.toml"
    path.write_text(
        '[[inclusion]]\nspecial = "sgd"\ngeneral = "adam"\nmap = { lr_scaling = "x" }\n',
        encoding="utf-8",
    )
    result = runner.invoke(app, ["optimizers", "--taxonomy", str(path)])
    assert result.exit_code == 2
    assert "lr_scaling = 'x'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_command_does_not_import_torch() -> None:
    """The command only reads optcmp_data: it must work where torch is not installed
    (installed optimizer plug-ins, if any, are the one reason to load torch)."""
    code = (
        "import sys; from importlib.metadata import entry_points; "
        "from typer.testing import CliRunner; from optcmp_cli.app import app; "
        "r = CliRunner().invoke(app, ['optimizers', '--json']); "
        "assert r.exit_code == 0, r.output; "
        "plugins = entry_points(group='optcmp.optimizers'); "
        "assert plugins or 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
