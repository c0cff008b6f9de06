"""The run record's files: every name a run, a sweep or a report writes or reads, defined once.

A run folder (``--trainer.default_root_dir``; in a sweep, one folder per job)::

    job.json       the sweep job's arguments (written by the sweep before the run starts)
    log.txt        the trainer's stdout and stderr (sweep runs)
    metrics.json   the run's result (:class:`dabin.modules.RunSummary`; schema in
                   :mod:`dabin.modules.outputs`), written last and atomically by the trainer
    gates.csv      every BIN gate at the end of training (BIN models)
    done           marker: the sweep checked metrics.json; only this makes a run finished
    failed         marker holding the one-line reason of the last failure

A sweep folder adds ``sweep.json`` (the manifest: spec, fingerprint, job list), ``results.csv``
(an export of the finished runs' records, one row per evaluated domain, plus one row per failed
run) and the report's ``report.md``.
"""

from __future__ import annotations

__all__ = ["DONE", "FAILED", "GATES", "JOB", "LOG", "MANIFEST", "METRICS", "REPORT", "RESULTS"]

JOB = "job.json"
LOG = "log.txt"
METRICS = "metrics.json"
GATES = "gates.csv"
DONE = "done"
FAILED = "failed"
MANIFEST = "sweep.json"
RESULTS = "results.csv"
REPORT = "report.md"
