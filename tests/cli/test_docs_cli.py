"""docs/cli.md is generated from the command tree; this test fails when it drifts.

Regenerate with `python docs/examples/cli_reference.py > docs/cli.md`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_matches_the_command_tree() -> None:
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "docs" / "examples" / "cli_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        module.main()
    stored = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert out.getvalue() == stored, (
        "docs/cli.md is out of date: python docs/examples/cli_reference.py > docs/cli.md"
    )
