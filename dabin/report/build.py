"""Assemble a sweep's report in memory, then write it: nothing is written unless all of it was made.

A report is ``report.md`` plus the CSV tables and PNG plots it links to, all in the report's
folder. Every input is read and checked and every file rendered before the first write, so a bad
input leaves an earlier report untouched; ``report.md`` is written last, so it never links to a
file that is not there yet.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dabin.errors import DabinError
from dabin.io import atomic_open
from dabin.report.csvs import gate_summary_csv, table3_csv, table4_csv
from dabin.report.gates import gate_histogram_png, pool_gates, stage_summary
from dabin.report.inputs import Sweep, load_sweep
from dabin.report.paired import paired_comparisons
from dabin.report.plots import bar_chart_png
from dabin.report.render import Figures, method_label, norm_label, render_report
from dabin.report.optimum import optimum_csv, setting_optima
from dabin.report.selection import (candidates_csv, correlation_csv, headline_runs, load_candidates, score_plot_png,
                                    selection_csv, selection_report)
from dabin.report.tables import MixedTable, TransferTable, mixed_table, transfer_table
from dabin.record import REPORT

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


def _transfer_bars(table: TransferTable) -> dict[str, bytes]:
    labels = [table.label(task) for task in table.tasks]
    charts = {}
    for method in dict.fromkeys(m for m, _ in table.columns):
        norms = [n for m, n in table.columns if m == method]
        series = {norm_label(n): [table.cells[t, (method, n)].stats for t in table.tasks] for n in norms}
        if any(s is not None for stats in series.values() for s in stats):
            charts[method] = bar_chart_png(labels, series, f"{method_label(method)}: target accuracy per task")
    return charts


def _mixed_bars(table: MixedTable) -> bytes | None:
    series = {norm_label(n): [table.cells[n, d].stats for d in table.domains] for n in table.norms}
    if not any(s is not None for stats in series.values() for s in stats):
        return None
    return bar_chart_png(list(table.domains), series, "Mixed-domain: test accuracy per domain")


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
    optima = setting_optima(sweep.runs, candidates) if selection.hyper else []
    transfer, mixed = transfer_table(headline), mixed_table(headline)
    pools = pool_gates(headline)
    gates = [(pool, stage_summary(pool) if pool.rows else []) for pool in pools]

    files: dict[str, bytes] = {}
    bars: dict[str, str] = {}
    if transfer:
        files["table4.csv"] = table4_csv(transfer).encode()
        for method, png in _transfer_bars(transfer).items():
            bars[method] = f"bn_vs_bin_{method}.png"
            files[bars[method]] = png
    if mixed:
        files["table3.csv"] = table3_csv(mixed).encode()
        png = _mixed_bars(mixed)
        if png is not None:
            bars["mixed"] = "bn_vs_bin_mixed.png"
            files[bars["mixed"]] = png
    histograms: dict[str, str] = {}
    for pool, _ in gates:
        if pool.rows:
            histograms[pool.method] = f"gates_{pool.method}.png"
            files[histograms[pool.method]] = gate_histogram_png(pool)
    summary = [row for _, rows in gates for row in rows]
    if summary:
        files["gate_summary.csv"] = gate_summary_csv(summary).encode()
    if selection.tables:
        files["selection.csv"] = selection_csv(selection.tables).encode()
        files["validator_correlations.csv"] = correlation_csv(selection.correlations).encode()
        files["candidates.csv"] = candidates_csv(candidates).encode()
        files["validator_scores.png"] = score_plot_png(candidates)
    if optima:
        files["setting_optima.csv"] = optimum_csv(optima).encode()
    figures = Figures(table4="table4.csv" if transfer else None, table3="table3.csv" if mixed else None,
                      gate_summary="gate_summary.csv" if summary else None, bars=bars, gates=histograms,
                      selection="selection.csv" if selection.tables else None,
                      correlations="validator_correlations.csv" if selection.tables else None,
                      candidates="candidates.csv" if selection.tables else None,
                      scores="validator_scores.png" if selection.tables else None,
                      optima="setting_optima.csv" if optima else None)
    paired = paired_comparisons(transfer) if transfer else []
    any_transfer = any(run.transfer for run in sweep.runs)
    files[path.name] = render_report(sweep, transfer, mixed, gates, figures, paired,
                                     selection if any_transfer else None, optima).encode()
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
