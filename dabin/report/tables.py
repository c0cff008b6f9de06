"""The report's two grids: Table 4 (tasks × method/norm) and Table 3 (norm × domains).

Every cell is a mean with a 95% Student-t interval over independent replicates of the runs that
finished (seeds for Table 4; folds for Table 3, each fold's seeds averaged first), plus counts of the runs that did not. Averages follow the paper: the
mean over tasks (domains) of the per-task (per-domain) means, so every task weighs the same
whatever its number of finished seeds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from dabin.methods.names import TRANSFER_METHODS
from dabin.record import Run
from dabin.report.benchmarks import PublishedColumn, identify_benchmark, published_columns
from dabin.report.inputs import Sweep, plain_domain, task_order
from dabin.report.paper import PAPER_TABLE3, PAPER_TABLE4
from dabin.report.pivot import group_by, pivot
from dabin.report.stats import MeanCI, mean_ci
from datamodules.naming import format_task

__all__ = ["Average", "Cell", "MixedTable", "TransferTable", "average", "mixed_table", "paper_numbers",
           "transfer_table"]

#: Column order: the baseline beside the adapted model, BN beside BIN.
_METHOD_ORDER = TRANSFER_METHODS
_NORM_ORDER = ("bn", "bin", "in", "bnin")


@dataclasses.dataclass(frozen=True)
class Cell:
    """Runs of one table cell.

    Attributes:
        values: Replicate (a seed in Table 4; a fold in Table 3, its finished seeds averaged) ->
            accuracy (%).
        stats: Mean and 95% interval of ``values``; None when no run finished.
        failed: Runs that failed.
        incomplete: Runs started but not finished.
        missing: Runs never started.
    """

    values: dict[Hashable, float]
    stats: MeanCI | None
    failed: int = 0
    incomplete: int = 0
    missing: int = 0

    @property
    def not_ok(self) -> dict[str, int]:
        """Counts of the runs that have no result, by status (zeros left out)."""
        counts = {"failed": self.failed, "incomplete": self.incomplete, "missing": self.missing}
        return {status: count for status, count in counts.items() if count}


@dataclasses.dataclass(frozen=True)
class Average:
    """The average of a table row or column over its tasks (domains).

    Attributes:
        stats: Mean over the covered tasks of the per-task means. Its half-width is the Student-t
            interval of the per-replicate averages over tasks, given only when every task has the
            same finished replicates (two or more); otherwise None.
        covered: Tasks with at least one finished run.
        total: Tasks in the table.
    """

    stats: MeanCI | None
    covered: int
    total: int


@dataclasses.dataclass(frozen=True)
class TransferTable:
    """Table 4: target-test accuracy per task (rows) and (method, norm) (columns).

    Attributes:
        tasks: ``(source, target)`` per row, in table order.
        columns: ``(method, norm)`` per column.
        cells: ``(task, column)`` -> cell.
        averages: column -> average over tasks.
        paper: The paper's DANN numbers, norm -> task label (``Ar→Cl``, ``Avg``) -> %; None off Office-Home.
        paper_subset: True when the table has only some of the paper's tasks: ``Avg`` is then the
            mean of the paper's numbers over the table's tasks, not the published average.
        class_cells: Like ``cells``, of the target's mean class accuracy (runs whose record keeps it).
        class_averages: column -> average over tasks of ``class_cells``.
        benchmark: The benchmark with published numbers the sweep ran on
            (:func:`~dabin.report.benchmarks.identify_benchmark`), else None.
        published: Its published numbers for the table's methods and tasks (none off a benchmark).
    """

    tasks: tuple[tuple[str, str], ...]
    columns: tuple[tuple[str, str], ...]
    cells: dict[tuple[tuple[str, str], tuple[str, str]], Cell]
    averages: dict[tuple[str, str], Average]
    paper: dict[str, dict[str, float]] | None
    paper_subset: bool = False
    class_cells: dict[tuple[tuple[str, str], tuple[str, str]], Cell] = dataclasses.field(default_factory=dict)
    class_averages: dict[tuple[str, str], Average] = dataclasses.field(default_factory=dict)
    benchmark: str | None = None
    published: tuple[PublishedColumn, ...] = ()

    @staticmethod
    def label(task: tuple[str, str]) -> str:
        """A task as the table writes it: ``Ar→Cl``."""
        return format_task(*task)


@dataclasses.dataclass(frozen=True)
class MixedTable:
    """Table 3: mixed-domain test accuracy per norm (rows) and domain (columns).

    Attributes:
        norms: One per row.
        domains: One per column.
        cells: ``(norm, domain)`` -> cell (replicates are folds, each the mean of its seeds).
        averages: norm -> average over domains.
        paper: The paper's numbers, norm -> domain (or ``Avg``) -> %; None off Office-Home.
        paper_subset: True when the table has only some of the paper's domains (see TransferTable).
    """

    norms: tuple[str, ...]
    domains: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]
    averages: dict[str, Average]
    paper: dict[str, dict[str, float]] | None
    paper_subset: bool = False


def _ordered(values: Iterable[str], preferred: Sequence[str]) -> list[str]:
    # Known names in their usual order, anything else after them in order of appearance.
    seen = list(dict.fromkeys(values))
    return sorted(seen, key=lambda v: (preferred.index(v) if v in preferred else len(preferred), seen.index(v)))


def _cell(runs: Sequence[Run], values: Mapping[Hashable, float]) -> Cell:
    statuses = [run.status for run in runs]
    return Cell(values=dict(values), stats=mean_ci(list(values.values())) if values else None,
                failed=statuses.count("failed"), incomplete=statuses.count("incomplete"),
                missing=statuses.count("missing"))


def average(cells: Sequence[Cell]) -> Average:
    """Mean over cells of the cell means, with an interval over replicates where one is sound.

    Args:
        cells: The cells of one row or column (one per task or domain).

    Returns:
        The average; see :class:`Average` for when it has an interval.
    """
    present = [cell for cell in cells if cell.stats is not None]
    if not present:
        return Average(None, 0, len(cells))
    mean = math.fsum(cell.stats.mean for cell in present if cell.stats) / len(present)
    half_width = None
    replicates = set(present[0].values)
    # Replicate r's average over tasks is only defined when r finished on every task; with the
    # same replicates everywhere, the mean of those averages equals the mean of the cell means.
    if len(present) == len(cells) and len(replicates) > 1 and all(set(c.values) == replicates for c in present):
        per_replicate = [math.fsum(c.values[r] for c in present) / len(present) for r in replicates]
        half_width = mean_ci(per_replicate).half_width
    return Average(MeanCI(mean, half_width, len(present)), len(present), len(cells))


def paper_numbers(published: Mapping[str, Mapping[str, float]],
                  keys: Mapping[str, str]) -> tuple[dict[str, dict[str, float]], bool]:
    """The paper's numbers for a table's tasks (domains), with an average comparable to the table's.

    Args:
        published: norm -> the paper's name of a task (domain), or ``Avg`` -> %.
        keys: The table's name -> the paper's name, for the tasks (domains) the paper has.

    Returns:
        norm -> the table's name (and ``Avg``) -> %, and whether ``Avg`` covers only a subset: a
        sweep of 2 tasks must be compared with the paper's mean over those 2, not over all 12.
    """
    numbers: dict[str, dict[str, float]] = {}
    subset = False
    for norm, values in published.items():
        mine = {name: values[paper] for name, paper in keys.items() if paper in values}
        subset = len(set(keys.values()) & set(values)) < len(values) - 1
        numbers[norm] = mine
        if not subset:
            mine["Avg"] = values["Avg"]
        elif mine:
            mine["Avg"] = math.fsum(mine.values()) / len(mine)
    return numbers, subset


def transfer_table(sweep: Sweep) -> TransferTable | None:
    """Table 4 from a sweep's transfer runs (None if it has none).

    Args:
        sweep: The checked sweep.

    Returns:
        The table, with the paper's DANN numbers when the dataset is Office-Home.
    """
    runs = [run for run in sweep.runs if run.transfer]
    if not runs:
        return None
    tasks = tuple(task_order(sweep))
    methods = _ordered((run.method for run in runs), _METHOD_ORDER)
    norms = _ordered((run.norm for run in runs), _NORM_ORDER)
    columns = tuple((m, n) for m in methods for n in norms if any(r.method == m and r.norm == n for r in runs))
    by_cell = pivot(runs, lambda r: (r.source, r.target), lambda r: (r.method, r.norm))
    cells = {}
    class_cells = {}
    for task in tasks:
        for column in columns:
            mine = by_cell.get((task, column), [])
            results = {r.seed: r.target_result() for r in mine if r.status == "ok"}
            cells[task, column] = _cell(mine, {seed: r.accuracy for seed, r in results.items() if r is not None})
            class_cells[task, column] = _cell(mine, {seed: r.class_accuracy for seed, r in results.items()
                                                     if r is not None and r.class_accuracy is not None})
    averages = {column: average([cells[task, column] for task in tasks]) for column in columns}
    class_averages = {column: average([class_cells[task, column] for task in tasks]) for column in columns}
    paper, subset = paper_numbers(PAPER_TABLE4, {format_task(*t): format_task(*t) for t in tasks})
    # Office-Home tasks the paper does not have (multi-source ones) get no paper column at all.
    shown = sweep.office_home and any(paper.values())
    benchmark = None if sweep.office_home else identify_benchmark(sweep.dataset, sweep.domains)
    published = published_columns(benchmark, methods, tasks) if benchmark else []
    return TransferTable(tasks=tasks, columns=columns, cells=cells, averages=averages,
                         paper=paper if shown else None, paper_subset=subset and shown, class_cells=class_cells,
                         class_averages=class_averages, benchmark=benchmark, published=tuple(published))


def _domain_value(run: Run, domain: str) -> float | None:
    from datamodules.naming import domain_key

    for name, value in run.accuracy.items():
        if plain_domain(name) is not None and domain_key(name) == domain_key(domain):
            return value
    return None


def _paper_names(domains: Sequence[str]) -> dict[str, str]:
    # The paper spells the domains its way ("Real World"); the sweep may spell them otherwise.
    from datamodules.naming import domain_key

    paper = {domain_key(name): name for name in PAPER_TABLE3["bn"] if name != "Avg"}
    return {d: paper[domain_key(d)] for d in domains if domain_key(d) in paper}


def mixed_table(sweep: Sweep) -> MixedTable | None:
    """Table 3 from a sweep's mixed-domain runs (None if it has none).

    Args:
        sweep: The checked sweep.

    Returns:
        The table, with the paper's numbers when the dataset is Office-Home.
    """
    runs = [run for run in sweep.runs if run.kind == "mixed"]
    if not runs:
        return None
    norms = tuple(_ordered((run.norm for run in runs), _NORM_ORDER))
    cells: dict[tuple[str, str], Cell] = {}
    by_norm = group_by(runs, lambda run: run.norm)
    for norm in norms:
        mine = by_norm[norm]
        for domain in sweep.domains:
            by_fold: dict[Any, list[float]] = {}
            for run in mine:
                value = _domain_value(run, domain) if run.status == "ok" else None
                if value is not None:
                    by_fold.setdefault(run.fold, []).append(value)
            # The replicate is the fold: its seeds share one partition (the same test images and
            # training set), so they are not independent draws; averaging them first makes n the
            # number of folds, not folds × seeds, and keeps the interval from being too narrow.
            cells[norm, domain] = _cell(mine, {fold: math.fsum(v) / len(v) for fold, v in by_fold.items()})
    averages = {norm: average([cells[norm, d] for d in sweep.domains]) for norm in norms}
    paper, subset = paper_numbers(PAPER_TABLE3, _paper_names(sweep.domains))
    return MixedTable(norms=norms, domains=sweep.domains, cells=cells, averages=averages,
                      paper=paper if sweep.office_home else None, paper_subset=subset and sweep.office_home)
