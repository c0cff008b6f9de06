"""Sweeps: many training runs from one spec, resumable, with a results table (``dabin sweep``).

What a sweep leaves, and how it is read, is :mod:`dabin.record`'s; the report reads that, never this package.
"""

from dabin.sweep.job import Job, expand_jobs, job_command, planned
from dabin.sweep.launchers import LAUNCHERS, make_launcher
from dabin.sweep.running import Outcome
from dabin.sweep.spec import SweepSpec, load_spec, narrow, resolve_task

__all__ = [
    "LAUNCHERS",
    "Job",
    "Outcome",
    "SweepSpec",
    "expand_jobs",
    "job_command",
    "load_spec",
    "make_launcher",
    "narrow",
    "planned",
    "resolve_task",
]
