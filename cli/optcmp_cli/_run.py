"""`optcmp run`: run (or continue) a tuning study into a study directory.

Dependency rule: typer, rich, optcmp_data; the torch-based `optcmp` package is imported
only inside the command, so the rest of the CLI works without torch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from optcmp_cli._common import (
    console,
    err_console,
    fail,
    print_json,
    progress_on_stderr,
    reports_errors,
    require_torch,
)
from optcmp_data import ConfigError

if TYPE_CHECKING:
    from optcmp.runner import Executor, StudyRun
    from optcmp.study import StudySpec

__all__ = ["run", "trial_progress"]


class _GroupSummary(Protocol):
    """What the bar reads from optcmp.runner.GroupSummary (not imported: it needs torch)."""

    @property
    def trials(self) -> int: ...

    @property
    def diverged(self) -> int: ...


class _Bar:
    """Adapts a rich progress bar to the runner's progress hooks (drawn on stderr)."""

    def __init__(self, progress: Progress, label: str) -> None:
        self._progress = progress
        self._task = progress.add_task(label, total=None, diverged=0)
        self._diverged = 0

    def start(self, *, total: int, done: int, groups: int) -> None:
        # ETA counts only this run's trials: `done` ones were stored by an earlier run.
        self._progress.update(self._task, total=total - done, completed=0)
        if done:
            self._progress.console.print(
                f"resuming: {done} of {total} trials already stored; {groups} groups to run",
                markup=False,
            )

    def group_done(self, summary: _GroupSummary) -> None:
        self._diverged += summary.diverged
        self._progress.update(self._task, advance=summary.trials, diverged=self._diverged)


@contextmanager
def trial_progress(label: str) -> Iterator[_Bar]:
    """A bar over a study's trials on stderr, labelled `label`, for `run_study(progress=)`;
    it stays after a finished run and leaves nothing when the run fails."""
    with progress_on_stderr(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("diverged {task.fields[diverged]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ) as progress:
        yield _Bar(progress, label)


_StudyArg = Annotated[Path, typer.Argument(help="Study file (TOML); see docs/study-file.md.")]
_OutOpt = Annotated[
    Path,
    typer.Option(
        "--out", help="Study directory for shards; running again into it resumes the study."
    ),
]
_WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Local worker processes, each running groups (default: one per entry of "
        "the study's devices, else 1).",
    ),
]
_SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Address of a Dask distributed scheduler (e.g. tcp://host:8786); its workers "
        "must see the --out directory.",
    ),
]
_GroupSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--group-size",
        help="Trials trained together as one batched group (K) \\[default: the study's, or 16].",
    ),
]
_RunJsonOpt = Annotated[
    bool, typer.Option("--json", help="Print what the run did as JSON (no progress bar).")
]
_MemoryLimitOpt = Annotated[
    float | None,
    typer.Option(
        "--memory-limit",
        metavar="GIB",
        help="Memory the run may use, in GiB, checked before training against the "
        "estimated size of the groups running at once and of the archive \\[default: the "
        "memory available now].",
    ),
]
_GroupTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--group-timeout",
        metavar="SECONDS",
        help="Stop a group that runs longer than this (its worker process is killed, the "
        "other groups go on); 0: no limit \\[default: the study's group_timeout, else none].",
    ),
]


@reports_errors
def run(
    study: _StudyArg,
    out: _OutOpt,
    workers: _WorkersOpt = None,
    scheduler: _SchedulerOpt = None,
    group_size: _GroupSizeOpt = None,
    json_out: _RunJsonOpt = False,
    memory_limit: _MemoryLimitOpt = None,
    group_timeout: _GroupTimeoutOpt = None,
) -> None:
    """Run a study: every (workload, optimizer) trains its quasi-random trials in batched
    groups; each finished group is stored as one shard in the --out directory.

    A killed run continues where it stopped when started again with the same study file
    and --out; a changed study is refused. SIGTERM or Ctrl-C stops a run cleanly: finished
    groups stay stored, running ones are dropped, and the exit code is 128 + the signal.
    A group whose plug-in raises, whose worker process dies or that runs past
    --group-timeout stores nothing; the other groups run, and the run ends with one line
    per failed plug-in and exit code 2.

    Example: optcmp run study.toml --out runs/digits --workers 2
    """
    if workers is not None and scheduler is not None:
        raise ConfigError("--workers and --scheduler exclude each other: pick one executor")
    require_torch("run")
    from optcmp.runner import GroupsFailed, StudyInterrupted, run_study
    from optcmp.study import StudySpec

    spec = StudySpec.from_toml(study)
    go = functools.partial(
        run_study,
        spec,
        out,
        executor=_executor(spec, workers, scheduler),
        group_size=group_size,
        study_file=study,
        memory_limit_gib=memory_limit,
        group_timeout=group_timeout,
    )
    try:
        if json_out:
            print_json({"run": go().to_json()})
            return
        with trial_progress("trials") as bar:
            result = go(progress=bar)
    except StudyInterrupted as stop:
        stored = "" if stop.stored is None else f"; {stop.stored} of {stop.total} trials stored"
        err_console.print(
            f"interrupted by {stop}{stored} in {out}; run the same command again to resume",
            markup=False,
        )
        raise typer.Exit(stop.exit_code) from None
    except GroupsFailed as failed:
        for line in failed.lines[:-1]:
            fail(line)
        raise fail(failed.lines[-1]) from None
    _print_done(result)


def _executor(spec: StudySpec, workers: int | None, scheduler: str | None) -> Executor:
    """The executor of --scheduler or --workers. Each Dask worker owns one GPU
    (`--resources GPU=1`); local workers are placed on the study's `devices`, one per
    device unless --workers says otherwise."""
    from optcmp.runner import DaskExecutor, LocalExecutor

    if scheduler is not None:
        return DaskExecutor(scheduler, resources={"GPU": 1} if spec.device != "cpu" else None)
    return LocalExecutor(workers, devices=spec.devices)


def _print_done(result: StudyRun) -> None:
    """What a finished run did, and the command to look at its study."""
    console.print(
        f"{result.trials_run} trials run ({result.diverged} diverged) in "
        f"{result.seconds:.1f} s on {result.executor}, groups of {result.group_size}; "
        f"{result.stored_before + result.trials_run} of {result.total_trials} trials stored "
        f"in {result.study_dir}",
        markup=False,
    )
    console.print(f"next: optcmp info {result.study_dir}", markup=False)
