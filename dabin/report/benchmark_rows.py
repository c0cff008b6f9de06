"""Table 4's pieces on a benchmark with published numbers: tllib's columns, per-target-domain rows, the notes.

Used only when the sweep ran on one (:func:`~dabin.report.benchmarks.identify_benchmark`); on
Office-Home, the embedded data and any other dataset Table 4 is as before.
"""

from __future__ import annotations

import math

from dabin.report.benchmarks import PublishedColumn
from dabin.report.markdown import average_text, method_label
from dabin.report.published_da import PUBLISHED
from dabin.report.tables import TransferTable, average
from datamodules.naming import domain_code

__all__ = ["benchmark_notes", "published_average", "target_rows"]


def published_average(column: PublishedColumn) -> str:
    """The published Avg cell: the printed average, or ``m*`` for the mean over the table's published tasks."""
    if column.average is None:
        return "—"
    return f"{column.average:.1f}" + ("*" if column.partial else "")


def target_rows(table: TransferTable) -> list[list[str]]:
    """``Avg →Cl`` rows: per target domain, the mean over its tasks of the per-task means (dabin's and tllib's).

    No rows for a table of one task. A published cell is the mean over the target's tasks that tllib
    publishes, ``*`` when that is not all of the table's tasks into the target.
    """
    if len(table.tasks) < 2:
        return []
    rows = []
    for target in dict.fromkeys(target for _, target in table.tasks):
        tasks = [task for task in table.tasks if task[1] == target]
        cells = [average_text(average([table.cells[task, c] for task in tasks]), "tasks") for c in table.columns]
        published = []
        for column in table.published:
            values = [column.values[task] for task in tasks if task in column.values]
            mean = math.fsum(values) / len(values) if values else None
            published.append("—" if mean is None else f"{mean:.1f}" + ("*" if len(values) < len(tasks) else ""))
        rows.append([f"Avg →{domain_code(target)}", *cells, *published])
    return rows


def benchmark_notes(table: TransferTable) -> list[str]:
    """The lines under Table 4 that say what the benchmark's extra rows and columns are (none off a benchmark)."""
    if table.benchmark is None:
        return []
    source = PUBLISHED[table.benchmark]
    lines = []
    if table.benchmark == "visda2017":
        lines += ["", f"mean class: the mean over the {len(source.classes)} classes of each class's accuracy on the "
                  "target's test set (VisDA-2017's metric; a class absent from the set is left out), per seed, then "
                  "the mean and interval over seeds; the other rows are over the images. Per class: the table below."]
    if table.benchmark == "domainnet" and len(table.tasks) > 1:
        lines += ["", "Avg →X: the mean over the tasks into target domain X of the per-task means."]
    if table.published:
        text = (f"tllib: the Transfer-Learning-Library's own runs of each method on {source.name} (backbone: "
                f"{source.backbone}; not dabin's backbone or schedule), as published in {source.source}.")
        if any(column.partial for column in table.published):
            text += (" A tllib Avg marked * is its mean over the tasks of this table that it publishes, not its "
                     "printed average.")
        papers = [f"{method_label(c.method)} {source.papers[c.method]:.1f}" for c in table.published
                  if c.method in source.papers]
        if papers:
            text += (" The methods' own papers reported (average, as tllib's \"Origin\" column quotes them): "
                     + ", ".join(papers) + ".")
        lines += ["", text]
    return lines
