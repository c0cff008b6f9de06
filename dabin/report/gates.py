"""BIN gates across a sweep: the gate tables of every finished BIN run, pooled per method.

One run's gates are one draw of the training's randomness; pooling all BIN runs of a method (every
task or fold and seed) shows what BIN learns for that method rather than for one seed, which is
what the paper's Figure 2 is about.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from dabin.record import GATES, Run
from dabin.report.inputs import Sweep

__all__ = ["GATES_FILE", "GatePool", "gate_histogram_png", "pool_gates", "stage_summary"]

#: The gate table a BIN run's trainer writes into its run folder.
GATES_FILE = GATES
#: The norm whose gates are learned (``in`` and ``bnin`` have fixed gates: nothing to look at).
_LEARNED = "bin"


@dataclasses.dataclass(frozen=True)
class GatePool:
    """The pooled gates of one method's finished BIN runs.

    Attributes:
        method: The method.
        rows: Rows of every run's gate table (columns of :data:`dabin.analysis.gates.GATE_COLUMNS`).
        runs: Runs whose gate table was read.
        without: Finished BIN runs that have no gate table (e.g. a hand-made results file).
    """

    method: str
    rows: list[dict[str, Any]]
    runs: int
    without: int


def _run_folder(sweep: Sweep, run: Run) -> Path | None:
    # The run column names a folder inside the sweep; anything that could point elsewhere is not one.
    if not run.key or Path(run.key).name != run.key or run.key in (".", ".."):
        return None
    folder = sweep.folder / run.key
    return folder if folder.is_dir() else None


def pool_gates(sweep: Sweep) -> list[GatePool]:
    """Read the gate tables of the sweep's finished BIN runs, per method.

    Args:
        sweep: The checked sweep.

    Returns:
        One pool per method that has finished BIN runs, in order of appearance.

    Raises:
        DabinError: A gate table that is not one (the message names the file).
    """
    from dabin.analysis.gates import read_gate_csv

    pools: dict[str, tuple[list[dict[str, Any]], list[int]]] = {}
    for run in sweep.runs:
        if run.norm != _LEARNED or run.status != "ok":
            continue
        rows, counts = pools.setdefault(run.method, ([], [0, 0]))
        folder = _run_folder(sweep, run)
        if folder is not None and (folder / GATES_FILE).is_file():
            rows += read_gate_csv(folder / GATES_FILE)
            counts[0] += 1
        else:
            counts[1] += 1
    return [GatePool(method, rows, runs, without) for method, (rows, (runs, without)) in pools.items()]


def stage_summary(pool: GatePool) -> list[dict[str, Any]]:
    """Per network stage: level, runs, pooled values, mean/min/max gate and shares near IN and BN.

    Args:
        pool: A method's pooled gates.

    Returns:
        One row per stage in network order, with ``method`` first.
    """
    from dabin.analysis.gates import gate_summary

    # gate_summary groups by layer; a stage's layers pooled over runs are what Figure 2 bins.
    by_stage = gate_summary([{**row, "layer": row["stage"]} for row in pool.rows])
    return [{"method": pool.method, "level": s["level"], "stage": s["layer"], "runs": pool.runs,
             "values": s["channels"], "mean": s["mean"], "min": s["min"], "max": s["max"],
             "near_in": s["near_in"], "near_bn": s["near_bn"]} for s in by_stage]


def gate_histogram_png(pool: GatePool) -> bytes:
    """The paper's Figure 2 for one method's pooled gates, as PNG bytes (nothing written in place).

    Args:
        pool: A method's pooled gates (at least one row).

    Returns:
        The PNG.
    """
    from dabin.analysis.gates import plot_gate_histogram

    # plot_gate_histogram writes a file; the report writes its outputs only once all are made.
    with tempfile.TemporaryDirectory(prefix="dabin-report-") as folder:
        path = Path(folder) / "gates.png"
        plot_gate_histogram(pool.rows, path, title=f"BIN gates, {pool.method} ({pool.runs} runs pooled)")
        return path.read_bytes()
