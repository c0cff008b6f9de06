"""The files of a run folder and of a sweep folder: their names, defined once, and the run's markers.

A run folder (``--trainer.default_root_dir``; in a sweep, one folder per job)::

    job.json       what the run was asked (:class:`~dabin.record.run.Request`) and how the sweep runs
                   it (:class:`~dabin.sweep.job.Job`); written by the sweep before the run starts
    log.txt        the trainer's stdout and stderr (sweep runs)
    metrics.json   what the trainer recorded (:class:`~dabin.record.metrics.RunRecord`), written last
    gates.csv      every BIN gate at the end of training (BIN models; dsbin: each further domain's gate too)
    switch_weights.csv
                   every Switchable Norm layer's weights over IN, LN, BN at the end (switchable models)
    done           marker: the sweep checked metrics.json; only this makes a run finished
    failed         marker holding the one-line reason of the last failure

A sweep folder adds ``sweep.json`` (:class:`~dabin.record.manifest.Manifest`: spec, fingerprint,
the runs it asks for), ``timings.json`` (a demo's phases, :mod:`dabin.record.timings`), ``results.csv`` (:mod:`dabin.record.table`: one row per evaluated domain of
every finished run, one per failed run) and the report's ``report.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

__all__ = ["DONE", "FAILED", "GATES", "JOB", "LOG", "MANIFEST", "METRICS", "REPORT", "RESULTS", "SWITCH_WEIGHTS",
           "TIMINGS", "RunState",
           "failure_reason", "run_state"]

JOB = "job.json"
LOG = "log.txt"
METRICS = "metrics.json"
GATES = "gates.csv"
SWITCH_WEIGHTS = "switch_weights.csv"
DONE = "done"
FAILED = "failed"
MANIFEST = "sweep.json"
RESULTS = "results.csv"
REPORT = "report.md"
TIMINGS = "timings.json"

#: Where a run stands, from its markers: finished (``done``), failed at its last attempt, started, not started.
RunState = Literal["done", "failed", "incomplete", "missing"]


def run_state(run_dir: Path) -> RunState:
    """Where a run stands: ``done``, ``failed`` (last attempt), ``incomplete`` (started) or ``missing``."""
    if (run_dir / DONE).is_file():
        return "done"
    if (run_dir / FAILED).is_file():
        return "failed"
    return "incomplete" if (run_dir / JOB).is_file() else "missing"


def failure_reason(run_dir: Path) -> str:
    """The reason stored in a failed run's marker (empty if none)."""
    try:
        return (run_dir / FAILED).read_text().strip()
    except FileNotFoundError:
        return ""
