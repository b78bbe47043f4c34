"""The packages' public APIs: the lazy package roots list each public name once, in
agreement, and cost nothing to import; code outside a package uses its public names.

The import-linter contract "private_modules" (pyproject.toml) keeps the four packages off
each other's private modules; the scripts outside them (benchmarks/, docs/examples/,
examples/) and the Python examples in README.md and docs/*.md are not in its import
graph, so this module checks them. Tests may reach
into private modules (they test them); user-facing code may not.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("optcmp", "optcmp_data", "optcmp_analysis", "optcmp_cli")
LAZY_ROOTS = {
    "optcmp_data": ROOT / "data" / "optcmp_data" / "__init__.py",
    "optcmp_analysis": ROOT / "analysis" / "optcmp_analysis" / "__init__.py",
    "optcmp_data.importers": ROOT / "data" / "optcmp_data" / "importers" / "__init__.py",
}
# Roots that import their public names when they are imported (torch is loaded anyway).
EAGER_ROOTS = {
    "optcmp": ROOT / "optcmp" / "__init__.py",
    "optcmp.optim": ROOT / "optcmp" / "optim" / "__init__.py",
    "optcmp.runner": ROOT / "optcmp" / "runner" / "__init__.py",
}
SCRIPTS = sorted(
    [
        *(ROOT / "benchmarks").glob("*.py"),
        *(ROOT / "docs" / "examples").glob("*.py"),
        *(ROOT / "examples").glob("*/src/*/*.py"),
    ]
)


def _private_module(module: str) -> str | None:
    """`module` if it is, or is inside, a private module of one of the four packages."""
    parts = module.split(".")
    if parts[0] in PACKAGES and any(p.startswith("_") and not p.startswith("__") for p in parts):
        return module
    return None


def private_imports(source: str) -> list[str]:
    """The private modules of the four packages that `source` imports (anywhere in it)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _private_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if _private_module(node.module):
                found.append(node.module)
            else:  # `from optcmp import _plugins`
                found += [
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if _private_module(f"{node.module}.{a.name}")
                    and node.module.split(".")[0] in PACKAGES
                ]
    return found


def test_the_private_import_check_finds_every_form() -> None:
    source = (
        "import optcmp._plugins\n"
        "from optcmp_data._limits import check_bootstrap\n"
        "from optcmp_data import _labels\n"
        "def f():\n"
        "    from optcmp_analysis._kernels import sort_trials\n"
        "from optcmp_data import open_archive\n"
        "from optcmp_data.importers import import_table\n"
        "from typer import _click\n"
    )
    assert private_imports(source) == [
        "optcmp._plugins",
        "optcmp_data._limits",
        "optcmp_data._labels",
        "optcmp_analysis._kernels",
    ]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_outside_the_packages_import_only_public_modules(script: Path) -> None:
    package = script.parent.name if script.parent.parent.name == "src" else None
    found = [
        m
        for m in private_imports(script.read_text(encoding="utf-8"))
        if m.split(".")[0] != package  # a plug-in package's own private modules
    ]
    assert found == [], f"{script.relative_to(ROOT)} imports private modules {found}"


DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])


def python_blocks(markdown: str) -> list[str]:
    """The ```python code blocks of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_examples_import_only_public_modules(page: Path) -> None:
    found = []
    for block in python_blocks(page.read_text(encoding="utf-8")):
        try:
            found += private_imports(block)
        except SyntaxError:  # a fragment, not a program: no import statement to check
            continue
    assert found == [], f"{page.relative_to(ROOT)}: examples import private modules {found}"


def _type_checking_imports(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                assert imp.module is not None
                for alias in imp.names:
                    names[alias.asname or alias.name] = imp.module.rsplit(".", 1)[-1]
    return names


def _top_level_imports(tree: ast.Module, prefix: str = "") -> set[str]:
    """The names a module imports at its top level (not under `if`) from modules whose
    name starts with `prefix`."""
    return {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix)
        for alias in node.names
    }


@pytest.mark.parametrize("package", list(LAZY_ROOTS))
def test_a_lazy_root_lists_each_name_once_and_every_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    tree = ast.parse(LAZY_ROOTS[package].read_text(encoding="utf-8"))
    # What type checkers see, what loads at run time, and what is public agree; a root
    # may import light names of its own modules at once (the importers' registry).
    assert _type_checking_imports(tree) == module._LAZY
    eager = _top_level_imports(tree, f"{package}._")
    assert sorted(module.__all__) == sorted(set(module._LAZY) | eager)
    assert len(module.__all__) == len(set(module.__all__))
    for name, source in module._LAZY.items():
        defining = importlib.import_module(f"{package}.{source}")
        assert getattr(module, name) is getattr(defining, name), name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        _ = module.not_a_name


@pytest.mark.parametrize("package", list(EAGER_ROOTS))
def test_an_eager_root_exports_exactly_what_it_imports(package: str) -> None:
    pytest.importorskip("torch")
    module = importlib.import_module(package)
    tree = ast.parse(EAGER_ROOTS[package].read_text(encoding="utf-8"))
    assert len(module.__all__) == len(set(module.__all__))
    # A name dropped from __all__ leaves the root's imports too (it stays in its module).
    assert set(module.__all__) == _top_level_imports(tree) - {"annotations"}
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_importing_the_roots_loads_no_numpy() -> None:
    code = (
        "import sys, optcmp_analysis, optcmp_data\n"
        "optcmp_analysis.SelectionRule, optcmp_data.ConfigError, optcmp_data.Taxonomy\n"
        "print([m for m in ('numpy', 'xarray', 'scipy', 'pandas') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
