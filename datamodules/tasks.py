"""Source->target tasks: the paper's 12 for Office-Home, every ordered pair for other datasets.

A multi-source task joins its sources with :data:`~datamodules.naming.DOMAIN_SEPARATOR`:
``"Ar,Cl,Pr->Rw"``; :func:`leave_one_out_tasks` gives every domain as the target of all the others.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dabin.errors import DabinError
from datamodules.naming import DOMAIN_SEPARATOR, domain_code, domain_key, format_task, join_domains, split_domains
from datamodules.officehome import OFFICE_HOME_DOMAINS, canonical_office_home_name

__all__ = ["leave_one_out_tasks", "parse_multi_task", "parse_task", "task_name", "transfer_tasks"]


def _office_home_position(name: str) -> int | None:
    canonical = canonical_office_home_name(name)
    if canonical is None:  # maybe a code: "Ar", "rw"
        codes = [domain_key(domain_code(d)) for d in OFFICE_HOME_DOMAINS]
        return codes.index(domain_key(name)) if domain_key(name) in codes else None
    return OFFICE_HOME_DOMAINS.index(canonical)


def _dataset_order(domains: Sequence[str]) -> list[str]:
    """Office-Home domains in the paper's order (Ar, Cl, Pr, Rw), any other dataset's as given."""
    positions = [_office_home_position(name) for name in domains]
    if len(domains) >= 2 and all(p is not None for p in positions):
        return [name for _, name in sorted(zip(positions, domains))]
    return list(domains)


def transfer_tasks(domains: Sequence[str]) -> list[tuple[str, str]]:
    """Every source->target task of a dataset, in a fixed order.

    Args:
        domains: The dataset's domains (names or codes, any spelling).

    Returns:
        ``(source, target)`` pairs of the given strings. Office-Home domains come in the order
        of the paper's Table 4 (Ar->Cl, Ar->Pr, Ar->Rw, Cl->Ar, ..., Rw->Pr); other datasets give
        all ordered pairs, sources in the given order, then targets in the given order.
    """
    ordered = _dataset_order(domains)
    return [(source, target) for source in ordered for target in ordered if source != target]


def leave_one_out_tasks(domains: Sequence[str]) -> list[tuple[str, str]]:
    """Every multi-source task of a dataset: each domain the target of all the others.

    Args:
        domains: The dataset's domains (names or codes, any spelling).

    Returns:
        One ``(sources, target)`` per domain, targets in dataset order (Office-Home: Ar, Cl, Pr,
        Rw), ``sources`` the other domains in that order joined by
        :data:`~datamodules.naming.DOMAIN_SEPARATOR`: ``("Clipart,Product,Real World", "Art")``, ...

    Raises:
        DabinError: Fewer than two domains.
    """
    if len(domains) < 2:
        raise DabinError(f"leave-one-out tasks need at least two domains, got {list(domains)}")
    ordered = _dataset_order(domains)
    return [(join_domains([d for d in ordered if d != target]), target) for target in ordered]


def task_name(source: str, target: str) -> str:
    """A task written the way papers do: ``"Ar->Cl"``, ``"Ar,Cl,Pr->Rw"`` (codes of the domains)."""
    return format_task(source, target).replace("→", "->")


#: What separates the sources from the target: ``->``, ``→``, ``:`` or ``2`` between words (``Ar2Cl``).
_ARROW = re.compile(r"\s*(?:->|→|:|(?<=[a-z])2(?=[A-Z]))\s*")


def parse_multi_task(task: str) -> tuple[list[str], str]:
    """Split a task written ``"Ar->Cl"``, ``"Ar,Cl,Pr->Rw"``, ``"Ar2Cl"``, ``"Ar:Cl"`` or ``"Art->Clipart"``.

    Args:
        task: The task as written by a user; several sources are joined by ``,``.

    Returns:
        ``(sources, target)`` as written (resolve them against a tree), one or more sources.

    Raises:
        DabinError: The string does not name sources and one target.
    """
    parts = _ARROW.split(task.strip())
    sources = split_domains(parts[0]) if len(parts) == 2 else []
    if len(parts) != 2 or not parts[1] or DOMAIN_SEPARATOR in parts[1] or not all(sources):
        raise DabinError(f"unknown task {task!r}; write it as SOURCE->TARGET, e.g. 'Ar->Cl' or 'Ar,Cl,Pr->Rw'")
    return sources, parts[1]


def parse_task(task: str) -> tuple[str, str]:
    """A task's ``(source, target)`` as written; several sources come joined (``"Ar,Cl,Pr"``).

    Args:
        task: The task as written by a user (see :func:`parse_multi_task`).

    Returns:
        ``(source, target)`` as written, the sources joined by
        :data:`~datamodules.naming.DOMAIN_SEPARATOR` (without spaces around it).

    Raises:
        DabinError: The string does not name sources and one target.
    """
    sources, target = parse_multi_task(task)
    return join_domains(sources), target
