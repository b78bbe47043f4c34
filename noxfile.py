"""Developer sessions: lint, typecheck, tests (with torch), tests_notorch (without), fast.

`nox` with no arguments runs the first four; `nox -s fast` runs the tests not marked
`slow`, for quick checks while developing. Environments are reused between local runs; CI
starts from a clean checkout, so it always builds them fresh.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "typecheck", "tests", "tests_notorch"]

PACKAGES = ["optcmp", "data/optcmp_data", "analysis/optcmp_analysis", "cli/optcmp_cli"]
LAYER_FREE_TESTS = ["tests/data", "tests/analysis", "tests/cli"]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the import-linter layer contracts."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over all four packages (torch installed, so optcmp is checked too)."""
    session.install("-e", ".[train,test,dev]")
    session.run("mypy", *PACKAGES, "tests", "benchmarks", "noxfile.py")


@nox.session
def tests(session: nox.Session) -> None:
    """Every test, with torch installed."""
    session.install("-e", ".[train,test,optuna,parquet,mlflow]")
    session.run("pytest", "-n", "2", *session.posargs)


@nox.session
def fast(session: nox.Session) -> None:
    """The tests not marked slow, with torch installed: the quick loop while developing."""
    session.install("-e", ".[train,test,optuna,parquet]")
    session.run("pytest", "-n", "2", "-m", "not slow", *session.posargs)


@nox.session
def tests_notorch(session: nox.Session) -> None:
    """Data, analysis and CLI tests where torch cannot be imported."""
    session.install("-e", ".[test]")
    session.run(
        "python",
        "-c",
        "import importlib.util, sys; "
        "sys.exit('torch is importable in tests_notorch') "
        "if importlib.util.find_spec('torch') else print('torch is absent, as intended')",
    )
    session.run(
        "pytest",
        "-n",
        "2",
        *LAYER_FREE_TESTS,
        *session.posargs,
        env={"OPTCMP_EXPECT_NO_TORCH": "1"},
    )
