"""The other learned mixtures: domain-specific BIN's source and target gates, Switchable Norm's weights.

Nam & Kim's Figure 2 asks where BIN keeps styles; the normalization lab asks the same of the norms
that learn a mixture too. Per method, the finished runs' tables are pooled (as the BIN gates are,
:mod:`dabin.report.sections.gates`) and summarized per network stage. Nothing is shown for a sweep
without ``dsbin`` or ``switchable`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dabin.report.csvs import switch_summary_csv, target_gate_summary_csv
from dabin.report.gates import GatePool, pool_gates, pool_switch_weights, switch_summary, target_gate_summary
from dabin.report.markdown import md_table, method_label
from dabin.report.sections.base import Part, ReportInputs

__all__ = ["SWITCH_SUMMARY", "TARGET_SUMMARY", "section"]

TARGET_SUMMARY = "dsbin_gate_summary.csv"
SWITCH_SUMMARY = "switch_summary.csv"


def section(inputs: ReportInputs) -> Part:
    """A per-stage table for each of domain-specific BIN and Switchable Norm that has runs, and their CSVs."""
    dsbin = pool_gates(inputs.headline, norm="dsbin")
    targets = [row for pool in dsbin for row in target_gate_summary(pool)]
    switch = pool_switch_weights(inputs.headline)
    weights = [row for pool in switch for row in switch_summary(pool)]
    parts = [
        _part(dsbin, "## Domain-specific BIN: source and target gates",
              "Per channel, ρ_s gates the source's normalization and ρ_t the target's (both start at BIN's gate); "
              "the tables of all finished `dsbin` runs of a method are pooled, per stage.",
              ["Mean ρ_s", "Mean ρ_t", "Mean |ρ_s − ρ_t|", "ρ_t < 0.1", "ρ_t > 0.9"],
              [[str(r["values"]), f"{r['source_mean']:.3f}", f"{r['target_mean']:.3f}",
                f"{r['mean_abs_difference']:.3f}", f"{r['target_near_in']:.0%}", f"{r['target_near_bn']:.0%}"]
               for r in targets], targets, "Values", TARGET_SUMMARY, target_gate_summary_csv(targets),
              "gates.csv with target gates"),
        _part(switch, "## Switchable Norm: weights over IN, LN and BN",
              "Softmaxed weights w of the means and w′ of the variances, order IN, LN, BN (each triple sums to 1; "
              "all start at 1/3); mean over the stage's layers and the method's finished `switchable` runs.",
              ["w: IN", "w: LN", "w: BN", "w′: IN", "w′: LN", "w′: BN"],
              [[str(r["layers"]), *(f"{r[f'{s}_{n}']:.3f}" for s in ("mean", "var") for n in ("in", "ln", "bn"))]
               for r in weights], weights, "Layers", SWITCH_SUMMARY, switch_summary_csv(weights), "switch_weights.csv"),
    ]
    return Part([line for lines, _ in parts for line in lines], {k: v for _, files in parts for k, v in files.items()})


def _part(pools: Sequence[GatePool], title: str, intro: str, header: list[str], cells: list[list[str]],
          summary: Sequence[dict[str, Any]], count: str, csv_name: str, csv_text: str,
          file: str) -> tuple[list[str], dict[str, bytes]]:
    """One norm's section: its table (method, level, stage, runs, then ``cells``), its CSV, the runs without a table."""
    if not pools:
        return [], {}
    lines = [title, "", intro, ""]
    files: dict[str, bytes] = {}
    if summary:
        lines += md_table(["Method", "Level", "Stage", "Runs", count, *header],
                          [[method_label(r["method"]), r["level"], r["stage"], str(r["runs"]), *row]
                           for r, row in zip(summary, cells)])
        files[csv_name] = csv_text.encode()
        lines += ["", f"CSV: [{csv_name}]({csv_name})"]
    missing = [f"{pool.without} finished run(s) of {method_label(pool.method)} have no {file} (not pooled)."
               for pool in pools if pool.without]
    return [*lines, *([""] + missing if missing else []), ""], files
