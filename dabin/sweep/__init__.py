"""Sweeps: many training runs from one spec, resumable, with a results table (``dabin sweep``)."""

from dabin.sweep.jobs import Job, Outcome, expand_jobs, job_command, run_state
from dabin.sweep.launchers import LAUNCHERS, make_launcher
from dabin.sweep.results import COLUMNS, collect_results, read_results, write_results
from dabin.sweep.spec import METHODS, SweepSpec, format_task, load_spec, narrow, resolve_task

__all__ = [
    "COLUMNS",
    "LAUNCHERS",
    "METHODS",
    "Job",
    "Outcome",
    "SweepSpec",
    "collect_results",
    "expand_jobs",
    "format_task",
    "job_command",
    "load_spec",
    "make_launcher",
    "narrow",
    "read_results",
    "resolve_task",
    "run_state",
    "write_results",
]
