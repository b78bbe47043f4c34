"""How fast every `optcmp ... --help` answers, and which heavy modules each one loads.

Dependency rule: the standard library and the CLI's command table (a benchmark, not a unit
test; run it directly: `python benchmarks/help_speed.py [--runs N]`).

Each help (the top level, every command, every subcommand of a group) runs in a fresh
interpreter (`python -m optcmp_cli ... --help`, as a user would), `--runs` times (default
3); the median wall time is printed with the heavy modules (numpy, xarray, pandas, scipy,
matplotlib, torch, ...) that interpreter had imported when the help was printed. The
floor, `python -c pass`, is printed first: no help can answer faster on this machine.

Target (issue 22): every help < 0.5 s on an idle 2-core machine. The last line is
`RESULT max_s=<slowest median> slowest=<its command> floor_s=<interpreter start>`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

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


def help_invocations() -> list[list[str]]:
    """Every help of the command tree: the top level, each command, each subcommand."""
    from typer import _click as click  # typer vendors its own click
    from typer.core import TyperGroup

    from optcmp_cli.app import COMMANDS, load_command

    out: list[list[str]] = [["--help"]]
    for name in COMMANDS:
        out.append([name, "--help"])
        command = load_command(name)
        if isinstance(command, TyperGroup):  # groups may build their commands lazily
            for sub in command.list_commands(click.Context(command)):
                out.append([name, sub, "--help"])
    return out


def _time(argv: list[str], runs: int) -> tuple[float, list[str]]:
    times: list[float] = []
    heavy: list[str] = []
    env = {**os.environ, "COLUMNS": "80"}
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        times.append(time.perf_counter() - start)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr}")
        for line in out.stderr.splitlines():
            if line.startswith("HEAVY"):
                heavy = line.split()[1:]
    return statistics.median(times), heavy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    floor, _ = _time([sys.executable, "-c", "pass"], args.runs)
    print(f"{'python -c pass (floor)':<32} {floor:6.3f} s")
    worst, worst_name = 0.0, ""
    for invocation in help_invocations():
        name = " ".join(invocation)
        secs, heavy = _time([sys.executable, "-c", _CHILD, *invocation], args.runs)
        flag = "" if secs < 0.5 else "  (over 0.5 s)"
        print(f"{name:<32} {secs:6.3f} s  {' '.join(heavy) or '-'}{flag}")
        if secs > worst:
            worst, worst_name = secs, name
    print(f"RESULT max_s={worst:.3f} slowest={worst_name!r} floor_s={floor:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
