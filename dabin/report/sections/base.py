"""What every report section receives and returns, and the protocol a section follows.

A section is a function from :class:`ReportInputs` (the sweep's run records, the runs the headline
tables show, the evaluation points) to a :class:`Part`: its Markdown lines and the files (CSV, PNG)
they link to. ``report.md`` is the sections' lines in :data:`dabin.report.sections.SECTIONS` order;
adding a section is a module with one such function and an entry in that list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Protocol

from dabin.report.inputs import Sweep
from dabin.report.selection import Candidate, SelectionReport

__all__ = ["Part", "ReportInputs", "Section"]


@dataclasses.dataclass(frozen=True)
class ReportInputs:
    """What the sections are made from.

    Attributes:
        sweep: The checked sweep: every run's record.
        headline: The same sweep with the runs the headline tables show (one per task or fold and
            seed: the one the selection rule chose; see :func:`dabin.report.selection.headline_runs`).
        candidates: Run key -> its evaluation points (:func:`dabin.report.selection.load_candidates`).
        selection: What the selection section shows; None in a sweep without transfer runs.
    """

    sweep: Sweep
    headline: Sweep
    candidates: Mapping[str, Sequence[Candidate]]
    selection: SelectionReport | None


@dataclasses.dataclass(frozen=True)
class Part:
    """A section as rendered: its lines of ``report.md`` and the files they link to.

    Attributes:
        lines: Markdown lines (none: the section has nothing to show).
        files: File name (beside ``report.md``) -> contents.
    """

    lines: list[str] = dataclasses.field(default_factory=list)
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)


class Section(Protocol):
    """A report section: the inputs in, its part out."""

    def __call__(self, inputs: ReportInputs) -> Part:
        """Render the section."""
