"""The BIN gates (the paper's Figure 2): per method, the gates of its finished BIN runs pooled, by level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dabin.report.csvs import gate_summary_csv
from dabin.report.gates import GatePool, gate_histogram_png, pool_gates, stage_summary
from dabin.report.markdown import md_table, method_label
from dabin.report.sections.base import Part, ReportInputs

__all__ = ["SUMMARY", "section"]

SUMMARY = "gate_summary.csv"


def section(inputs: ReportInputs) -> Part:
    """A summary table per stage, a histogram per method and their CSV (nothing without BIN runs)."""
    pools = pool_gates(inputs.headline)
    if not pools:
        return Part()
    gates = [(pool, stage_summary(pool) if pool.rows else []) for pool in pools]
    files: dict[str, bytes] = {}
    histograms: dict[str, str] = {}
    for pool, _ in gates:
        if pool.rows:
            histograms[pool.method] = f"gates_{pool.method}.png"
            files[histograms[pool.method]] = gate_histogram_png(pool)
    summary = [row for _, rows in gates for row in rows]
    if summary:
        files[SUMMARY] = gate_summary_csv(summary).encode()
    return Part(_gate_section(gates, histograms, bool(summary)), files)


def _gate_section(pools: Sequence[tuple[GatePool, list[dict[str, Any]]]], histograms: Mapping[str, str],
                  summary: bool) -> list[str]:
    lines = ["## BIN gates (Figure 2)", "",
             "Gate ρ per channel: 0 = instance normalization, 1 = batch normalization. The gate tables of all "
             "finished BIN runs of a method are pooled; levels as in the paper (lower: stem and layer1, middle: "
             "layer2–3, upper: layer4).", ""]
    header = ["Method", "Level", "Stage", "Runs", "Values", "Mean ρ", "Min", "Max", "ρ < 0.1", "ρ > 0.9"]
    rows = [[method_label(s["method"]), s["level"], s["stage"], str(s["runs"]), str(s["values"]), f"{s['mean']:.3f}",
             f"{s['min']:.3f}", f"{s['max']:.3f}", f"{s['near_in']:.0%}", f"{s['near_bn']:.0%}"]
            for _, summary in pools for s in summary]
    if rows:
        lines += md_table(header, rows)
    for pool, _ in pools:
        if pool.without:
            lines += ["", f"{pool.without} finished BIN run(s) of {method_label(pool.method)} have no gates.csv "
                          "(not pooled)."]
        if pool.method in histograms:
            lines += ["", f"![{method_label(pool.method)}: BIN gates per level]({histograms[pool.method]})"]
    if summary:
        lines += ["", f"CSV: [{SUMMARY}]({SUMMARY})"]
    return [*lines, ""]
