"""The run record, defined once: what a run leaves behind, what a sweep folder holds, and how both are read.

- :mod:`dabin.record.files`: the names of a run folder's and a sweep folder's files; a run's markers.
- :mod:`dabin.record.metrics`: ``metrics.json``, what the trainer records (:class:`RunRecord`).
- :mod:`dabin.record.run`: the run record (:class:`Run`): what was asked (:class:`Request`), where
  the run stands, what it measured; read from a run folder.
- :mod:`dabin.record.table`: ``results.csv``, the flat view of the runs, and runs rebuilt from it.
- :mod:`dabin.record.manifest`: ``sweep.json``, the runs a sweep folder is for.
- :mod:`dabin.record.timings`: ``timings.json``, where a demo's time went.

The trainer and the sweep write these files; ``results.csv`` and the report read runs through this
package and nothing of the sweep.
"""

from dabin.record.files import (DONE, FAILED, GATES, JOB, LOG, MANIFEST, METRICS, REPORT, RESULTS, SWITCH_WEIGHTS,
                                TIMINGS, RunState, failure_reason, run_state)
from dabin.record.manifest import Manifest
from dabin.record.metrics import (LEGACY_MIXVAL, AccuracyPoint, BatchRecord, EvaluationPoint, GateLrRecord,
                                  PerClass, RecordError, RunRecord, SourceVal, TestResult)
from dabin.record.run import Request, Run, RunStatus, Scalar, format_hparams, hparam_text, read_runs
from dabin.record.table import COLUMNS, OPTIONAL_COLUMNS, read_results, result_rows, runs_from_rows, write_results
from dabin.record.timings import PHASES, Timings

__all__ = [
    "COLUMNS",
    "DONE",
    "FAILED",
    "GATES",
    "JOB",
    "LEGACY_MIXVAL",
    "LOG",
    "MANIFEST",
    "METRICS",
    "OPTIONAL_COLUMNS",
    "REPORT",
    "PHASES",
    "RESULTS",
    "SWITCH_WEIGHTS",
    "TIMINGS",
    "AccuracyPoint",
    "BatchRecord",
    "EvaluationPoint",
    "GateLrRecord",
    "Manifest",
    "PerClass",
    "RecordError",
    "Request",
    "Run",
    "RunRecord",
    "RunState",
    "RunStatus",
    "Scalar",
    "SourceVal",
    "TestResult",
    "Timings",
    "failure_reason",
    "format_hparams",
    "hparam_text",
    "read_results",
    "read_runs",
    "result_rows",
    "run_state",
    "runs_from_rows",
    "write_results",
]
