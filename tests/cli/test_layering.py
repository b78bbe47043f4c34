"""The dependency rules between the four packages, checked from the source and at run time.

import-linter (nox -s lint) enforces the same contracts; this test keeps them in the
ordinary test run and adds what import-linter cannot see: lazy imports in the CLI, and
that importing the torch-free packages really leaves torch out of sys.modules.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "optcmp_data": ROOT / "data" / "optcmp_data",
    "optcmp_analysis": ROOT / "analysis" / "optcmp_analysis",
    "optcmp_cli": ROOT / "cli" / "optcmp_cli",
    "optcmp": ROOT / "optcmp",
}
FORBIDDEN = {
    "optcmp_data": {
        "torch",
        "statsmodels",
        "optcmp",
        "optcmp_analysis",
        "optcmp_cli",
        "typer",
        "rich",
        "matplotlib",
    },
    "optcmp_analysis": {"torch", "optcmp", "optcmp_cli", "typer", "rich", "matplotlib"},
    "optcmp": {"optcmp_analysis", "optcmp_cli", "typer", "rich", "matplotlib"},
    "optcmp_cli": {"torch"},
}
# The CLI may reach the simulation layer, but only inside functions (lazily).
LAZY_ONLY = {"optcmp_cli": {"optcmp"}}


def _type_checking_only(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (its body never runs)."""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, imported when the module is imported?) for every import in a
    file: not inside a function, nor under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                # Its body never runs; its `else:` runs like the code around it.
                assert isinstance(child, ast.If)
                visit(ast.Module(body=child.body, type_ignores=[]), False)
                visit(ast.Module(body=child.orelse, type_ignores=[]), top)
                continue
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                found.extend((alias.name.split(".")[0], top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module.split(".")[0], top))
            visit(child, inner)

    visit(tree, True)
    return found


def test_an_import_under_type_checking_is_not_at_module_level(tmp_path: Path) -> None:
    """Only the body of `if TYPE_CHECKING:` never runs: its `else:` does."""
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import optcmp\n"
        "else:\n"
        "    import optcmp.runner\n"
        "def f():\n"
        "    import optcmp.study\n",
        encoding="utf-8",
    )
    assert [found for found in _imports(source) if found[0] == "optcmp"] == [
        ("optcmp", False),
        ("optcmp", True),
        ("optcmp", False),
    ]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_dependency_rules(package: str) -> None:
    violations = []
    for path in sorted(PACKAGES[package].rglob("*.py")):
        for module, top in _imports(path):
            if module in FORBIDDEN[package]:
                violations.append(f"{path.relative_to(ROOT)} imports {module}")
            if module in LAZY_ONLY.get(package, set()) and top:
                violations.append(f"{path.relative_to(ROOT)} imports {module} at module level")
    assert violations == []


def test_torch_free_packages_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import optcmp_data, optcmp_data.testing, optcmp_analysis, optcmp_cli\n"
        "from optcmp_cli.app import app\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(app, ['--help'])\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('TORCH', loaded)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "TORCH []" in out.stdout, out.stdout + out.stderr


@pytest.mark.skipif(
    os.environ.get("OPTCMP_EXPECT_NO_TORCH") != "1", reason="only in nox -s tests_notorch"
)
def test_torch_is_absent_in_the_torch_free_session() -> None:
    import importlib.util

    assert importlib.util.find_spec("torch") is None
