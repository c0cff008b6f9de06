"""``results.csv``: a flat view of the run records, one row per (finished run, evaluated domain).

The run folders are the source of truth; the sweep rewrites this file from their records
(:func:`result_rows` of :func:`~dabin.record.run.read_runs`) atomically after every finished job, so
it never holds a half-written row or a row twice. A failed run is one row with its status and
reason and no accuracy. Runs that were interrupted or never started are not rows: what the spec
still lacks is in ``sweep.json``'s job list. Where there are no run folders (a results file shared
or made by hand), :func:`runs_from_rows` groups the rows back into runs, and every inconsistency a
hand edit can introduce is one :class:`~dabin.errors.DabinError` naming the file, the line and the value.
A row keeps a test result's mean class accuracy (``class_accuracy``, when its record has one) but
not its per-class counts: those stay in the run folder's ``metrics.json``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dabin.errors import DabinError
from dabin.io import atomic_open
from dabin.methods.names import RUN_KINDS
from dabin.record.metrics import TestResult
from dabin.record.run import Run
from datamodules.naming import domain_key, format_task

__all__ = ["COLUMNS", "OPTIONAL_COLUMNS", "REQUIRED", "STATUSES", "read_results", "result_rows", "runs_from_rows", "write_results"]

COLUMNS: tuple[str, ...] = ("run", "method", "norm", "task", "source", "target", "seed", "fold", "hparams", "domain",
                            "accuracy", "n", "status", "reason", "steps", "time_s", "model_selection", "batch",
                            "gate_lr", "domain_stats", "source_val")
#: Columns written after :data:`COLUMNS` only when a row has a value: ``class_accuracy``, the evaluated
#: set's mean class accuracy (VisDA-2017's metric), which records written before it was kept lack;
#: a sweep of such records keeps its ``results.csv`` byte for byte.
OPTIONAL_COLUMNS: tuple[str, ...] = ("class_accuracy",)
#: Columns a results file must have (a hand-made one may leave out the rest).
REQUIRED: tuple[str, ...] = ("method", "norm", "task", "source", "target", "seed", "fold", "domain",
                             "accuracy", "n", "status")
STATUSES: tuple[str, ...] = ("ok", "failed", "incomplete", "missing")
#: Fields every row of one run shares; a row disagreeing with its run's first row is an edit error.
_RUN_FIELDS = ("method", "norm", "task", "source", "target", "seed", "fold", "hparams", "status")


def _blank(value: Any) -> Any:
    return "" if value is None else value


def result_rows(run: Run) -> list[dict[str, Any]]:
    """A run's rows: one per evaluated set of a finished run, one for a failed run, none otherwise."""
    if run.status in ("incomplete", "missing"):
        return []
    base = {"run": run.key, "method": run.method, "norm": run.norm,
            "task": run.task, "source": run.source, "target": run.target,
            "seed": run.seed, "fold": _blank(run.fold), "hparams": run.hparams, "accuracy": "", "n": "", "reason": "",
            "steps": "", "time_s": "", "model_selection": "", "batch": "", "gate_lr": "", "domain_stats": "",
            "source_val": "", "class_accuracy": ""}
    if run.status == "failed":
        # One row per failed run: its target for a transfer run, no domain for a mixed one.
        return [{**base, "domain": run.target, "status": "failed", "reason": run.reason}]
    shared = {"status": "ok", "steps": _blank(run.steps),
              "time_s": "" if run.time_s is None else round(run.time_s, 1),
              "model_selection": run.model_selection, "batch": run.batch, "gate_lr": run.gate_lr,
              "domain_stats": run.domain_stats, "source_val": _blank(run.source_val)}
    return [{**base, **shared, "domain": domain, "accuracy": round(result.accuracy, 4), "n": result.n,
             "class_accuracy": "" if result.class_accuracy is None else round(result.class_accuracy, 4)}
            for domain, result in run.test.items()]


def write_results(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as CSV atomically (readers see the old file or the new one).

    The columns are :data:`COLUMNS`, then those of :data:`OPTIONAL_COLUMNS` that some row fills.
    """
    rows = list(rows)
    columns = COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if any(row.get(c) not in (None, "") for row in rows))
    with atomic_open(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _task_matches(task: str, source: str, target: str) -> bool:
    # Written with codes (format_task's "Ar,Cl→Rw") or with the names, in any spelling.
    written = domain_key(task.replace("->", "→"))
    return written in (domain_key(format_task(source, target)), domain_key(f"{source}→{target}"))


def _check_row(row: dict[str, str]) -> str:
    """The first problem of one row, or "" (messages name the column and the value)."""
    status, method = row["status"], row["method"]
    if status not in STATUSES:
        return f"status={status!r} is not one of {', '.join(STATUSES)}"
    if method not in RUN_KINDS:
        return f"method={method!r} is not one of {', '.join(RUN_KINDS)}"
    if not row["norm"]:
        return "norm is empty"
    if not row["seed"].lstrip("-").isdigit():
        return f"seed={row['seed']!r} is not an integer"
    if RUN_KINDS[method] in ("transfer", "dg"):
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
        if row.get("class_accuracy"):
            try:
                class_accuracy = float(row["class_accuracy"])
            except ValueError:
                return f"class_accuracy={row['class_accuracy']!r} is not a number"
            if not math.isfinite(class_accuracy) or not 0 <= class_accuracy <= 100:
                return f"class_accuracy={row['class_accuracy']!r} is not a percentage"
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


def _run_key(row: dict[str, str]) -> str:
    # Hand-made files may lack the run column; the fields that identify a run stand in for it.
    fields = ("method", "norm", "task", "fold", "seed", "hparams")
    return row.get("run") or "|".join(row.get(field, "") for field in fields)


def _optional(text: str | None, kind: type[int] | type[float]) -> Any:
    # Columns a report does not need: a hand-made file may leave them empty or write them loosely.
    try:
        return kind(text) if text else None
    except ValueError:
        return None


def runs_from_rows(path: Path, rows: Sequence[dict[str, str]]) -> list[Run]:
    """The runs of checked rows (:func:`read_results`), in file order: the inverse of :func:`result_rows`.

    Args:
        path: The results file (for messages).
        rows: Its rows.

    Raises:
        DabinError: Rows of one run that disagree on a field of the run, an ok transfer run without
            a row for its target, or two runs of one (method, norm, place, seed, setting); the
            message names the file and the line.
    """
    first: dict[str, int] = {}
    grouped: dict[str, list[dict[str, str]]] = {}
    for line, row in enumerate(rows, start=2):
        key = _run_key(row)
        if key not in grouped:
            first[key] = line
            grouped[key] = []
        else:
            head = rows[first[key] - 2]
            for field in _RUN_FIELDS:
                if row.get(field, "") != head.get(field, ""):
                    raise DabinError(f"{path}: line {line}: run {key!r} has {field}={row.get(field, '')!r} here but "
                                     f"{field}={head.get(field, '')!r} on line {first[key]}")
        grouped[key].append(row)
    result: list[Run] = []
    identities: dict[tuple[Any, ...], Run] = {}
    for key, mine in grouped.items():
        head = mine[0]
        test = {r["domain"]: TestResult(float(r["accuracy"]), int(r["n"]),
                                        class_accuracy=_optional(r.get("class_accuracy"), float))
                for r in mine if r["status"] == "ok"}
        run = Run(key=key, line=first[key], method=head["method"], norm=head["norm"], source=head["source"],
                  target=head["target"], seed=int(head["seed"]), fold=int(head["fold"]) if head["fold"] else None,
                  status=head["status"], reason=head.get("reason", ""), test=test,  # type: ignore[arg-type]
                  model_selection=head.get("model_selection", ""), batch=head.get("batch") or "",
                  gate_lr=head.get("gate_lr") or "", domain_stats=head.get("domain_stats") or "",
                  source_val=float(head["source_val"]) if head.get("source_val") else None,
                  hparams=head.get("hparams") or "", steps=_optional(head.get("steps"), int),
                  time_s=_optional(head.get("time_s"), float))
        if run.status == "ok" and run.transfer and run.target_accuracy() is None:
            raise DabinError(f"{path}: line {run.line}: ok run {key!r} ({run.method} {run.norm} {run.task} seed "
                             f"{run.seed}) has no row for its target domain {run.target!r}")
        # Two folders for one (method, norm, place, seed) would be counted as two seeds of one cell.
        identity = (run.method, run.norm, domain_key(run.source), domain_key(run.target), run.fold, run.seed,
                    run.hparams)
        if identity in identities:
            raise DabinError(f"{path}: line {run.line}: run {key!r} repeats run {identities[identity].key!r} of "
                             f"line {identities[identity].line} ({run.method} {run.norm} {run.place} seed {run.seed})")
        identities[identity] = run
        result.append(run)
    return result
