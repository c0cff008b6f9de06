"""The benchmarks with published numbers: which one a sweep ran on, their numbers for its tasks, per-class means.

A sweep is on a benchmark of :data:`~dabin.report.published_da.PUBLISHED` when its manifest's
dataset names it (``visda2017``, ``VisDA-2017``, any spelling) or, as the domain-generalization
section decides "one of DomainBed's datasets", when every domain of the sweep (two or more) is one of
the benchmark's, in any spelling (``amazon`` or ``A``; ``Synthetic`` or VisDA's folder ``train``).
Office-Home is not among them: its numbers are the BIN paper's (:mod:`dabin.report.paper`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence

from dabin.record import Run
from dabin.report.published_da import PUBLISHED, PublishedTable
from datamodules.naming import DOMAIN_SEPARATOR, domain_key

__all__ = ["ClassSummary", "PublishedColumn", "canonical_domain", "class_summaries", "identify_benchmark",
           "published_columns"]


def canonical_domain(table: PublishedTable, name: str) -> str | None:
    """The benchmark's name of a domain written any way (``"A"``, ``"Amazon"`` -> ``"amazon"``), else None."""
    key = domain_key(name)
    return next((domain for domain, others in table.domains.items()
                 if key in {domain_key(spelling) for spelling in (domain, *others)}), None)


def identify_benchmark(dataset: str, domains: Sequence[str]) -> str | None:
    """The key in :data:`~dabin.report.published_da.PUBLISHED` of the benchmark a sweep ran on, else None.

    Args:
        dataset: The manifest's dataset (``custom`` where the spec lists its domains).
        domains: The sweep's domains.
    """
    named = domain_key(dataset)
    for key, table in PUBLISHED.items():
        if named in (key, domain_key(table.name)):
            return key
    if len({domain_key(domain) for domain in domains}) < 2:
        return None
    return next((key for key, table in PUBLISHED.items()
                 if all(canonical_domain(table, domain) is not None for domain in domains)), None)


def _published_task(table: PublishedTable, source: str, target: str) -> int | None:
    # Multi-source tasks are not in the published single-source tables.
    if DOMAIN_SEPARATOR in source:
        return None
    task = (canonical_domain(table, source), canonical_domain(table, target))
    return table.tasks.index(task) if task in table.tasks else None  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class PublishedColumn:
    """One method's published numbers for a table's tasks.

    Attributes:
        method: dabin's name of the method.
        values: Task ``(source, target)`` as the sweep names it -> published accuracy (%).
        average: The printed average when the table has exactly the published tasks; otherwise the
            mean over the table's published tasks (None if it has none).
        partial: True when :attr:`average` is such a mean, not the printed average.
        class_means: VisDA-2017: task -> the published mean class accuracy.
    """

    method: str
    values: dict[tuple[str, str], float]
    average: float | None
    partial: bool
    class_means: dict[tuple[str, str], float]


def published_columns(benchmark: str, methods: Iterable[str],
                      tasks: Sequence[tuple[str, str]]) -> list[PublishedColumn]:
    """The published numbers of the methods a table shows, for its tasks (methods without any left out).

    Args:
        benchmark: A key of :data:`~dabin.report.published_da.PUBLISHED`.
        methods: The table's methods, in its order.
        tasks: The table's tasks, ``(source, target)`` as the sweep names them.
    """
    table = PUBLISHED[benchmark]
    index = {task: _published_task(table, *task) for task in tasks}
    columns = []
    for method in dict.fromkeys(methods):
        if method not in table.rows:
            continue
        values = {task: table.rows[method][i] for task, i in index.items() if i is not None}
        if not values:
            continue
        complete = len(values) == len(tasks) and {i for i in index.values() if i is not None} == set(
            range(len(table.tasks)))
        average = table.averages[method] if complete and method in table.averages else \
            math.fsum(values.values()) / len(values)
        means = {task: table.class_means[method] for task in values if method in table.class_means}
        columns.append(PublishedColumn(method=method, values=values, average=average,
                                       partial=not (complete and method in table.averages), class_means=means))
    return columns


@dataclasses.dataclass(frozen=True)
class ClassSummary:
    """Per-class accuracy of one (task, method, norm), averaged over its seeds.

    Attributes:
        classes: Class names, in label order.
        accuracy: Per class, the mean over seeds of its accuracy (%); None where no seed's test set has the class.
        n: Per class, its images in the target's test set (mean over seeds; the same split gives the same).
        seeds: Seeds averaged.
        class_accuracy: Mean over seeds of the mean class accuracy (%).
        accuracy_overall: Mean over seeds of the accuracy over images (%).
    """

    classes: tuple[str, ...]
    accuracy: tuple[float | None, ...]
    n: tuple[float, ...]
    seeds: int
    class_accuracy: float | None
    accuracy_overall: float


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def class_summaries(runs: Iterable[Run]) -> dict[tuple[tuple[str, str], str, str], ClassSummary]:
    """``((source, target), method, norm)`` -> its per-class summary, from the ok transfer runs' target results.

    Runs whose record keeps no per-class counts (records before dabin kept them, ``results.csv``
    alone, a checkpoint picked by a validator) are left out; classes are matched by name.
    """
    grouped: dict[tuple[tuple[str, str], str, str], list[Run]] = {}
    for run in runs:
        result = run.target_result() if run.transfer and run.status == "ok" else None
        if result is not None and result.per_class is not None:
            grouped.setdefault(((run.source, run.target), run.method, run.norm), []).append(run)
    summaries = {}
    for key, mine in grouped.items():
        results = [result for run in mine if (result := run.target_result()) is not None]
        classes = tuple(dict.fromkeys(name for r in results if r.per_class for name in r.per_class.classes))
        per_seed: dict[Hashable, list[float]] = {name: [] for name in classes}
        counts: dict[Hashable, list[float]] = {name: [] for name in classes}
        for result in results:
            if result.per_class is None:
                continue
            for name, value, count in zip(result.per_class.classes, result.per_class.accuracy, result.per_class.n):
                counts[name].append(float(count))
                if value is not None:
                    per_seed[name].append(value)
        class_means = [r.class_accuracy for r in results if r.class_accuracy is not None]
        summaries[key] = ClassSummary(
            classes=classes, accuracy=tuple(_mean(per_seed[name]) for name in classes),
            n=tuple(_mean(counts[name]) or 0.0 for name in classes), seeds=len(results),
            class_accuracy=_mean(class_means), accuracy_overall=math.fsum(r.accuracy for r in results) / len(results))
    return summaries


def domain_means(values: Mapping[tuple[str, str], float]) -> dict[str, tuple[float, int]]:
    """Target domain -> (mean of the values of its tasks, how many tasks)."""
    by_target: dict[str, list[float]] = {}
    for (_, target), value in values.items():
        by_target.setdefault(target, []).append(value)
    return {target: (math.fsum(v) / len(v), len(v)) for target, v in by_target.items()}
