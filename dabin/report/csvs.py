"""The report's tables as CSV text, long format (one row per cell), numbers unformatted.

Columns ``mean``, ``ci`` (half-width of the 95% interval, empty for a single run) and ``n``
(finished runs; for an ``Avg`` row the number of tasks or domains averaged), plus the counts of
runs without a result and the paper's number where there is one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from dabin.report.stats import MeanCI
from dabin.report.tables import Average, Cell, MixedTable, TransferTable

__all__ = ["GATE_SUMMARY_COLUMNS", "TABLE3_COLUMNS", "TABLE4_BENCHMARK_COLUMNS", "TABLE4_COLUMNS", "csv_text",
           "gate_summary_csv", "table3_csv", "table4_csv"]

TABLE4_COLUMNS = ("task", "source", "target", "method", "norm", "mean", "ci", "n", "failed", "incomplete",
                  "missing", "paper")
#: Table 4's columns on a benchmark with published numbers (:mod:`dabin.report.published_da`): the mean
#: class accuracy's cell, tllib's number for the method and task (over the images) and its mean class accuracy.
TABLE4_BENCHMARK_COLUMNS = ("class_mean", "class_ci", "class_n", "published", "published_class")
TABLE3_COLUMNS = ("norm", "domain", "mean", "ci", "n", "failed", "incomplete", "missing", "paper")
GATE_SUMMARY_COLUMNS = ("method", "level", "stage", "runs", "values", "mean", "min", "max", "near_in", "near_bn")
TARGET_GATE_SUMMARY_COLUMNS = ("method", "level", "stage", "runs", "values", "source_mean", "target_mean",
                               "mean_abs_difference", "target_near_in", "target_near_bn")
SWITCH_SUMMARY_COLUMNS = ("method", "level", "stage", "runs", "layers", "mean_in", "mean_ln", "mean_bn", "var_in",
                          "var_ln", "var_bn")


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """Rows as CSV text with a header (floats rounded to 4 decimals, None as empty)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue()


def _numbers(stats: MeanCI | None, n: int) -> dict[str, Any]:
    return {"mean": stats.mean if stats else None, "ci": stats.half_width if stats else None, "n": n}


def _counts(cell: Cell) -> dict[str, int]:
    return {"failed": cell.failed, "incomplete": cell.incomplete, "missing": cell.missing}


def _average_row(average: Average) -> dict[str, Any]:
    return {**_numbers(average.stats, average.covered), "failed": "", "incomplete": "", "missing": ""}


def table4_csv(table: TransferTable) -> str:
    """Table 4 as CSV (a row per task and (method, norm), then the ``Avg`` rows).

    On a benchmark with published numbers the rows also have :data:`TABLE4_BENCHMARK_COLUMNS`
    (``published`` of an ``Avg`` row: tllib's printed average, or its mean over the table's tasks
    where it publishes only some of them).
    """
    published = {column.method: column for column in table.published}
    rows = []
    for task in table.tasks:
        label = table.label(task)
        for method, norm in table.columns:
            cell = table.cells[task, (method, norm)]
            paper = table.paper[norm].get(label) if table.paper and method == "dann" and norm in table.paper else None
            row = {"task": label, "source": task[0], "target": task[1], "method": method, "norm": norm,
                   **_numbers(cell.stats, len(cell.values)), **_counts(cell), "paper": paper}
            if table.benchmark is not None:
                classes = table.class_cells[task, (method, norm)]
                mine = published.get(method)
                row.update({"class_mean": classes.stats.mean if classes.stats else None,
                            "class_ci": classes.stats.half_width if classes.stats else None,
                            "class_n": len(classes.values), "published": mine.values.get(task) if mine else None,
                            "published_class": mine.class_means.get(task) if mine else None})
            rows.append(row)
    for method, norm in table.columns:
        paper = table.paper[norm].get("Avg") if table.paper and method == "dann" and norm in table.paper else None
        row = {"task": "Avg", "source": "", "target": "", "method": method, "norm": norm,
               **_average_row(table.averages[method, norm]), "paper": paper}
        if table.benchmark is not None:
            classes = table.class_averages[method, norm]
            mine = published.get(method)
            row.update({"class_mean": classes.stats.mean if classes.stats else None,
                        "class_ci": classes.stats.half_width if classes.stats else None, "class_n": classes.covered,
                        "published": mine.average if mine else None, "published_class": None})
        rows.append(row)
    columns = TABLE4_COLUMNS + (TABLE4_BENCHMARK_COLUMNS if table.benchmark is not None else ())
    return csv_text(columns, rows)


def table3_csv(table: MixedTable) -> str:
    """Table 3 as CSV (a row per norm and domain, then each norm's ``Avg`` row)."""
    rows = []
    for norm in table.norms:
        paper = table.paper.get(norm, {}) if table.paper else {}
        for domain in table.domains:
            cell = table.cells[norm, domain]
            rows.append({"norm": norm, "domain": domain, **_numbers(cell.stats, len(cell.values)), **_counts(cell),
                         "paper": paper.get(domain)})
        rows.append({"norm": norm, "domain": "Avg", **_average_row(table.averages[norm]), "paper": paper.get("Avg")})
    return csv_text(TABLE3_COLUMNS, rows)


def gate_summary_csv(rows: Iterable[dict[str, Any]]) -> str:
    """The per-stage gate summary (see :func:`dabin.report.gates.stage_summary`) as CSV."""
    return csv_text(GATE_SUMMARY_COLUMNS, rows)


def target_gate_summary_csv(rows: Iterable[dict[str, Any]]) -> str:
    """Domain-specific BIN's per-stage gates (see :func:`dabin.report.gates.target_gate_summary`) as CSV."""
    return csv_text(TARGET_GATE_SUMMARY_COLUMNS, rows)


def switch_summary_csv(rows: Iterable[dict[str, Any]]) -> str:
    """Switchable Norm's per-stage weights (see :func:`dabin.report.gates.switch_summary`) as CSV."""
    return csv_text(SWITCH_SUMMARY_COLUMNS, rows)
