"""How fast every `optcmp ... --help` answers, and which heavy modules each one loads.

Dependency rule: the standard library and the CLI's command table (a benchmark, not a unit
test; run it directly: `python benchmarks/help_speed.py [--runs N]`).

Each help (the top level, every command, every subcommand of a group) runs in a fresh
interpreter (`python -m optcmp_cli ... --help`, as a user would), `--runs` times (default
3); the median wall time and the median CPU time of the child (user + system: on a machine
other work loads, close to what the wall time would be on an idle one) are printed with
the heavy modules (numpy, xarray, pandas, scipy, matplotlib, torch, ...) that interpreter
had imported when the help was printed. The floor, `python -c pass`, is printed first: no
help can answer faster on this machine.

With `--compare DIR` (another checkout, e.g. the tree before a change) each help is also
timed there, the two trees taking turns, and the ratio printed: on a loaded machine the
ratio says more than either time. Target (issue 22): every help < 0.5 s on an idle
2-core machine. The last line is
`RESULT max_s=<slowest median wall> slowest=<its help> max_cpu_s=<largest median CPU>
floor_s=<interpreter start>`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "numpy",
    "xarray",
    "pandas",
    "scipy",
    "matplotlib",
    "torch",
    "netCDF4",
    "h5netcdf",
    "rich",
    "optcmp_data",
    "optcmp_analysis",
    "optcmp",
)

# Runs the CLI as `python -m optcmp_cli` does, then lists the heavy modules it imported
# (on stderr, after the help; a help exits through SystemExit).
_CHILD = f"""
import sys
sys.argv = ["optcmp", *sys.argv[1:]]
try:
    from optcmp_cli.app import main
    main()
except SystemExit:
    pass
print("HEAVY", *[m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)
"""


def _pythonpath(tree: Path) -> str:
    return os.pathsep.join(str(tree / d) for d in ("", "data", "analysis", "cli"))


def _run(argv: list[str], tree: Path) -> tuple[float, float, list[str]]:
    """Wall time, CPU time (user + system of the child) and heavy modules of one run."""
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": _pythonpath(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, cwd=tree)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {tree} ({out.returncode}): {out.stderr}")
    heavy = [line.split()[1:] for line in out.stderr.splitlines() if line.startswith("HEAVY")]
    return took, cpu, heavy[-1] if heavy else []


Timing = tuple[float, float, list[str]]  # median wall s, median CPU s, heavy modules


def _time(argv: list[str], trees: list[Path], runs: int) -> list[Timing]:
    """The median times of `argv` in each tree, the trees taking turns run by run (a load
    that changes during the benchmark then weighs on all of them alike)."""
    walls: list[list[float]] = [[] for _ in trees]
    cpus: list[list[float]] = [[] for _ in trees]
    heavy: list[list[str]] = [[] for _ in trees]
    for _ in range(runs):
        for i, tree in enumerate(trees):
            took, cpu, heavy[i] = _run(argv, tree)
            walls[i].append(took)
            cpus[i].append(cpu)
    return [
        (statistics.median(w), statistics.median(c), h)
        for w, c, h in zip(walls, cpus, heavy, strict=True)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--compare",
        type=Path,
        help="Another checkout of optcmp (e.g. `git archive REV | tar -x -C DIR`), timed "
        "side by side with this one (same helps, runs interleaved).",
    )
    args = parser.parse_args()
    from optcmp_cli.app import help_invocations  # the command tree's every help

    trees = [ROOT] + ([args.compare.resolve()] if args.compare else [])
    floor, floor_cpu, _ = _time([sys.executable, "-c", "pass"], trees[:1], args.runs)[0]
    print(f"{'python -c pass (floor)':<36} wall {floor:5.3f} s  cpu {floor_cpu:5.3f} s")
    head = f"{'':<36} {'wall':>7} {'cpu':>7}"
    if args.compare:
        head += f" | {'wall':>7} {'cpu':>7}  wall ratio  (this | compare: heavy modules)"
    print(head)
    worst, worst_cpu, worst_name = 0.0, 0.0, ""
    for invocation in help_invocations():
        name = " ".join(invocation)
        (secs, cpu, heavy), *other = _time(
            [sys.executable, "-c", _CHILD, *invocation], trees, args.runs
        )
        line = f"{name:<36} {secs:5.3f} s {cpu:5.3f} s"
        if other:
            ((base, base_cpu, base_heavy),) = other
            line += (
                f" | {base:5.3f} s {base_cpu:5.3f} s  {secs / base:5.2f}  "
                f"({' '.join(heavy) or '-'} | {' '.join(base_heavy) or '-'})"
            )
        else:
            line += f"  {' '.join(heavy) or '-'}"
        print(line + ("" if secs < 0.5 else "  (wall over 0.5 s)"))
        if secs > worst:
            worst, worst_name = secs, name
        worst_cpu = max(worst_cpu, cpu)
    print(
        f"RESULT max_s={worst:.3f} slowest={worst_name!r} max_cpu_s={worst_cpu:.3f} "
        f"floor_s={floor:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
