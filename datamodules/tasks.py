"""Source->target tasks: the paper's 12 for Office-Home, every ordered pair for other datasets."""

from __future__ import annotations

import re
from collections.abc import Sequence

from dabin.errors import DabinError
from datamodules.naming import domain_code, domain_key
from datamodules.officehome import OFFICE_HOME_DOMAINS, canonical_office_home_name

__all__ = ["parse_task", "task_name", "transfer_tasks"]


def _office_home_position(name: str) -> int | None:
    canonical = canonical_office_home_name(name)
    if canonical is None:  # maybe a code: "Ar", "rw"
        codes = [domain_key(domain_code(d)) for d in OFFICE_HOME_DOMAINS]
        return codes.index(domain_key(name)) if domain_key(name) in codes else None
    return OFFICE_HOME_DOMAINS.index(canonical)


def transfer_tasks(domains: Sequence[str]) -> list[tuple[str, str]]:
    """Every source->target task of a dataset, in a fixed order.

    Args:
        domains: The dataset's domains (names or codes, any spelling).

    Returns:
        ``(source, target)`` pairs of the given strings. Office-Home domains come in the order
        of the paper's Table 4 (Ar->Cl, Ar->Pr, Ar->Rw, Cl->Ar, ..., Rw->Pr); other datasets give
        all ordered pairs, sources in the given order, then targets in the given order.
    """
    positions = [_office_home_position(name) for name in domains]
    ordered = list(domains)
    if len(domains) >= 2 and all(p is not None for p in positions):
        ordered = [name for _, name in sorted(zip(positions, domains))]
    return [(source, target) for source in ordered for target in ordered if source != target]


def task_name(source: str, target: str) -> str:
    """A task written the way papers do: ``"Ar->Cl"`` (codes of the two domains)."""
    return f"{domain_code(source)}->{domain_code(target)}"


def parse_task(task: str) -> tuple[str, str]:
    """Split a task written ``"Ar->Cl"``, ``"Ar2Cl"``, ``"Ar:Cl"`` or ``"Art->Clipart"``.

    Args:
        task: The task as written by a user.

    Returns:
        ``(source, target)`` as written (resolve them against a tree).

    Raises:
        DabinError: The string does not name two domains.
    """
    parts = re.split(r"\s*(?:->|→|:|,|(?<=[a-z])2(?=[A-Z]))\s*", task.strip())
    if len(parts) != 2 or not all(parts):
        raise DabinError(f"unknown task {task!r}; write it as SOURCE->TARGET, e.g. 'Ar->Cl'")
    return parts[0], parts[1]
