"""The report's head: the sweep, its runs' statuses, and what the finished runs recorded of how they ran."""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence

from dabin.record import Run
from dabin.report.inputs import Sweep
from dabin.report.markdown import counts_text, method_label, norm_label
from dabin.report.pivot import group_by
from dabin.report.sections.base import Part, ReportInputs

__all__ = ["section"]


def section(inputs: ReportInputs) -> Part:
    """The title and the sweep's facts (no files)."""
    return Part(_header(inputs.sweep, inputs.selection.headline if inputs.selection else ""))


def _header(sweep: Sweep, headline: str = "") -> list[str]:
    statuses = collections.Counter(run.status for run in sweep.runs)
    not_ok = {s: statuses[s] for s in ("failed", "incomplete", "missing") if statuses[s]}
    runs = f"{len(sweep.runs)} runs: {statuses['ok']} finished"
    runs += f", {counts_text(not_ok)} (see [Runs without results](#runs-without-results))" if not_ok else ""
    return [
        f"# Sweep report: {sweep.name}", "",
        f"- Folder: `{sweep.folder}`; dataset: {sweep.dataset} ({', '.join(sweep.domains)}); read from "
        + ("the run records (`results.csv` is their export)" if sweep.from_records else "`results.csv`"),
        f"- {runs}",
        *([f"- Where the time went (`timings.json`): {sweep.timings.text()}"] if sweep.timings else []),
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
    for method, mine in group_by(finished, lambda run: run.method).items():
        values = collections.Counter(value(run) or "not recorded" for run in mine)
        listed = ", ".join(f"{text} ({count} runs)" if len(values) > 1 else text
                           for text, count in values.most_common())
        parts.append(f"{method_label(method)}: {listed}" + (" — **differs between runs**" if len(values) > 1 else ""))
    return "; ".join(parts) or "no finished run"


def _source_val(runs: Sequence[Run]) -> str:
    recorded = [run for run in runs if run.status == "ok" and run.transfer and run.source_val is not None]
    values = {group: [run.source_val for run in mine if run.source_val is not None]
              for group, mine in group_by(recorded, lambda run: (run.method, run.norm)).items()}
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
