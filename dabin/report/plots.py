"""Bar charts of the report: per task (or domain), one bar per norm with its 95% interval."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

from dabin.report.stats import MeanCI

__all__ = ["bar_chart_png"]

_COLORS = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377")


def bar_chart_png(categories: Sequence[str], series: Mapping[str, Sequence[MeanCI | None]], title: str,
                  ylabel: str = "accuracy (%)") -> bytes:
    """Grouped bars with error bars, as PNG bytes.

    Args:
        categories: The x-axis groups (tasks or domains).
        series: Bar label (``BN``, ``BIN``) -> one mean per category (None: no bar, no finished run).
        title: Figure title.
        ylabel: y-axis label.

    Returns:
        The PNG.
    """
    # A bare Figure renders with the Agg canvas without touching pyplot's global state or backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(5.0, 0.9 * len(categories) + 2.0), 3.6))
    ax = fig.subplots()
    width = 0.8 / max(1, len(series))
    for i, (label, stats) in enumerate(series.items()):
        positions = [c + (i - (len(series) - 1) / 2) * width for c in range(len(categories))]
        heights = [s.mean if s else float("nan") for s in stats]
        errors = [s.half_width if s and s.half_width is not None else 0.0 for s in stats]
        ax.bar(positions, heights, width, yerr=errors, capsize=3, label=label, color=_COLORS[i % len(_COLORS)])
    ax.set_xticks(range(len(categories)), list(categories), rotation=45 if len(categories) > 6 else 0)
    # Accuracies live in [0, 100]; a wide interval of two seeds must not stretch the axis past them.
    ax.set_ylim(0, 100)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
