"""Grouping and pivoting run records: how every table of the report is cut, written once."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

__all__ = ["group_by", "pivot"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
R = TypeVar("R", bound=Hashable)
C = TypeVar("C", bound=Hashable)


def group_by(items: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    """The items by key: keys in the order first seen, each group's items in their order.

    Args:
        items: Run records, candidates, ...
        key: What an item is grouped by (e.g. ``lambda run: (run.method, run.norm)``).

    Returns:
        Key -> the items with that key (never an empty list).
    """
    groups: dict[K, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def pivot(items: Iterable[T], row: Callable[[T], R], column: Callable[[T], C]) -> dict[tuple[R, C], list[T]]:
    """The items of each (row, column) cell of a table: :func:`group_by` on the pair.

    Args:
        items: Run records.
        row: An item's row (a task, a norm).
        column: An item's column (a (method, norm) pair, a domain).

    Returns:
        (row, column) -> the items of that cell, for the cells that have any.
    """
    return group_by(items, lambda item: (row(item), column(item)))
