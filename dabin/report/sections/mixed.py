"""Table 3 (mixed-domain classification, test accuracy per domain) and its bar chart."""

from __future__ import annotations

import collections
from collections.abc import Sequence

from dabin.record import Run
from dabin.report.csvs import table3_csv
from dabin.report.markdown import PAPER_SUBSET, average_text, cell_text, md_table, norm_label, paper_text
from dabin.report.plots import bar_chart_png
from dabin.report.sections.base import Part, ReportInputs
from dabin.report.tables import MixedTable, mixed_table

__all__ = ["BARS", "TABLE3", "section"]

TABLE3 = "table3.csv"
BARS = "bn_vs_bin_mixed.png"


def section(inputs: ReportInputs) -> Part:
    """Table 3 of the headline runs and a BN-vs-BIN chart per domain (nothing without mixed-domain runs)."""
    table = mixed_table(inputs.headline)
    if table is None:
        return Part()
    files = {TABLE3: table3_csv(table).encode()}
    png = _mixed_bars(table)
    if png is not None:
        files[BARS] = png
    return Part(_mixed_section(table, inputs.sweep.runs, BARS if png is not None else None), files)


def _mixed_section(table: MixedTable, runs: Sequence[Run], bars: str | None) -> list[str]:
    header = ["Norm", *table.domains, "Avg", "Runs"]
    rows = []
    for norm in table.norms:
        statuses = collections.Counter(r.status for r in runs if r.kind == "mixed" and r.norm == norm)
        status = ", ".join(f"{statuses[s]} {s}" for s in ("ok", "failed", "incomplete", "missing") if statuses[s])
        # A mixed run tests every domain at once, so its status belongs to the row, not to a cell.
        rows.append([norm_label(norm), *(cell_text(table.cells[norm, d], show_missing=False) for d in table.domains),
                     average_text(table.averages[norm], "domains"), status])
    for norm in (n for n in ("bn", "bin") if table.paper and n in table.paper):
        paper = table.paper[norm] if table.paper else {}
        rows.append([f"Paper {norm_label(norm)}", *(paper_text(paper.get(d)) for d in table.domains),
                     paper_text(paper.get("Avg")), ""])
    lines = ["## Table 3: mixed-domain classification (test accuracy, %)", "", *md_table(header, rows), "",
             "Cells: mean over folds of each fold's mean over its seeds; the interval is over the folds (n = 5 for "
             "the paper's 5-fold cross-validation), not over the folds × seeds runs: every seed uses the same "
             "partition, so the seeds of one fold share their test images and their errors are correlated, and "
             "15 runs counted as independent would give too narrow an interval. Folds themselves share training "
             "images, so even this interval is approximate (no unbiased estimate of a cross-validation variance "
             "exists; Bengio & Grandvalet, 2004). Avg: the mean over domains of the per-domain means; its "
             "interval is over folds of each fold's mean over domains, given when every domain has the same folds."]
    if table.paper:
        lines += ["", "Paper: Nam & Kim (2018), Table 3 (5-fold cross-validation on Office-Home), as published."
                  + (PAPER_SUBSET.format(what="domains", n=len(table.domains)) if table.paper_subset else "")]
    lines += ["", f"CSV: [{TABLE3}]({TABLE3})"]
    if bars:
        lines += ["", f"![Mixed-domain: BN vs BIN per domain]({bars})"]
    return [*lines, ""]


def _mixed_bars(table: MixedTable) -> bytes | None:
    series = {norm_label(n): [table.cells[n, d].stats for d in table.domains] for n in table.norms}
    if not any(s is not None for stats in series.values() for s in stats):
        return None
    return bar_chart_png(list(table.domains), series, "Mixed-domain: test accuracy per domain")
