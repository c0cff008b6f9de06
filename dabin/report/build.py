"""Assemble a sweep's report in memory, then write it: nothing is written unless all of it was made.

A report is ``report.md`` plus the CSV tables and PNG plots it links to, all in the report's
folder: each section (:data:`dabin.report.sections.SECTIONS`) renders its lines and its files from
the sweep's run records. Every input is read and checked and every file rendered before the first
write, so a bad input leaves an earlier report untouched; ``report.md`` is written last, so it never
links to a file that is not there yet.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dabin.errors import DabinError
from dabin.io import atomic_open
from dabin.record import REPORT
from dabin.report.inputs import Sweep, load_sweep
from dabin.report.sections import SECTIONS, ReportInputs
from dabin.report.selection import headline_runs, load_candidates, selection_report

__all__ = ["REPORT", "Report", "build_report", "write_report"]


@dataclasses.dataclass(frozen=True)
class Report:
    """A rendered report, not yet written.

    Attributes:
        path: Where ``report.md`` goes.
        files: File name (in ``path``'s folder) -> contents, ``report.md``'s name last.
        sweep: The sweep it reports on.
    """

    path: Path
    files: dict[str, bytes]
    sweep: Sweep


def build_report(folder: str | Path, out: str | Path | None = None, select: str | None = None) -> Report:
    """Read a sweep folder and render its report (tables, plots, Markdown) in memory.

    Args:
        folder: The sweep's output folder.
        out: Where ``report.md`` goes (default ``folder/report.md``); the other files go beside it.
        select: A validator whose pick over evaluation points (and hyper-parameter settings) the
            headline tables show (None: the last checkpoint; see
            :func:`dabin.report.selection.headline_runs`).

    Returns:
        The report, ready for :func:`write_report`.

    Raises:
        DabinError: Missing or inconsistent inputs (see :func:`dabin.report.inputs.load_sweep`),
            a damaged gate table, or an ``out`` that is a folder.
    """
    sweep = load_sweep(folder)
    path = Path(out) if out is not None else sweep.folder / REPORT
    if path.is_dir():
        raise DabinError(f"--out {path} is a folder; give the report's file name, e.g. {path / REPORT}")
    candidates = load_candidates(sweep)
    # The headline tables show one run per task (or fold) and seed: the one the rule chose.
    headline = dataclasses.replace(sweep, runs=tuple(headline_runs(sweep, candidates, select)))
    selection = selection_report(sweep, candidates, select)
    inputs = ReportInputs(sweep=sweep, headline=headline, candidates=candidates,
                          selection=selection if any(run.transfer for run in sweep.runs) else None)
    lines: list[str] = []
    files: dict[str, bytes] = {}
    for section in SECTIONS:
        part = section(inputs)
        lines += part.lines
        files.update(part.files)
    files[path.name] = ("\n".join(lines).rstrip() + "\n").encode()
    return Report(path=path, files=files, sweep=sweep)


def write_report(report: Report) -> list[Path]:
    """Write a built report's files atomically (``report.md`` last); returns the written paths."""
    written = []
    for name, content in report.files.items():
        target = report.path.parent / name
        with atomic_open(target, "wb") as handle:
            handle.write(content)
        written.append(target)
    return written
