"""Output folders that optcmp fills: a report's files are written into a staging folder
inside OUT and moved into place only once the report is complete.

Dependency rule: the standard library and optcmp_data; nothing here prints.

Rules: optcmp overwrites or deletes only files it wrote, which a manifest in OUT lists
(`MANIFEST`; for a report written before manifests existed, the figures its results.json
lists); a file of the same name that optcmp did not write is never replaced (one line,
nothing changed). Nothing is written through a symlink that leads out of OUT. A report
that fails part-way leaves the previous report whole: its Markdown and HTML still find
every figure they show.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import attrs

from optcmp_data import ConfigError, atomic_write_text, os_error

__all__ = ["MANIFEST", "ReportStage"]

#: The list of the files in OUT that optcmp report wrote (JSON: {"files": [...]}).
MANIFEST = ".optcmp-report.json"
#: Names of the files a report may hold besides its figures.
REPORT_FILES = ("report.md", "report.html", "results.json")
FIGURES = "figures"
_STAGING = re.compile(r"^\.optcmp-report-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")
_FIGURE = re.compile(r"^figures/[^/\\]+\.(png|svg|pdf)$")


def _ours(name: object) -> bool:
    """A manifest entry optcmp may have written (never a path that leaves OUT)."""
    if not isinstance(name, str) or ".." in name.split("/"):
        return False
    return name in REPORT_FILES or _FIGURE.match(name) is not None


def _previous_files(out: Path) -> set[str]:
    """The files of OUT that an earlier `optcmp report` wrote."""
    manifest = out / MANIFEST
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
    except FileNotFoundError:
        return _legacy_files(out)
    except (OSError, ValueError, AttributeError):
        raise ConfigError(
            f"{manifest}: unreadable list of the files optcmp wrote; remove it (and the "
            "old report) or choose another --out"
        ) from None
    return {name for name in listed if _ours(name)} if isinstance(listed, list) else set()


def _legacy_files(out: Path) -> set[str]:
    """A report written before manifests: its results.json names its figures."""
    try:
        record = json.loads((out / "results.json").read_text(encoding="utf-8"))["report"]
        figures = record["figures"]
        record["archive"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    if not isinstance(figures, list):
        return set()
    return {*REPORT_FILES, *(f for f in figures if _ours(f))}


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _check_figures_dir(out: Path) -> None:
    figures = out / FIGURES
    if figures.is_symlink() and not _inside(figures, out):
        raise ConfigError(
            f"--out {out}: {figures} is a symbolic link to {figures.resolve()}, outside "
            f"{out}; optcmp writes figures only inside the output folder"
        )
    if figures.exists() and not figures.is_dir():
        raise ConfigError(f"--out {out}: {figures} exists and is not a directory")


def _refuse_foreign(out: Path, names: Iterable[str], ours: set[str]) -> None:
    for name in sorted(names):
        target = out / name
        if name in ours and not (target.is_dir() and not target.is_symlink()):
            continue
        if os.path.lexists(target):
            raise ConfigError(
                f"--out {out}: {target} exists and was not written by optcmp report; "
                "refusing to replace it (move it away or choose another --out)"
            )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_stages(out: Path) -> None:
    """Staging folders of reports whose process is gone (killed part-way)."""
    for entry in out.iterdir():
        m = _STAGING.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink() and not _pid_alive(int(m["pid"])):
            shutil.rmtree(entry, ignore_errors=True)


@attrs.frozen
class ReportStage:
    """One report being written: `dir` (inside OUT) takes every file, `commit` moves them
    into OUT, `abort` removes them."""

    out: Path
    dir: Path

    @classmethod
    def begin(cls, out: Path, *, names: Iterable[str] = REPORT_FILES) -> ReportStage:
        """Check that the report's files `names` may be written into `out` (before any
        analysis runs) and make the staging folder."""
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise os_error(out, err) from None
        _check_figures_dir(out)
        _refuse_foreign(out, names, _previous_files(out))
        _remove_stale_stages(out)
        try:
            stage = Path(
                tempfile.mkdtemp(prefix=f".optcmp-report-{os.getpid()}-", suffix=".tmp", dir=out)
            )
            (stage / FIGURES).mkdir()
        except OSError as err:
            raise os_error(out, err) from None
        return cls(out=out, dir=stage)

    def staged(self) -> list[str]:
        """The staged files, as names relative to OUT."""
        names = [n for n in REPORT_FILES if (self.dir / n).is_file()]
        figures = sorted(p.name for p in (self.dir / FIGURES).iterdir() if p.is_file())
        return [*names, *(f"{FIGURES}/{f}" for f in figures)]

    def commit(self) -> list[Path]:
        """Move the staged files into OUT (figures first, report.md last), then delete the
        previous report's files that this one does not have; returns the final paths."""
        out = self.out
        try:
            new = self.staged()
            previous = _previous_files(out)
            _check_figures_dir(out)
            _refuse_foreign(out, new, previous)
            # The manifest lists old and new files while both may be present, so a crash
            # in between still leaves every file of ours listed.
            self._write_manifest(previous | set(new))
            (out / FIGURES).mkdir(exist_ok=True)
            # Figures first and report.md last: what the Markdown shows is there before it.
            order = sorted(new, key=lambda n: (not n.startswith(f"{FIGURES}/"), n == "report.md"))
            for name in order:
                os.replace(self.dir / name, out / name)
            for name in sorted(previous - set(new)):
                target = out / name
                if not (target.is_dir() and not target.is_symlink()):
                    target.unlink(missing_ok=True)
            self._write_manifest(set(new))
        except OSError as err:
            raise os_error(out, err) from None
        finally:
            self.abort()
        return [out / name for name in new]

    def _write_manifest(self, files: set[str]) -> None:
        text = json.dumps({"writer": "optcmp report", "files": sorted(files)}, indent=1)
        atomic_write_text(self.out / MANIFEST, text + "\n")

    def abort(self) -> None:
        """Remove the staging folder and what is in it (only files this report wrote)."""
        with contextlib.suppress(OSError):
            shutil.rmtree(self.dir)
