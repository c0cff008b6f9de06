"""Choosing without target labels: each rule's picks, how validators track accuracy, where the best setting lies."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence

from dabin.report.markdown import md_table, method_label, norm_label, number_text
from dabin.report.optimum import COLLAPSE_SHARE, Optimum, optimum_csv, setting_optima
from dabin.report.sections.base import Part, ReportInputs
from dabin.report.selection import (LAST, ORACLE, Candidate, Correlation, Selection, SelectionReport, SelectionTable,
                                    recorded_validators)
from dabin.selection.mixval import RANK_COMBINED

__all__ = ["CANDIDATES", "CORRELATIONS", "OPTIMA", "SCORES", "SELECTION", "candidates_csv", "correlation_csv",
           "score_plot_png", "section", "selection_csv"]

SELECTION = "selection.csv"
CORRELATIONS = "validator_correlations.csv"
CANDIDATES = "candidates.csv"
SCORES = "validator_scores.png"
OPTIMA = "setting_optima.csv"


def section(inputs: ReportInputs) -> Part:
    """The selection tables, the correlations, the scores plot and (a sweep with hyper-parameter axes) the optima.

    Nothing in a sweep without transfer runs; only a line saying how to record evaluation points
    when no run has any.
    """
    selection = inputs.selection
    if selection is None:
        return Part()
    files: dict[str, bytes] = {}
    if selection.tables:
        files[SELECTION] = selection_csv(selection.tables).encode()
        files[CORRELATIONS] = correlation_csv(selection.correlations).encode()
        files[CANDIDATES] = candidates_csv(inputs.candidates).encode()
        files[SCORES] = score_plot_png(inputs.candidates)
    lines = _selection_section(selection)
    optima = setting_optima(inputs.sweep.runs, inputs.candidates) if selection.hyper else []
    if optima:
        files[OPTIMA] = optimum_csv(optima).encode()
        lines += _optima_section(optima)
    return Part(lines, files)


_SCOPE_LABELS = {"checkpoints": "over checkpoints (within a run)", "settings": "over settings (last checkpoint)",
                 "both": "over settings and checkpoints"}


def _cell(cell: Selection) -> str:
    share = "" if cell.max_class_share is None else f"; share {cell.max_class_share:.0f} %"
    return f"{number_text(cell.mean)} (n={cell.n}{share})"


def _selection_section(selection: SelectionReport) -> list[str]:
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
        lines += md_table(header, rows) + [""]
    lines += ["### How well each validator tracks target accuracy", "",
              "Spearman rank correlation between a validator's score and the target test accuracy: within each run "
              "across its evaluation points (mean over runs), and across the runs of each task (every method, norm, "
              "setting and seed: the candidates on that task; last checkpoint; mean over tasks). 1: ranks exactly as "
              "target accuracy; 0: unrelated; negative: misleading. A group needs three values and some spread.", ""]
    lines += md_table(["Validator", "ρ over checkpoints", "runs", "ρ over runs", "tasks"],
                    [[f"`{c.validator}`", number_text(c.over_checkpoints, 2), str(c.runs), number_text(c.over_runs, 2),
                      str(c.tasks)] for c in selection.correlations])
    lines.append("")
    lines += ["CSV: " + ", ".join(f"[{name}]({name})" for name in (SELECTION, CORRELATIONS, CANDIDATES)), ""]
    lines += [f"![Validator score vs target test accuracy at every evaluation point]({SCORES})", ""]
    return lines


def _optima_section(optima: Sequence[Optimum]) -> list[str]:
    keys = list(dict.fromkeys(key for o in optima for key in o.best))
    lines = ["### Where the best setting lies", "",
             "Per task, the setting with the best target test accuracy at the last checkpoint (mean over seeds; the "
             "oracle: this describes the grid, it selects nothing) and where its value lies on each axis, among the "
             "settings that hold the other axes at the best's values: *low* or *high* is the edge (the optimum may "
             "lie beyond it), *interior* is bracketed (a setting on each side, both below the best; settings tied "
             "with the best count as the best, and *flat* means all on the line tie). *Diverged*: training "
             f"stopped on a non-finite loss; *collapsed*: at least {COLLAPSE_SHARE:.0f} % of the target predictions in "
             "one class.", ""]
    rows = [[f"{method_label(o.method)} {norm_label(o.norm)}", o.task,
             *(f"{o.best.get(k, '')} ({o.position.get(k, '')})" for k in keys),
             number_text(o.accuracy) + (f" (tied by {o.tied} other setting{'s' * (o.tied > 1)})" if o.tied else ""),
             f"{o.diverged}/{o.settings}", f"{o.collapsed}/{o.settings}"] for o in optima]
    lines += md_table(["Run", "Task", *(f"`{k}`" for k in keys), "Accuracy", "Diverged", "Collapsed"], rows)
    inside = sum(o.interior for o in optima)
    lines += ["", f"Best setting interior on every axis: {inside} of {len(optima)} tasks."
              + f" CSV: [{OPTIMA}]({OPTIMA})", ""]
    return lines


def selection_csv(tables: Iterable[SelectionTable]) -> str:
    """``selection.csv``: method, norm, rule, scope, target labels used, mean accuracy, n, mean largest class share."""
    lines = ["method,norm,rule,scope,uses_target_labels,mean_accuracy,n,mean_max_class_share"]
    for table in tables:
        for rule in table.rules:
            for scope in table.scopes:
                cell = table.cells[rule, scope]
                lines.append(f"{table.method},{table.norm},{rule},{scope},{str(cell.uses_target_labels).lower()},"
                             f"{_csv_number(cell.mean)},{cell.n},{_csv_number(cell.max_class_share)}")
    return "\n".join(lines) + "\n"


def _csv_number(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.4f}"


def candidates_csv(candidates: Mapping[str, Sequence[Candidate]]) -> str:
    """``candidates.csv``: every evaluation point, its recorded scores, its largest class share and the oracle."""
    names = [name for name in recorded_validators(candidates) if name not in RANK_COMBINED]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["run", "method", "norm", "task", "seed", "setting", "step", "last", "max_class_share",
                     *names, "oracle_target_test_accuracy"])
    for key, points in candidates.items():
        run = points[0].run
        for c in points:
            writer.writerow([key, run.method, run.norm, run.task, run.seed, run.hparams, c.step, str(c.last).lower(),
                             _csv_number(c.max_class_share), *(_csv_number(c.scores.get(name)) for name in names),
                             _csv_number(c.accuracy)])
    return buffer.getvalue()


def correlation_csv(correlations: Iterable[Correlation]) -> str:
    """``validator_correlations.csv``: validator, ρ over checkpoints (runs), ρ over runs (tasks)."""
    lines = ["validator,spearman_over_checkpoints,runs,spearman_over_runs,tasks"]
    for c in correlations:
        within = "" if c.over_checkpoints is None else f"{c.over_checkpoints:.4f}"
        across = "" if c.over_runs is None else f"{c.over_runs:.4f}"
        lines.append(f"{c.validator},{within},{c.runs},{across},{c.tasks}")
    return "\n".join(lines) + "\n"


def score_plot_png(candidates: Mapping[str, Sequence[Candidate]]) -> bytes:
    """Every evaluation point's score against its target test accuracy, one panel per validator, as PNG."""
    from matplotlib.figure import Figure

    names = [name for name in recorded_validators(candidates) if name not in RANK_COMBINED]  # recorded scores only
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    fig = Figure(figsize=(3.2 * columns, 2.8 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    tasks = list(dict.fromkeys(points[0].run.task for points in candidates.values()))
    colors = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#000000")
    for index, name in enumerate(names):
        ax = axes[index // columns][index % columns]
        for t, task in enumerate(tasks):
            points = [c for pts in candidates.values() for c in pts
                      if c.run.task == task and math.isfinite(c.scores.get(name, math.nan))]
            ax.scatter([c.scores[name] for c in points], [c.accuracy for c in points], s=8, alpha=0.6,
                       color=colors[t % len(colors)], label=task)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("score (higher is better)", fontsize=8)
        ax.set_ylabel("target test accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    for index in range(len(names), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    if tasks:
        axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
