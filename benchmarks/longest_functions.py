"""The longest functions of the four packages: a size measurement, not a timing.

Dependency rule: the standard library only (it reads the sources with `ast`, it imports
none of them; run it directly: `python benchmarks/longest_functions.py [--top N] [ROOT]`).

Data: every `.py` file under optcmp/, data/, analysis/ and cli/ of ROOT (default: this
checkout). A function's length is its lines from the `def` line to its last line
(decorators not counted), docstring and comments included; methods are named
`Class.method`, nested functions `outer.<locals>.inner`. Rows, longest first:
`length  qualified name  file:line`. Used for issue 19's acceptance table (the ten longest
functions before and after the split of the long ones). `--sizes` prints instead each
package's number of files and lines (all lines, blank and comment lines included).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import NamedTuple

PACKAGE_DIRS = ("optcmp", "data", "analysis", "cli")


class Function(NamedTuple):
    length: int
    name: str
    path: str
    line: int


def functions(root: Path) -> list[Function]:
    found: list[Function] = []
    for folder in PACKAGE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            _walk(tree, "", path.relative_to(root).as_posix(), found)
    return found


def _walk(node: ast.AST, prefix: str, path: str, found: list[Function]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            name = prefix + child.name
            end = child.end_lineno if child.end_lineno is not None else child.lineno
            found.append(Function(end - child.lineno + 1, name, path, child.lineno))
            _walk(child, name + ".<locals>.", path, found)
        elif isinstance(child, ast.ClassDef):
            _walk(child, prefix + child.name + ".", path, found)
        else:
            _walk(child, prefix, path, found)


def sizes(root: Path) -> list[tuple[str, int, int]]:
    """(package folder, .py files, lines) for each package of ROOT."""
    rows = []
    for folder in PACKAGE_DIRS:
        paths = sorted((root / folder).rglob("*.py"))
        lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in paths)
        rows.append((folder, len(paths), lines))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path(__file__).parent.parent)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--sizes", action="store_true", help="files and lines per package")
    args = parser.parse_args()
    if args.sizes:
        for folder, n_files, n_lines in sizes(args.root):
            print(f"{folder + '/':10s} {n_files:4d} files {n_lines:6d} lines")
        return
    found = sorted(functions(args.root), key=lambda f: (-f.length, f.path, f.line))
    for f in found[: args.top]:
        print(f"{f.length:5d}  {f.name}  {f.path}:{f.line}")
    over = {n: sum(f.length > n for f in found) for n in (50, 100)}
    print(f"RESULT functions={len(found)} over_50={over[50]} over_100={over[100]}")


if __name__ == "__main__":
    main()
