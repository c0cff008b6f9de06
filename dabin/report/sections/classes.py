"""Per-class accuracy on VisDA-2017 and DomainNet: ``per_class.csv`` and, on VisDA-2017, the per-class table.

VisDA-2017's papers report each of its 12 classes' accuracy and their mean; DomainNet's 345 classes
go to the CSV only. Both come from the headline runs' records (``metrics.json``'s ``per_class``),
each class's accuracy averaged over seeds; nothing is shown on other datasets.
"""

from __future__ import annotations

from dabin.report.benchmarks import ClassSummary, class_summaries, identify_benchmark
from dabin.report.csvs import csv_text
from dabin.report.markdown import md_table, method_label, norm_label, number_text
from dabin.report.published_da import PUBLISHED
from dabin.report.sections.base import Part, ReportInputs
from datamodules.naming import domain_key, format_task

__all__ = ["PER_CLASS", "PER_CLASS_COLUMNS", "section"]

PER_CLASS = "per_class.csv"
#: One row per (task, method, norm, class): the class's accuracy and images averaged over ``seeds``.
PER_CLASS_COLUMNS = ("task", "method", "norm", "class", "accuracy", "n", "seeds")
#: The benchmarks whose reports show per-class accuracy.
_SHOWN = ("visda2017", "domainnet")


def section(inputs: ReportInputs) -> Part:
    """The per-class CSV (and VisDA-2017's table); nothing off those benchmarks or without transfer runs."""
    sweep = inputs.headline
    benchmark = None if sweep.office_home else identify_benchmark(sweep.dataset, sweep.domains)
    if benchmark not in _SHOWN or not any(run.transfer for run in sweep.runs):
        return Part()
    summaries = class_summaries(sweep.runs)
    lines = ["## Per-class accuracy (target test set, %)", ""]
    if not summaries:
        return Part(lines + ["No run's record keeps per-class counts (records written before dabin kept them, "
                             "runs read from `results.csv`, or checkpoints picked by `--select`, whose per-class "
                             "accuracy is not recorded).", ""])
    rows = [{"task": format_task(*task), "method": method, "norm": norm, "class": name, "accuracy": value,
             "n": count, "seeds": summary.seeds}
            for (task, method, norm), summary in summaries.items()
            for name, value, count in zip(summary.classes, summary.accuracy, summary.n)]
    if benchmark == "visda2017":
        for task in dict.fromkeys(task for task, _, _ in summaries):
            lines += _visda_table(task, {(m, n): s for (t, m, n), s in summaries.items() if t == task})
    lines += ["Each class's accuracy: its correct predictions over its images in the target's test set, per seed, "
              f"then the mean over seeds (n: the class's images; seeds: how many). CSV: [{PER_CLASS}]({PER_CLASS})", ""]
    return Part(lines, {PER_CLASS: csv_text(PER_CLASS_COLUMNS, rows).encode()})


def _visda_table(task: tuple[str, str], summaries: dict[tuple[str, str], ClassSummary]) -> list[str]:
    published = PUBLISHED["visda2017"]
    classes = list(dict.fromkeys(name for summary in summaries.values() for name in summary.classes))
    # The published columns are VisDA's 12 classes; a run's classes are matched to them by name.
    known = {domain_key(name): label for name, label in zip(published.classes, published.class_labels)}
    header = ["Method", "Norm", *(known.get(domain_key(name), name) for name in classes), "Mean class", "Overall",
              "Seeds"]
    rows = []
    for (method, norm), summary in summaries.items():
        values = dict(zip(summary.classes, summary.accuracy))
        rows.append([method_label(method), norm_label(norm), *(number_text(values.get(name)) for name in classes),
                     f"**{number_text(summary.class_accuracy)}**", number_text(summary.accuracy_overall),
                     str(summary.seeds)])
    order = [domain_key(name) for name in published.classes]
    matches = sorted(domain_key(name) for name in classes) == sorted(order)
    methods = [m for m in dict.fromkeys(m for m, _ in summaries) if m in published.per_class]
    if matches:
        for method in methods:
            value = dict(zip(order, published.per_class[method]))
            rows.append([f"tllib {method_label(method)}", "BN", *(number_text(value[domain_key(n)]) for n in classes),
                         f"**{number_text(published.class_means[method])}**",
                         number_text(published.averages[method]), "—"])
    lines = [f"### {format_task(*task)} per class", "", *md_table(header, rows), ""]
    if matches and methods:
        lines += [f"tllib rows: the Transfer-Learning-Library's runs (backbone: {published.backbone}), as published "
                  f"in {published.source}; Mean class is its printed mean over the classes, Overall its accuracy "
                  "over the images.", ""]
    return lines
