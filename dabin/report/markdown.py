"""Markdown pieces every report section writes with: labels, table rows, numbers, cells."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dabin.nn.convert import NORM_SPECS
from dabin.report.tables import Average, Cell

__all__ = ["PAPER_SUBSET", "average_text", "cell_text", "counts_text", "escape", "md_row", "md_table", "method_label",
           "norm_label", "number_text", "paper_text"]

_LABELS = {"dann": "DANN", "source_only": "Source only", "mixed": "Mixed", "adabn": "AdaBN", "cdan": "CDAN",
            "cdan_e": "CDAN+E", "mcc": "MCC", "mdd": "MDD", "dan": "DAN", "bnm": "BNM", "erm": "ERM", "coral": "CORAL",
            "mmd": "MMD", "group_dro": "Group DRO", "dg_dann": "DANN (k domains)"}


PAPER_SUBSET = (" The sweep has only some of the paper's {what}: the paper's Avg here is its mean over this "
                 "table's {n} {what}, not the published average.")


def method_label(method: str) -> str:
    """``dann`` -> ``DANN``, ``source_only`` -> ``Source only``."""
    return _LABELS.get(method, method)


def norm_label(norm: str) -> str:
    """``bin`` -> ``BIN``, ``ibn_b`` -> ``IBN-b``: the norm's :attr:`~dabin.nn.convert.NormSpec.label`."""
    spec = NORM_SPECS.get(norm)
    return spec.label if spec is not None else norm.upper()


def escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [md_row(header), md_row(["---"] * len(header)), *(md_row(r) for r in rows)]


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {status}" for status, count in counts.items())


def cell_text(cell: Cell, show_missing: bool = True) -> str:
    notes = counts_text(cell.not_ok) if show_missing else ""
    if cell.stats is None:
        return f"— ({notes})" if notes else "—"
    return f"{cell.stats.format()} (n={len(cell.values)}{'; ' + notes if notes else ''})"


def average_text(average: Average, what: str) -> str:
    if average.stats is None:
        return "—"
    text = f"**{average.stats.format()}**"
    return text if average.covered == average.total else f"{text} ({average.covered}/{average.total} {what})*"


def paper_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def number_text(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
