"""Runs without results: the failed ones with their reasons, the incomplete and missing ones, and how to redo them."""

from __future__ import annotations

from dabin.report.inputs import Sweep
from dabin.report.markdown import counts_text, escape, md_table, method_label, norm_label
from dabin.report.sections.base import Part, ReportInputs

__all__ = ["section"]


def section(inputs: ReportInputs) -> Part:
    """Every run of the sweep without a result, by status (no files)."""
    return Part(_status_section(inputs.sweep))


#: Runs listed by name per status before the list is cut to a count.
_LIST_AT_MOST = 20


def _status_section(sweep: Sweep) -> list[str]:
    by_status = {s: [r for r in sweep.runs if r.status == s] for s in ("failed", "incomplete", "missing")}
    lines = ["## Runs without results", ""]
    if not any(by_status.values()):
        return [*lines, f"None: all {len(sweep.runs)} runs finished.", ""]
    rerun = f"`dabin sweep {sweep.spec} --out {sweep.folder}`" if sweep.spec else "the sweep"
    lines += [f"{counts_text({s: len(r) for s, r in by_status.items() if r})} of {len(sweep.runs)} runs. "
              f"Rerunning {rerun} redoes them and keeps the finished ones.", ""]
    if by_status["failed"]:
        lines += [f"### Failed ({len(by_status['failed'])})", ""]
        lines += md_table(["Method", "Norm", "Task / fold", "Seed", "Reason", "Run"],
                        [[method_label(r.method), norm_label(r.norm), r.place, str(r.seed),
                          escape(r.reason) or "(no reason recorded)", f"`{r.key}`"] for r in by_status["failed"]])
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
