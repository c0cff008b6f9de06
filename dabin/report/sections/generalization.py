"""Domain generalization: a table per model-selection rule, a column per held-out domain, the average.

Each cell is one (method, norm, held-out domain): for every seed, the rule chooses a setting and a
checkpoint among that seed's runs (:func:`dabin.report.generalization.select`), and the cell is the
mean ± 95 % interval of the chosen test accuracies over seeds. The average column averages, per
seed, over the held-out domains, then over seeds (DomainBed's averages). Training-domain
validation comes first (the headline); the oracle is labelled and never the headline. Where the
sweep's domains are one of DomainBed's datasets, its published numbers stand below each table.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from dabin.record import Run
from dabin.report.generalization import RULE_TITLES, RULES, Checkpoint, Choice, DGRun, Rule, select
from dabin.report.markdown import md_table, method_label, norm_label
from dabin.report.pivot import group_by
from dabin.report.published_dg import DOMAINBED, DOMAINBED_COLUMNS, DOMAINBED_SETTING, TLLIB_DG, TLLIB_DG_SETTING
from dabin.report.sections.base import Part, ReportInputs
from dabin.report.stats import mean_ci
from datamodules.naming import domain_code, split_domains

__all__ = ["DG_CSV", "section"]

#: Every choice of every rule, one row per (rule, method, norm, test domain, seed).
DG_CSV = "generalization.csv"

_NOTES: dict[Rule, str] = {
    "training_domain": "each run's best checkpoint by mean accuracy on the training domains' held-out 20 %, then "
                       "the best setting; reported: every image of the held-out domain",
    "leave_one_domain_out": "a setting and step scored by the runs that also left out one training domain, on "
                            "its 80 % part, averaged; reported: every image of the held-out domain",
    "oracle": "**uses the test domain's labels**: each run's last checkpoint scored on the test domain's 20 %; "
              "reported: its other 80 % (DomainBed's definition); for comparison only",
}


def _dg_run(run: Run, domains: Sequence[str]) -> DGRun:
    trained = tuple(split_domains(run.source))
    points = tuple(Checkpoint(step=p.step, accuracy={k: r.accuracy for k, r in p.accuracy.items()},
                              counts={k: r.n for k, r in p.accuracy.items()}) for p in run.accuracy_points)
    return DGRun(setting=run.hparams, held_out=frozenset(d for d in domains if d not in trained),
                 train_domains=trained, points=points)


def _choices(runs: Sequence[Run], domains: Sequence[str]) -> dict[tuple[Rule, str, str, str, int], Choice]:
    """(rule, method, norm, test domain, seed) -> what the rule chose."""
    chosen = {}
    for (method, norm, seed), group in group_by(runs, lambda r: (r.method, r.norm, r.seed)).items():
        dg = [_dg_run(run, domains) for run in group]
        for test in domains:
            relevant = [run for run in dg if test in run.held_out]
            for rule in RULES:
                choice = select(relevant, test, rule, part="in" if rule == "oracle" else "all")
                if choice is not None:
                    chosen[rule, method, norm, test, seed] = choice
    return chosen


def _published_rows(dataset: str | None, rule: Rule, methods: Sequence[str], width: int) -> list[list[str]]:
    if dataset is None or dataset not in DOMAINBED:
        return []
    columns = DOMAINBED_COLUMNS[dataset]
    if len(columns) - 1 != width:
        return []
    return [[f"DomainBed {method_label(m)}", "BN", *(f"{v:.1f}" for v in DOMAINBED[dataset][rule][m])]
            for m in methods if m in DOMAINBED[dataset][rule]]


def _tllib_rows(dataset: str | None, rule: Rule, pairs: Sequence[tuple[str, str]], width: int) -> list[list[str]]:
    """tllib's published rows (training-domain validation only) for the sweep's methods and norms' families."""
    if rule != "training_domain" or dataset is None or dataset not in TLLIB_DG:
        return []
    if len(DOMAINBED_COLUMNS[dataset]) - 1 != width:
        return []
    # IBN-a and IBN-b are both IBN-Net: a sweep with either gets tllib's IBN-b row beside it.
    family = {(m, "ibn_b" if n in ("ibn_a", "ibn_b") else n) for m, n in pairs}
    return [[f"tllib {method_label(m)}", norm_label(n), *(f"{v:.1f}" for v in values)]
            for (m, n), values in TLLIB_DG[dataset].items() if (m, n) in family]


def _column_names(dataset: str | None, all_domains: Sequence[str], shown: Sequence[str]) -> list[str]:
    """Held-out domains as DomainBed's tables abbreviate them on its datasets (L100, ...), else their codes."""
    if dataset is not None and dataset in DOMAINBED_COLUMNS and len(all_domains) == len(DOMAINBED_COLUMNS[dataset]) - 1:
        names = dict(zip(all_domains, DOMAINBED_COLUMNS[dataset]))
        return [names[d] for d in shown]
    return [domain_code(d) for d in shown]


def _identify(domains: Sequence[str]) -> str | None:
    from datamodules.catalog import DATASETS, identify

    info = identify(list(domains))
    if info is None or len(info.domains) != len(domains):
        return None
    return next(key for key, known in DATASETS.items() if known is info)


def section(inputs: ReportInputs) -> Part:
    """The DG tables (nothing without DG runs)."""
    sweep = inputs.sweep
    runs = [run for run in sweep.runs if run.kind == "dg" and run.status == "ok"]
    if not [run for run in sweep.runs if run.kind == "dg"]:
        return Part()
    lines = ["## Domain generalization", ""]
    if runs and not any(run.accuracy_points for run in runs):
        return Part(lines + ["The runs were read from `results.csv`, which keeps no checkpoints: the selection rules "
                             "need the run folders.", ""])
    domains = [d for d in sweep.domains if any(run.target == d for run in runs)]
    chosen = _choices(runs, domains)
    seeds = sorted({run.seed for run in runs})
    rows_of = list(dict.fromkeys((run.method, run.norm) for run in runs))
    dataset = _identify(sweep.domains)
    lines += ["Trained on every domain but one, with labels; tested on the held-out one, never seen (DomainBed's "
              "protocol). Accuracy (%), mean ± 95 % interval over seeds; n = seeds. Avg: per seed over the held-out "
              "domains, then over seeds (seeds with every domain).", ""]
    table_csv = io.StringIO()
    writer = csv.writer(table_csv)
    writer.writerow(["rule", "method", "norm", "test_domain", "seed", "setting", "step", "val", "test"])
    for rule in RULES:
        header = ["Method", "Norm", *_column_names(dataset, sweep.domains, domains), "Avg"]
        rows = []
        left_out = []
        for method, norm in rows_of:
            cells = []
            for test in domains:
                values = [chosen[rule, method, norm, test, s].test for s in seeds
                          if (rule, method, norm, test, s) in chosen]
                cells.append(f"{mean_ci(values).format(1)} (n={len(values)})" if values else "—")
            complete = [s for s in seeds if all((rule, method, norm, t, s) in chosen for t in domains)]
            averages = [sum(chosen[rule, method, norm, t, s].test for t in domains) / len(domains) for s in complete]
            cells.append(f"**{mean_ci(averages).format(1)}**" if averages else "—")
            if all(cell == "—" for cell in cells):
                left_out.append(f"{method_label(method)} {norm_label(norm)}")
                continue
            rows.append([method_label(method), norm_label(norm), *cells])
        published = _published_rows(dataset, rule, list(dict.fromkeys(m for m, _ in rows_of)), len(domains))
        tllib = _tllib_rows(dataset, rule, rows_of, len(domains))
        rows += published + tllib
        lines += [f"### Selection: {RULE_TITLES[rule]}", "", _NOTES[rule] + ".", ""]
        lines += [*md_table(header, rows), ""] if rows else []
        if left_out:
            lines += [f"Without the runs this rule needs (a sweep with `leave_one_domain_out: true`): "
                      f"{', '.join(left_out)}.", ""]
        if published:
            lines += [f"DomainBed rows: {DOMAINBED_SETTING}.", ""]
        if tllib:
            lines += [f"tllib rows: {TLLIB_DG_SETTING}.", ""]
    for (rule, method, norm, test, seed), choice in sorted(chosen.items()):
        writer.writerow([rule, method, norm, test, seed, choice.setting, choice.step, round(choice.val, 4),
                         round(choice.test, 4)])
    lines += [f"Every choice (setting, step, its score and its test accuracy): [{DG_CSV}]({DG_CSV}).", ""]
    return Part(lines, {DG_CSV: table_csv.getvalue().encode()})
