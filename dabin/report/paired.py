"""Paired comparisons of Table 4's columns: adaptation vs source-only, BIN vs BN.

Two columns of Table 4 are compared on the runs they share: for every task and seed finished in
both, the difference ``d = acc(treatment) − acc(baseline)`` of target test accuracies (%). The
same task and seed mean the same data split and initialisation, so the pairing removes the
task-to-task spread that dominates the columns' own intervals. Reported: the mean difference with
the 95% Student-t interval over the ``n`` pairs (:func:`~dabin.report.stats.mean_ci`), how many
pairs the treatment won and lost, and each task's mean difference over its seeds.

The interval treats the pairs as independent replicates. Tasks sharing a domain are not quite
independent (a domain that is easy to reach lifts every task into it), so the interval is a
guide to the evidence, not an exact test; with several seeds, the per-task differences show
whether a mean comes from a few tasks.

Comparisons made: every adaptation method against ``source_only`` with the same norm; for every
method, every norm against ``bn`` (``bin`` against ``bn`` first in a BN/BIN sweep), then every
norm other than ``bn`` and ``bin`` against ``bin`` (the normalization lab).
"""

from __future__ import annotations

import dataclasses
import math

from dabin.report.stats import MeanCI, mean_ci
from dabin.report.tables import TransferTable

__all__ = ["PairedComparison", "paired_comparisons"]

Column = tuple[str, str]
Task = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class PairedComparison:
    """One treatment column against one baseline column of Table 4.

    Attributes:
        treatment: ``(method, norm)`` whose gain is measured.
        baseline: ``(method, norm)`` it is measured against.
        differences: ``(task, seed)`` -> treatment − baseline (%), for pairs finished in both.
        per_task: Task -> mean difference over its paired seeds (tasks without a pair left out).
        stats: Mean and 95% interval over all pairs; None without pairs.
        wins: Pairs where the treatment is better.
        losses: Pairs where it is worse.
    """

    treatment: Column
    baseline: Column
    differences: dict[tuple[Task, int], float]
    per_task: dict[Task, float]
    stats: MeanCI | None
    wins: int
    losses: int

    @property
    def verdict(self) -> str:
        """``above 0``, ``below 0``, ``includes 0`` (the interval vs no difference), or why there is none."""
        if self.stats is None:
            return "no pairs"
        if self.stats.half_width is None:
            return "one pair: no interval"
        low, high = self.stats.mean - self.stats.half_width, self.stats.mean + self.stats.half_width
        return "above 0" if low > 0 else "below 0" if high < 0 else "includes 0"


def _compare(table: TransferTable, treatment: Column, baseline: Column) -> PairedComparison:
    differences: dict[tuple[Task, int], float] = {}
    for task in table.tasks:
        mine, theirs = table.cells[task, treatment].values, table.cells[task, baseline].values
        for seed in sorted(set(mine) & set(theirs), key=str):
            differences[task, int(seed)] = mine[seed] - theirs[seed]  # type: ignore[call-overload]
    per_task: dict[Task, float] = {}
    for task in table.tasks:
        values = [d for (t, _), d in differences.items() if t == task]
        if values:
            per_task[task] = math.fsum(values) / len(values)
    values = list(differences.values())
    return PairedComparison(treatment=treatment, baseline=baseline, differences=differences, per_task=per_task,
                            stats=mean_ci(values) if values else None, wins=sum(d > 0 for d in values),
                            losses=sum(d < 0 for d in values))


def paired_comparisons(table: TransferTable) -> list[PairedComparison]:
    """Every method against source-only (same norm), then every norm against BN and against BIN (same method).

    Args:
        table: Table 4.

    Returns:
        The comparisons whose two columns are both in the table, in column order.
    """
    columns = set(table.columns)
    comparisons = [_compare(table, (method, norm), ("source_only", norm)) for method, norm in table.columns
                   if method != "source_only" and ("source_only", norm) in columns]
    methods = list(dict.fromkeys(m for m, _ in table.columns))
    # Every norm against BN, then every other norm against BIN, within each method (same runs otherwise).
    for baseline, skip in (("bn", ("bn",)), ("bin", ("bn", "bin"))):
        comparisons += [_compare(table, (method, norm), (method, baseline)) for method in methods
                        for m, norm in table.columns if m == method and norm not in skip
                        and (method, baseline) in columns]
    return comparisons
