"""What a report is made from: a sweep folder's run records, or its ``results.csv`` alone.

A sweep folder holds one folder per run; :func:`dabin.record.read_runs` reads each run's record
(what was asked, its markers, what the trainer measured), for the runs its manifest asks for and
any other run folder. ``results.csv`` is their flat view: a report reads it only where there are
no run folders (a results file shared or made by hand), through :func:`dabin.record.runs_from_rows`.
Either way the report gets :class:`~dabin.record.Run` records and nothing of the sweep.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from dabin.errors import DabinError
from dabin.record import (MANIFEST, RESULTS, Manifest, Request, Run, Timings, read_results, read_runs,
                          runs_from_rows)
from dabin.report.paper import PAPER_TASKS
from datamodules.naming import domain_key, format_task

__all__ = ["Sweep", "load_sweep", "plain_domain", "task_order"]


def plain_domain(domain: str) -> str | None:
    """The domain of a test row, or None for a split-qualified row (``Clipart/train``).

    A run that tested on every split also reports e.g. ``<target>/train``; those rows are not the
    held-out accuracy that the paper's tables show, so the tables skip them.
    """
    return None if "/" in domain else domain


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A sweep folder's checked inputs.

    Attributes:
        folder: The sweep folder.
        name: The sweep's name (manifest), else the folder's name.
        dataset: ``embedded``, ``officehome`` or ``custom``.
        domains: The dataset's domains, in table order.
        office_home: True when the paper's numbers apply (Office-Home domains).
        runs: The runs, in file order.
        has_manifest: Whether ``sweep.json`` was there.
        spec: The spec file the sweep ran from (manifest), else None.
        from_records: Whether the runs were read from their records (else from ``results.csv``).
        timings: Where a demo's time went (``timings.json``), else None.
    """

    folder: Path
    name: str
    dataset: str
    domains: tuple[str, ...]
    office_home: bool
    runs: tuple[Run, ...]
    has_manifest: bool
    spec: str | None = None
    from_records: bool = False
    timings: Timings | None = None


def _row_domains(rows: Sequence[dict[str, str]]) -> list[tuple[int, str]]:
    """Every (line, domain) a row names: source, target and its tested domain (split suffix dropped)."""
    named = []
    for line, row in enumerate(rows, start=2):
        for value in (row["source"], row["target"], row["domain"].split("/", 1)[0]):
            if value:
                named.append((line, value))
    return named


def _domains(path: Path, rows: Sequence[dict[str, str]], manifest: Manifest | None,
             manifest_path: Path) -> tuple[str, ...]:
    named = _row_domains(rows)
    if manifest and manifest.domains:
        domains = manifest.domains
        known = {domain_key(d) for d in domains}
        for line, value in named:
            if domain_key(value) not in known:
                raise DabinError(f"{path}: line {line}: domain {value!r} is not one of the sweep's domains "
                                 f"({', '.join(domains)}, from {manifest_path})")
        return domains
    by_key: dict[str, str] = {}
    for _, value in named:
        by_key.setdefault(domain_key(value), value)
    return tuple(by_key.values())


def _is_office_home(dataset: str, domains: Sequence[str]) -> bool:
    from datamodules.officehome import OFFICE_HOME_DOMAINS

    known = {domain_key(d) for d in OFFICE_HOME_DOMAINS}
    return dataset == "officehome" or (bool(domains) and all(domain_key(d) in known for d in domains))


def _office_home_order(domains: Sequence[str]) -> tuple[str, ...]:
    from datamodules.officehome import OFFICE_HOME_DOMAINS

    order = [domain_key(d) for d in OFFICE_HOME_DOMAINS]
    return tuple(sorted(domains, key=lambda d: order.index(domain_key(d)) if domain_key(d) in order else len(order)))


def _missing_runs(planned: Sequence[tuple[str, Request]], runs: Sequence[Run]) -> list[Run]:
    """The spec's runs that have no row in a results file read without run folders: never started here."""
    listed = {run.key for run in runs}
    return [Run.asked(name, request, "missing") for name, request in planned if name not in listed]


def load_sweep(folder: str | Path) -> Sweep:
    """Read and check a sweep folder.

    Args:
        folder: The sweep's output folder: run folders and ``sweep.json`` as ``dabin sweep`` leaves
            them (read from the run records), or a ``results.csv`` alone.

    Returns:
        The checked sweep.

    Raises:
        DabinError: No such folder, no results, a damaged manifest, or (a ``results.csv`` alone) a
            results file in an inconsistent state (bad value, duplicated row, rows of one run that
            disagree, an ok transfer run without its target's row, a domain the manifest does not
            list); the message names file and line.
    """
    folder = Path(folder)
    if not folder.exists():
        raise DabinError(f"no sweep folder: {folder} does not exist")
    if not folder.is_dir():
        raise DabinError(f"{folder} is not a folder; give the sweep's output folder (it holds {RESULTS})")
    manifest = Manifest.read(folder)
    planned = manifest.planned(folder) if manifest else []
    runs = read_runs(folder, planned)
    # No run folder at all (every planned run missing): a results.csv alone, or beside its manifest.
    from_records = any(run.status != "missing" for run in runs)
    if from_records:
        named = [name for run in runs for name in (run.source, run.target, *run.accuracy) if name and "/" not in name]
        domains = manifest.domains if manifest and manifest.domains else tuple(dict.fromkeys(named))
    else:
        path = folder / RESULTS
        rows = read_results(path)
        runs = runs_from_rows(path, rows)
        runs += _missing_runs(planned, runs)
        domains = _domains(path, rows, manifest, folder / MANIFEST)
    dataset = manifest.dataset if manifest else ""
    office_home = _is_office_home(dataset, domains)
    if office_home:
        domains = _office_home_order(domains)
    return Sweep(folder=folder, name=(manifest.name if manifest else "") or folder.resolve().name,
                 dataset=dataset or ("officehome" if office_home else "custom"), domains=domains,
                 office_home=office_home, runs=tuple(runs), has_manifest=manifest is not None,
                 spec=(manifest.spec or None) if manifest else None, from_records=from_records,
                 timings=Timings.read(folder))


def task_order(sweep: Sweep) -> list[tuple[str, str]]:
    """The transfer tasks as ``(source, target)``: the paper's order on Office-Home, else first seen."""
    tasks = list(dict.fromkeys((run.source, run.target) for run in sweep.runs if run.transfer))
    if sweep.office_home:
        order = {task: i for i, task in enumerate(PAPER_TASKS)}
        tasks.sort(key=lambda t: order.get(format_task(*t), len(order)))
    return tasks
