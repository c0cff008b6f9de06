"""``report.md``: the tables, plots and run status of a sweep as Markdown."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dabin.report.gates import GatePool
from dabin.report.inputs import Run, Sweep
from dabin.report.paired import PairedComparison
from dabin.report.optimum import COLLAPSE_SHARE, Optimum
from dabin.report.selection import LAST, ORACLE, Selection, SelectionReport
from dabin.report.tables import Average, Cell, MixedTable, TransferTable

__all__ = ["Figures", "method_label", "norm_label", "render_report"]

_METHODS = {"dann": "DANN", "source_only": "Source only", "mixed": "Mixed", "adabn": "AdaBN", "cdan": "CDAN",
            "cdan_e": "CDAN+E", "mcc": "MCC", "mdd": "MDD", "dan": "DAN", "bnm": "BNM"}
#: Runs listed by name per status before the list is cut to a count.
_LIST_AT_MOST = 20
_PAPER_SUBSET = (" The sweep has only some of the paper's {what}: the paper's Avg here is its mean over this "
                 "table's {n} {what}, not the published average.")


def method_label(method: str) -> str:
    """``dann`` -> ``DANN``, ``source_only`` -> ``Source only``."""
    return _METHODS.get(method, method)


def norm_label(norm: str) -> str:
    """``bin`` -> ``BIN``."""
    return norm.upper()


@dataclasses.dataclass(frozen=True)
class Figures:
    """File names (relative to report.md) of what the report links to; absent ones are left out.

    Attributes:
        table4: Table 4 CSV.
        table3: Table 3 CSV.
        gate_summary: Gate summary CSV.
        bars: Method -> bar chart PNG (BN vs BIN per task; ``mixed``: per domain).
        gates: Method -> gate histogram PNG.
        selection: Selection CSV (rule × scope per method and norm).
        correlations: Validator correlation CSV.
        candidates: Every evaluation point's scores, largest class share and oracle (CSV).
        scores: Score-vs-accuracy plot PNG.
        optima: Per task, the oracle's best hyper-parameter setting and where it lies (CSV).
    """

    table4: str | None = None
    table3: str | None = None
    gate_summary: str | None = None
    bars: Mapping[str, str] = dataclasses.field(default_factory=dict)
    gates: Mapping[str, str] = dataclasses.field(default_factory=dict)
    selection: str | None = None
    correlations: str | None = None
    candidates: str | None = None
    scores: str | None = None
    optima: str | None = None


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {status}" for status, count in counts.items())


def _cell_text(cell: Cell, show_missing: bool = True) -> str:
    notes = _counts_text(cell.not_ok) if show_missing else ""
    if cell.stats is None:
        return f"— ({notes})" if notes else "—"
    return f"{cell.stats.format()} (n={len(cell.values)}{'; ' + notes if notes else ''})"


def _average_text(average: Average, what: str) -> str:
    if average.stats is None:
        return "—"
    text = f"**{average.stats.format()}**"
    return text if average.covered == average.total else f"{text} ({average.covered}/{average.total} {what})*"


def _paper(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _header(sweep: Sweep, headline: str = "") -> list[str]:
    statuses = collections.Counter(run.status for run in sweep.runs)
    not_ok = {s: statuses[s] for s in ("failed", "incomplete", "missing") if statuses[s]}
    runs = f"{len(sweep.runs)} runs: {statuses['ok']} finished"
    runs += f", {_counts_text(not_ok)} (see [Runs without results](#runs-without-results))" if not_ok else ""
    return [
        f"# Sweep report: {sweep.name}", "",
        f"- Folder: `{sweep.folder}`; dataset: {sweep.dataset} ({', '.join(sweep.domains)}); read from "
        + ("the run records (`results.csv` is their export)" if sweep.from_records else "`results.csv`"),
        f"- {runs}",
        f"- Model selection: {_model_selection(sweep.runs)}",
        *([f"- **Headline tables**: {headline}; see [Choosing without target labels](#choosing-without-target-labels)"]
          if headline else []),
        f"- Batch per optimizer step (per-device batch × devices × accumulation; source+target for DANN): "
        f"{_recorded(sweep.runs, lambda run: run.batch)}",
        f"- BIN gate learning rate (the paper's ×10; `group`: of the gate's own layer group, `base`: of the "
        f"base rate): {_recorded([r for r in sweep.runs if r.norm == 'bin'], lambda run: run.gate_lr)}",
        f"- Normalization statistics across domains (`joint`: one batch of source and target; `separate`: a pass "
        f"each; `domain_specific`: per-domain running statistics): "
        f"{_recorded([r for r in sweep.runs if r.transfer], lambda run: run.domain_stats)}",
        f"- Source validation accuracy (labelled source validation split, last validation of training; how good "
        f"the source classifier became, no target label involved), mean over finished runs: {_source_val(sweep.runs)}",
        "- Cells: mean ± half-width of the 95% Student-t interval, t(0.975, n−1) · s / √n, over n independent "
        "replicates: the seeds in Table 4; the folds in Table 3, each fold's seeds averaged first (all seeds "
        "share one 5-fold partition, so runs of one fold share their test images and are not independent). "
        "A single replicate has no interval. — marks a cell without a finished run.", "",
    ]


def _recorded(runs: Sequence[Run], value: Callable[[Run], str]) -> str:
    """What the finished runs recorded, per method: one value each, or every value with its count."""
    finished = [run for run in runs if run.status == "ok"]
    parts = []
    for method in dict.fromkeys(run.method for run in finished):
        values = collections.Counter(value(run) or "not recorded" for run in finished if run.method == method)
        listed = ", ".join(f"{text} ({count} runs)" if len(values) > 1 else text for text, count in values.most_common())
        parts.append(f"{method_label(method)}: {listed}" + (" — **differs between runs**" if len(values) > 1 else ""))
    return "; ".join(parts) or "no finished run"


def _source_val(runs: Sequence[Run]) -> str:
    values: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for run in runs:
        if run.status == "ok" and run.transfer and run.source_val is not None:
            values[run.method, run.norm].append(run.source_val)
    return "; ".join(f"{method_label(m)} {norm_label(n)} {sum(v) / len(v):.1f} % ({len(v)} runs)"
                     for (m, n), v in values.items()) or "not recorded"


def _model_selection(runs: Sequence[Run]) -> str:
    finished = [run for run in runs if run.status == "ok"]
    rules = collections.Counter(run.model_selection for run in finished if run.model_selection)
    unrecorded = len(finished) - sum(rules.values())
    if not rules:
        return "not recorded (no finished run has a `model_selection` entry)"
    if len(rules) == 1:
        rule, count = next(iter(rules.items()))
        text = f"{rule} (recorded by {count} of {len(finished)} finished runs)"
    else:
        listed = "; ".join(f"{rule} ({count} runs)" for rule, count in rules.most_common())
        text = f"**differs between runs**: {listed}; numbers selected differently are not comparable"
    return text + (f"; {unrecorded} finished runs did not record it" if unrecorded and len(rules) == 1 else "")


def _transfer_section(table: TransferTable, figures: Figures) -> list[str]:
    header = ["Task", *(f"{method_label(m)} {norm_label(n)}" for m, n in table.columns)]
    # The paper's Table 4 is DANN's: beside a sweep without DANN it would compare unlike things.
    has_dann = any(method == "dann" for method, _ in table.columns)
    paper_norms = [n for n in ("bn", "bin") if table.paper and n in table.paper and has_dann]
    header += [f"Paper DANN {norm_label(n)}" for n in paper_norms]
    rows = []
    for task in table.tasks:
        label = table.label(task)
        rows.append([label, *(_cell_text(table.cells[task, c]) for c in table.columns),
                     *(_paper(table.paper[n].get(label)) for n in paper_norms if table.paper)])
    rows.append(["**Avg**", *(_average_text(table.averages[c], "tasks") for c in table.columns),
                 *(_paper(table.paper[n].get("Avg")) for n in paper_norms if table.paper)])
    lines = ["## Table 4: domain adaptation (target test accuracy, %)", "", *_table(header, rows), "",
             "Avg: the mean over tasks of the per-task means (every task weighs the same). Its interval is the "
             "Student-t interval over seeds of each seed's mean over tasks, given when every task finished the "
             "same seeds. * marks an average over only some tasks: not comparable with a full one."]
    if paper_norms:
        lines += ["", "Paper: Nam & Kim (2018), Table 4 (DANN on Office-Home), as published."
                  + (_PAPER_SUBSET.format(what="tasks", n=len(table.tasks)) if table.paper_subset else "")]
    if figures.table4:
        lines += ["", f"CSV: [{figures.table4}]({figures.table4})"]
    for method, png in figures.bars.items():
        if method != "mixed":
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
    lines += [*_table(header, rows), "", "Per task (mean difference over the task's paired seeds):", ""]
    header = ["Per task", *(f"{_column_text(c.treatment)} − {_column_text(c.baseline)}" for c in comparisons)]
    rows = [[table.label(task), *(f"{c.per_task[task]:+.2f}" if task in c.per_task else "—" for c in comparisons)]
            for task in table.tasks]
    return [*lines, *_table(header, rows), ""]


def _mixed_section(table: MixedTable, runs: Sequence[Run], figures: Figures) -> list[str]:
    header = ["Norm", *table.domains, "Avg", "Runs"]
    rows = []
    for norm in table.norms:
        statuses = collections.Counter(r.status for r in runs if not r.transfer and r.norm == norm)
        status = ", ".join(f"{statuses[s]} {s}" for s in ("ok", "failed", "incomplete", "missing") if statuses[s])
        # A mixed run tests every domain at once, so its status belongs to the row, not to a cell.
        rows.append([norm_label(norm), *(_cell_text(table.cells[norm, d], show_missing=False) for d in table.domains),
                     _average_text(table.averages[norm], "domains"), status])
    for norm in (n for n in ("bn", "bin") if table.paper and n in table.paper):
        paper = table.paper[norm] if table.paper else {}
        rows.append([f"Paper {norm_label(norm)}", *(_paper(paper.get(d)) for d in table.domains),
                     _paper(paper.get("Avg")), ""])
    lines = ["## Table 3: mixed-domain classification (test accuracy, %)", "", *_table(header, rows), "",
             "Cells: mean over folds of each fold's mean over its seeds; the interval is over the folds (n = 5 for "
             "the paper's 5-fold cross-validation), not over the folds × seeds runs: every seed uses the same "
             "partition, so the seeds of one fold share their test images and their errors are correlated, and "
             "15 runs counted as independent would give too narrow an interval. Folds themselves share training "
             "images, so even this interval is approximate (no unbiased estimate of a cross-validation variance "
             "exists; Bengio & Grandvalet, 2004). Avg: the mean over domains of the per-domain means; its "
             "interval is over folds of each fold's mean over domains, given when every domain has the same folds."]
    if table.paper:
        lines += ["", "Paper: Nam & Kim (2018), Table 3 (5-fold cross-validation on Office-Home), as published."
                  + (_PAPER_SUBSET.format(what="domains", n=len(table.domains)) if table.paper_subset else "")]
    if figures.table3:
        lines += ["", f"CSV: [{figures.table3}]({figures.table3})"]
    if "mixed" in figures.bars:
        lines += ["", f"![Mixed-domain: BN vs BIN per domain]({figures.bars['mixed']})"]
    return [*lines, ""]


def _gate_section(pools: Sequence[tuple[GatePool, list[dict[str, Any]]]], figures: Figures) -> list[str]:
    lines = ["## BIN gates (Figure 2)", "",
             "Gate ρ per channel: 0 = instance normalization, 1 = batch normalization. The gate tables of all "
             "finished BIN runs of a method are pooled; levels as in the paper (lower: stem and layer1, middle: "
             "layer2–3, upper: layer4).", ""]
    header = ["Method", "Level", "Stage", "Runs", "Values", "Mean ρ", "Min", "Max", "ρ < 0.1", "ρ > 0.9"]
    rows = [[method_label(s["method"]), s["level"], s["stage"], str(s["runs"]), str(s["values"]), f"{s['mean']:.3f}",
             f"{s['min']:.3f}", f"{s['max']:.3f}", f"{s['near_in']:.0%}", f"{s['near_bn']:.0%}"]
            for _, summary in pools for s in summary]
    if rows:
        lines += _table(header, rows)
    for pool, _ in pools:
        if pool.without:
            lines += ["", f"{pool.without} finished BIN run(s) of {method_label(pool.method)} have no gates.csv "
                          "(not pooled)."]
        if pool.method in figures.gates:
            lines += ["", f"![{method_label(pool.method)}: BIN gates per level]({figures.gates[pool.method]})"]
    if figures.gate_summary:
        lines += ["", f"CSV: [{figures.gate_summary}]({figures.gate_summary})"]
    return [*lines, ""]


def _status_section(sweep: Sweep) -> list[str]:
    by_status = {s: [r for r in sweep.runs if r.status == s] for s in ("failed", "incomplete", "missing")}
    lines = ["## Runs without results", ""]
    if not any(by_status.values()):
        return [*lines, f"None: all {len(sweep.runs)} runs finished.", ""]
    rerun = f"`dabin sweep {sweep.spec} --out {sweep.folder}`" if sweep.spec else "the sweep"
    lines += [f"{_counts_text({s: len(r) for s, r in by_status.items() if r})} of {len(sweep.runs)} runs. "
              f"Rerunning {rerun} redoes them and keeps the finished ones.", ""]
    if by_status["failed"]:
        lines += [f"### Failed ({len(by_status['failed'])})", ""]
        lines += _table(["Method", "Norm", "Task / fold", "Seed", "Reason", "Run"],
                        [[method_label(r.method), norm_label(r.norm), r.place, str(r.seed),
                          _escape(r.reason) or "(no reason recorded)", f"`{r.key}`"] for r in by_status["failed"]])
        lines.append("")
    for status, what in (("incomplete", "started, not finished"), ("missing", "never started")):
        runs = by_status[status]
        if runs:
            lines += [f"### {status.capitalize()} ({len(runs)}; {what})", ""]
            lines += [f"- {method_label(r.method)} {norm_label(r.norm)} {r.place} seed {r.seed}"
                      for r in runs[:_LIST_AT_MOST]]
            lines += [f"- … and {len(runs) - _LIST_AT_MOST} more"] if len(runs) > _LIST_AT_MOST else []
            lines.append("")
    return lines


def _number(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


_SCOPE_LABELS = {"checkpoints": "over checkpoints (within a run)", "settings": "over settings (last checkpoint)",
                 "both": "over settings and checkpoints"}


def _cell(cell: Selection) -> str:
    share = "" if cell.max_class_share is None else f"; share {cell.max_class_share:.0f} %"
    return f"{_number(cell.mean)} (n={cell.n}{share})"


def _selection_section(selection: SelectionReport, figures: Figures) -> list[str]:
    lines = ["## Choosing without target labels", ""]
    if not selection.tables:
        return lines + [f"No finished transfer run has evaluation points ({selection.without_points} without): "
                        "train with `--model.evaluation_points K` (5 by default) to score the unsupervised "
                        "validators during training.", ""]
    lines += [
        f"Each of {selection.with_points} finished transfer runs scored every validator at its evaluation points "
        "(labelled source validation split and unlabelled target train split only) and, kept apart, the target "
        "test accuracy there (the *oracle*). A cell is the mean target test accuracy (%) of what a rule picks, "
        "over n picks: within each run (over checkpoints)"
        + (", among the hyper-parameter settings of each task and seed (over settings, last checkpoint), or among "
           "all their points (over both)" if selection.hyper else "")
        + ". *Last checkpoint* picks nothing" + (" (every setting averaged)" if selection.hyper else "")
        + ". The **oracle** picks by target test "
        "accuracy: it uses target labels, is an upper bound no one can reach without them, and is never a headline. "
        "*share*: the mean, over the picks, of the largest share of the target predictions in one class (no labels "
        "needed; near 100 % the picked model is collapsing). `mixval` ranks the candidates of each pool by "
        "`mixval_intra` and by `mixval_inter` and averages the two ranks, as its paper does."
        + (f" {selection.without_points} finished transfer runs have no evaluation points and are not included."
           if selection.without_points else ""), ""]
    for table in selection.tables:
        lines += [f"### {method_label(table.method)} {norm_label(table.norm)} ({table.runs} runs)", ""]
        header = ["Rule", "Target labels", *(_SCOPE_LABELS[scope] for scope in table.scopes)]
        rows = []
        for rule in table.rules:
            name = {LAST: "last checkpoint (no selection)", ORACLE: "**oracle** (bound)"}.get(rule, f"`{rule}`")
            rows.append([name, "**yes**" if rule == ORACLE else "no",
                         *(_cell(table.cells[rule, scope]) for scope in table.scopes)])
        lines += _table(header, rows) + [""]
    lines += ["### How well each validator tracks target accuracy", "",
              "Spearman rank correlation between a validator's score and the target test accuracy: within each run "
              "across its evaluation points (mean over runs), and across the runs of each task (every method, norm, "
              "setting and seed: the candidates on that task; last checkpoint; mean over tasks). 1: ranks exactly as "
              "target accuracy; 0: unrelated; negative: misleading. A group needs three values and some spread.", ""]
    lines += _table(["Validator", "ρ over checkpoints", "runs", "ρ over runs", "tasks"],
                    [[f"`{c.validator}`", _number(c.over_checkpoints, 2), str(c.runs), _number(c.over_runs, 2),
                      str(c.tasks)] for c in selection.correlations])
    lines.append("")
    csvs = [name for name in (figures.selection, figures.correlations, figures.candidates) if name]
    if csvs:
        lines += ["CSV: " + ", ".join(f"[{name}]({name})" for name in csvs), ""]
    if figures.scores:
        lines += [f"![Validator score vs target test accuracy at every evaluation point]({figures.scores})", ""]
    return lines


def _optima_section(optima: Sequence[Optimum], figures: Figures) -> list[str]:
    keys = list(dict.fromkeys(key for o in optima for key in o.best))
    lines = ["### Where the best setting lies", "",
             "Per task, the setting with the best target test accuracy at the last checkpoint (mean over seeds; the "
             "oracle: this describes the grid, it selects nothing) and where its value lies on each axis: *low* or "
             "*high* is the grid's edge (the optimum may lie beyond it), *interior* is bracketed. *Diverged*: training "
             f"stopped on a non-finite loss; *collapsed*: at least {COLLAPSE_SHARE:.0f} % of the target predictions in "
             "one class.", ""]
    rows = [[f"{method_label(o.method)} {norm_label(o.norm)}", o.task,
             *(f"{o.best.get(k, '')} ({o.position.get(k, '')})" for k in keys), _number(o.accuracy),
             f"{o.diverged}/{o.settings}", f"{o.collapsed}/{o.settings}"] for o in optima]
    lines += _table(["Run", "Task", *(f"`{k}`" for k in keys), "Accuracy", "Diverged", "Collapsed"], rows)
    inside = sum(o.interior for o in optima)
    lines += ["", f"Best setting interior on every axis: {inside} of {len(optima)} tasks."
              + (f" CSV: [{figures.optima}]({figures.optima})" if figures.optima else ""), ""]
    return lines


def render_report(sweep: Sweep, transfer: TransferTable | None, mixed: MixedTable | None,
                  gates: Sequence[tuple[GatePool, list[dict[str, Any]]]], figures: Figures,
                  paired: Sequence[PairedComparison] = (), selection: SelectionReport | None = None,
                  optima: Sequence[Optimum] = ()) -> str:
    """The report as Markdown.

    Args:
        sweep: The checked sweep.
        transfer: Table 4 (None without transfer runs).
        mixed: Table 3 (None without mixed-domain runs).
        gates: Per method, the pooled gates and their per-stage summary.
        figures: The files the report links to.
        paired: Paired comparisons of Table 4's columns (none: no section).
        selection: Model selection without target labels (None: no section).
        optima: Per task, where the oracle's best setting lies on the sweep's axes (none: no subsection).

    Returns:
        The text of ``report.md``.
    """
    lines = _header(sweep, selection.headline if selection else "")
    if transfer:
        lines += _transfer_section(transfer, figures)
        if paired:
            lines += _paired_section(paired, transfer)
    if mixed:
        lines += _mixed_section(mixed, sweep.runs, figures)
    if selection is not None:
        lines += _selection_section(selection, figures)
        if optima:
            lines += _optima_section(optima, figures)
    if gates:
        lines += _gate_section(gates, figures)
    lines += _status_section(sweep)
    return "\n".join(lines).rstrip() + "\n"

