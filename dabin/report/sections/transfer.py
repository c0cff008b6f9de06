"""Table 4 (domain adaptation, target test accuracy per task), its bar charts and the paired comparisons.

On a benchmark with published numbers (:mod:`dabin.report.benchmark_rows`) Table 4 also has tllib's
column per method, VisDA-2017's mean class accuracy under each task, DomainNet's per-target averages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dabin.report.benchmark_rows import benchmark_notes, published_average, target_rows
from dabin.report.csvs import table4_csv
from dabin.report.markdown import (PAPER_SUBSET, average_text, cell_text, md_table, method_label, norm_label,
                                   number_text, paper_text)
from dabin.report.paired import PairedComparison, paired_comparisons
from dabin.report.plots import bar_chart_png
from dabin.report.sections.base import Part, ReportInputs
from dabin.report.tables import TransferTable, transfer_table

__all__ = ["TABLE4", "section"]

TABLE4 = "table4.csv"
#: Paired comparisons shown side by side in one per-task table.
PER_TASK_COLUMNS = 6


def section(inputs: ReportInputs) -> Part:
    """Table 4 of the headline runs, a BN-vs-BIN chart per method, the paired comparisons (none without transfers)."""
    table = transfer_table(inputs.headline)
    if table is None:
        return Part()
    files = {TABLE4: table4_csv(table).encode()}
    bars = {}
    for method, png in _transfer_bars(table).items():
        bars[method] = f"bn_vs_bin_{method}.png"
        files[bars[method]] = png
    lines = _transfer_section(table, bars)
    paired = paired_comparisons(table)
    if paired:
        lines += _paired_section(paired, table)
    return Part(lines, files)


def _transfer_section(table: TransferTable, bars: Mapping[str, str]) -> list[str]:
    header = ["Task", *(f"{method_label(m)} {norm_label(n)}" for m, n in table.columns)]
    # The paper's Table 4 is DANN's: beside a sweep without DANN it would compare unlike things.
    has_dann = any(method == "dann" for method, _ in table.columns)
    paper_norms = [n for n in ("bn", "bin") if table.paper and n in table.paper and has_dann]
    header += [f"Paper DANN {norm_label(n)}" for n in paper_norms]
    header += [f"tllib {method_label(p.method)}" for p in table.published]
    rows = []
    for task in table.tasks:
        label = table.label(task)
        rows.append([label, *(cell_text(table.cells[task, c]) for c in table.columns),
                     *(paper_text(table.paper[n].get(label)) for n in paper_norms if table.paper),
                     *(number_text(p.values.get(task)) for p in table.published)])
        if table.benchmark == "visda2017":
            rows.append([f"{label} mean class", *(cell_text(table.class_cells[task, c]) for c in table.columns),
                         *(number_text(p.class_means.get(task)) for p in table.published)])
    rows.append(["**Avg**", *(average_text(table.averages[c], "tasks") for c in table.columns),
                 *(paper_text(table.paper[n].get("Avg")) for n in paper_norms if table.paper),
                 *(published_average(p) for p in table.published)])
    if table.benchmark == "domainnet":
        rows += target_rows(table)
    lines = ["## Table 4: domain adaptation (target test accuracy, %)", "", *md_table(header, rows), "",
             "Avg: the mean over tasks of the per-task means (every task weighs the same). Its interval is the "
             "Student-t interval over seeds of each seed's mean over tasks, given when every task finished the "
             "same seeds. * marks an average over only some tasks: not comparable with a full one."]
    if paper_norms:
        lines += ["", "Paper: Nam & Kim (2018), Table 4 (DANN on Office-Home), as published."
                  + (PAPER_SUBSET.format(what="tasks", n=len(table.tasks)) if table.paper_subset else "")]
    lines += benchmark_notes(table)
    lines += ["", f"CSV: [{TABLE4}]({TABLE4})"]
    for method, png in bars.items():
        lines += ["", f"![{method_label(method)}: BN vs BIN per task]({png})"]
    return [*lines, ""]


def _column_text(column: tuple[str, str]) -> str:
    return f"{method_label(column[0])} {norm_label(column[1])}"


def _paired_section(comparisons: Sequence[PairedComparison], table: TransferTable) -> list[str]:
    lines = ["## Paired comparisons (Table 4)", "",
             "Each finished (task, seed) of the first column minus the same (task, seed) of the second: same data "
             "split and initialisation, so the pairing removes the spread between tasks. Mean difference in "
             "accuracy points ± the 95% Student-t interval over the pairs (pairs treated as independent; tasks "
             "sharing a domain are not quite), pairs won and lost, and whether the interval lies above 0.", ""]
    header = ["Comparison", "Pairs", "Mean difference", "Won / lost", "Interval"]
    rows = [[f"{_column_text(c.treatment)} − {_column_text(c.baseline)}", str(len(c.differences)),
             c.stats.format() if c.stats else "—", f"{c.wins} / {c.losses}", c.verdict] for c in comparisons]
    lines += [*md_table(header, rows), "", "Per task (mean difference over the task's paired seeds):", ""]
    # At most PER_TASK_COLUMNS comparisons side by side: a lab sweep has dozens.
    for start in range(0, len(comparisons), PER_TASK_COLUMNS):
        shown = comparisons[start:start + PER_TASK_COLUMNS]
        header = ["Per task", *(f"{_column_text(c.treatment)} − {_column_text(c.baseline)}" for c in shown)]
        rows = [[table.label(task), *(f"{c.per_task[task]:+.2f}" if task in c.per_task else "—" for c in shown)]
                for task in table.tasks]
        lines += [*md_table(header, rows), ""]
    return lines


def _transfer_bars(table: TransferTable) -> dict[str, bytes]:
    labels = [table.label(task) for task in table.tasks]
    charts = {}
    for method in dict.fromkeys(m for m, _ in table.columns):
        norms = [n for m, n in table.columns if m == method]
        series = {norm_label(n): [table.cells[t, (method, n)].stats for t in table.tasks] for n in norms}
        if any(s is not None for stats in series.values() for s in stats):
            charts[method] = bar_chart_png(labels, series, f"{method_label(method)}: target accuracy per task")
    return charts
