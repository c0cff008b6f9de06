"""The report's sections, in the order ``report.md`` shows them.

Each is a function from :class:`~dabin.report.sections.base.ReportInputs` to a
:class:`~dabin.report.sections.base.Part` (Markdown lines and the files they link to), in a module
of its own; a new section is a new module and an entry in :data:`SECTIONS`.
"""

from dabin.report.sections import (classes, gates, generalization, header, mixed, mixtures, selection, status,
                                   transfer)
from dabin.report.sections.base import Part, ReportInputs, Section

__all__ = ["SECTIONS", "Part", "ReportInputs", "Section"]

#: ``report.md`` from top to bottom.
SECTIONS: tuple[Section, ...] = (header.section, transfer.section, classes.section, mixed.section,
                                 generalization.section, selection.section, gates.section, mixtures.section,
                                 status.section)
