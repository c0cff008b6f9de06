"""``results.csv``: one row per (finished run, evaluated domain), rebuilt from the run folders.

The run folders are the source of truth; the CSV is a view of them, rewritten atomically after
every finished job, so it never holds a half-written row or a row twice. A failed run is one row
with its status and reason and no accuracy. Runs that were interrupted or never started are not
rows: what the spec still lacks is in ``sweep.json``'s job list, shown by ``dabin sweep
--dry-run``, the end-of-sweep summary and the report.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dabin.errors import DabinError
from dabin.io import atomic_open
from dabin.sweep.jobs import Job, jobs_in
from dabin.sweep.spec import METHODS
from dabin.record import RunFolder

__all__ = ["COLUMNS", "REQUIRED", "STATUSES", "collect_results", "read_results", "write_results"]

#: File names of a sweep folder: the results table and the manifest (spec identity and job list).
COLUMNS: tuple[str, ...] = ("run", "method", "norm", "task", "source", "target", "seed", "fold", "hparams", "domain",
                            "accuracy", "n", "status", "reason", "steps", "time_s", "model_selection", "batch",
                            "gate_lr", "domain_stats", "source_val")
#: Columns a results file must have (a hand-made one may leave out the rest).
REQUIRED: tuple[str, ...] = ("method", "norm", "task", "source", "target", "seed", "fold", "domain",
                             "accuracy", "n", "status")
STATUSES: tuple[str, ...] = ("ok", "failed", "incomplete", "missing")


def _run_rows(job: Job, run_dir: Path) -> list[dict[str, Any]]:
    base = {"run": job.name, "method": job.method, "norm": job.norm, "task": job.task, "source": job.source or "",
            "target": job.target or "", "seed": job.seed, "fold": "" if job.fold is None else job.fold,
            "hparams": job.setting, "accuracy": "", "n": "", "reason": "", "steps": "", "time_s": "",
            "model_selection": "", "batch": "", "gate_lr": "", "domain_stats": "", "source_val": ""}
    run = RunFolder.read(run_dir)
    if run.status in ("incomplete", "missing"):
        return []
    if run.record is None:
        # One row per failed run: its target for a transfer run, no domain for a mixed one.
        return [{**base, "domain": job.target or "", "status": "failed", "reason": run.reason}]
    record = run.record
    shared = {"status": "ok", "steps": "" if record.steps is None else record.steps,
              "time_s": "" if record.time_s is None else round(record.time_s, 1),
              "model_selection": record.model_selection,
              "batch": record.batch.text() if record.batch else "",
              "gate_lr": record.gate_lr.text() if record.gate_lr else "",
              "domain_stats": record.domain_stats or "",
              "source_val": record.source_val.accuracy if record.source_val else ""}
    return [{**base, **shared, "domain": domain, "accuracy": round(result.accuracy, 4), "n": result.n}
            for domain, result in record.test.items()]


def collect_results(out_dir: Path, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Rows of the finished and failed runs among the sweep's jobs and any other run folder in ``out_dir``.

    Args:
        out_dir: The sweep's output folder.
        jobs: The sweep's jobs (all of the spec; also runs of an earlier, wider spec found in
            ``out_dir`` are included).

    Returns:
        Rows with :data:`COLUMNS`, in job order.
    """
    return [row for job in jobs_in(out_dir, jobs) for row in _run_rows(job, out_dir / job.name)]


def write_results(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as CSV atomically (readers see the old file or the new one)."""
    with atomic_open(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _task_matches(task: str, source: str, target: str) -> bool:
    from datamodules.naming import domain_code, domain_key

    parts = task.replace("->", "→").split("→")
    return len(parts) == 2 and [domain_key(p) for p in parts] in (
        [domain_key(domain_code(source)), domain_key(domain_code(target))], [domain_key(source), domain_key(target)])


def _check_row(row: dict[str, str]) -> str:
    """The first problem of one row, or "" (messages name the column and the value)."""
    status, method = row["status"], row["method"]
    if status not in STATUSES:
        return f"status={status!r} is not one of {', '.join(STATUSES)}"
    if method not in METHODS:
        return f"method={method!r} is not one of {', '.join(METHODS)}"
    if not row["norm"]:
        return "norm is empty"
    if not row["seed"].lstrip("-").isdigit():
        return f"seed={row['seed']!r} is not an integer"
    if METHODS[method] == "transfer":
        if row["fold"]:
            return f"fold={row['fold']!r} on a transfer run (fold is empty for {method})"
        if not _task_matches(row["task"], row["source"], row["target"]):
            return f"task={row['task']!r} does not match source={row['source']!r} and target={row['target']!r}"
    elif not row["fold"].isdigit():
        return f"fold={row['fold']!r} is not an integer (a {method} run has a fold)"
    if not row["domain"] and status == "ok":
        return "domain is empty on an ok row"
    if status == "ok":
        try:
            accuracy = float(row["accuracy"])
        except ValueError:
            return f"accuracy={row['accuracy']!r} is not a number on an ok row"
        if not math.isfinite(accuracy) or not 0 <= accuracy <= 100:
            return f"accuracy={row['accuracy']!r} is not a percentage"
        if not row["n"].isdigit() or int(row["n"]) == 0:
            return f"n={row['n']!r} is not a positive integer on an ok row"
    elif row["accuracy"]:
        return f"accuracy={row['accuracy']!r} on a {status} run (only ok rows have one)"
    return ""


def read_results(path: Path) -> list[dict[str, str]]:
    """Read and check a results file (written by the sweep, or made or edited by hand).

    Args:
        path: ``results.csv``.

    Returns:
        The rows as strings, in file order.

    Raises:
        DabinError: No file, no rows, a missing column, a bad value or a duplicate row; the message
            names the row (line number) and the value.
    """
    if not path.is_file():
        raise DabinError(f"no results: {path} not found (run `dabin sweep SPEC` first)")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise DabinError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = [{key: (value or "").strip() for key, value in row.items() if key is not None} for row in reader]
    if not rows:
        raise DabinError(f"no results: {path} has no rows")
    seen: dict[tuple[str, ...], int] = {}
    for line, row in enumerate(rows, start=2):
        problem = _check_row(row)
        if problem:
            raise DabinError(f"{path}: line {line}: {problem}")
        # One measurement per cell: a second row for the same run (or the same method, norm, place
        # and seed from another run) would be counted twice in the means.
        key = (row["method"], row["norm"], row["task"], row["fold"], row["seed"], row.get("hparams", ""),
               row["domain"])
        if key in seen:
            setting = f", {row['hparams']}" if row.get("hparams") else ""
            raise DabinError(f"{path}: line {line} duplicates line {seen[key]} (method={row['method']}, "
                             f"norm={row['norm']}, task={row['task'] or '-'}, fold={row['fold'] or '-'}, "
                             f"seed={row['seed']}{setting}, domain={row['domain']})")
        seen[key] = line
    return rows
