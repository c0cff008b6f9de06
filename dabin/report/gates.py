"""Learned mixtures across a sweep: the gate tables of every finished BIN run, pooled per method.

One run's gates are one draw of the training's randomness; pooling all BIN runs of a method (every
task or fold and seed) shows what BIN learns for that method rather than for one seed, which is
what the paper's Figure 2 is about. The same pooling serves domain-specific BIN (``dsbin``: a
source and a target gate per channel) and Switchable Norm (``switchable``: its weights over IN,
LN and BN statistics, ``switch_weights.csv``).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dabin.record import GATES, SWITCH_WEIGHTS, Run
from dabin.report.inputs import Sweep

__all__ = ["GATES_FILE", "GatePool", "gate_histogram_png", "pool_gates", "pool_switch_weights", "stage_summary",
           "switch_summary", "target_gate_summary"]

#: The gate table a BIN run's trainer writes into its run folder.
GATES_FILE = GATES
#: The norm whose gates are learned (``in`` and ``bnin`` have fixed gates: nothing to look at).
_LEARNED = "bin"


@dataclasses.dataclass(frozen=True)
class GatePool:
    """The pooled tables of one method's finished runs of one norm (gates, or Switchable Norm's weights).

    Attributes:
        method: The method.
        rows: Rows of every run's table (:data:`dabin.analysis.gates.GATE_COLUMNS`, or
            :data:`~dabin.analysis.gates.SWITCH_COLUMNS` for Switchable Norm).
        runs: Runs whose table was read.
        without: Finished runs that have no table (e.g. a hand-made results file).
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


def pool_gates(sweep: Sweep, norm: str = _LEARNED) -> list[GatePool]:
    """Read the gate tables of the sweep's finished runs of ``norm`` (``bin`` or ``dsbin``), per method.

    Args:
        sweep: The checked sweep.
        norm: The norm whose runs are pooled.

    Returns:
        One pool per method that has finished runs of ``norm``, in order of appearance.

    Raises:
        DabinError: A gate table that is not one (the message names the file).
    """
    from dabin.analysis.gates import read_gate_csv

    return _pool(sweep, norm, GATES_FILE, read_gate_csv)


def pool_switch_weights(sweep: Sweep) -> list[GatePool]:
    """Read the Switchable Norm weight tables of the sweep's finished ``switchable`` runs, per method.

    Raises:
        DabinError: A table that is not one (the message names the file).
    """
    from dabin.analysis.gates import read_switch_csv

    return _pool(sweep, "switchable", SWITCH_WEIGHTS, read_switch_csv)


def _pool(sweep: Sweep, norm: str, file: str, read: Callable[[Path], list[dict[str, Any]]]) -> list[GatePool]:
    pools: dict[str, tuple[list[dict[str, Any]], list[int]]] = {}
    for run in sweep.runs:
        if run.norm != norm or run.status != "ok":
            continue
        rows, counts = pools.setdefault(run.method, ([], [0, 0]))
        folder = _run_folder(sweep, run)
        if folder is not None and (folder / file).is_file():
            rows += read(folder / file)
            counts[0] += 1
        else:
            counts[1] += 1
    return [GatePool(method, rows, runs, without) for method, (rows, (runs, without)) in pools.items()]


def target_gate_summary(pool: GatePool) -> list[dict[str, Any]]:
    """Per network stage of a domain-specific BIN pool: the source and the target gates side by side.

    Args:
        pool: A method's pooled ``dsbin`` gates (rows with a ``target_gate``; others are skipped).

    Returns:
        One row per stage in network order: method, level, stage, runs, values, mean source gate
        ρ_s, mean target gate ρ_t, mean |ρ_s − ρ_t|, and the target gates' shares near IN and BN.
    """
    from dabin.analysis.gates import TARGET_GATE_COLUMN

    summary = []
    for stage, rows in _by_stage(r for r in pool.rows if TARGET_GATE_COLUMN in r).items():
        source = [float(r["gate"]) for r in rows]
        target = [float(r[TARGET_GATE_COLUMN]) for r in rows]
        n = len(rows)
        summary.append({"method": pool.method, "level": rows[0]["level"], "stage": stage, "runs": pool.runs,
                        "values": n, "source_mean": sum(source) / n, "target_mean": sum(target) / n,
                        "mean_abs_difference": sum(abs(s - t) for s, t in zip(source, target)) / n,
                        "target_near_in": sum(t < 0.1 for t in target) / n,
                        "target_near_bn": sum(t > 0.9 for t in target) / n})
    return summary


def switch_summary(pool: GatePool) -> list[dict[str, Any]]:
    """Per network stage of a Switchable Norm pool: the mean weight of IN, LN and BN, for means and variances.

    Args:
        pool: A method's pooled Switchable Norm weights.

    Returns:
        One row per stage in network order: method, level, stage, runs, layers (layer × run), and
        ``mean_in``, ``mean_ln``, ``mean_bn`` (w), ``var_in``, ``var_ln``, ``var_bn`` (w').
    """
    from dabin.nn.switchable import SWITCH_ORDER

    summary = []
    for stage, rows in _by_stage(pool.rows).items():
        statistics: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            statistics.setdefault(str(row["statistic"]), []).append(row)
        first = next(iter(statistics.values()))
        entry: dict[str, Any] = {"method": pool.method, "level": first[0]["level"], "stage": stage,
                                 "runs": pool.runs, "layers": len(first)}
        for statistic in ("mean", "var"):
            rows = statistics.get(statistic, [])
            for name in SWITCH_ORDER:
                entry[f"{statistic}_{name}"] = sum(float(r[name]) for r in rows) / len(rows) if rows else float("nan")
        summary.append(entry)
    return summary


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


def _by_stage(rows: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by network stage, stages and rows in network (depth) order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: int(r["depth"])):
        grouped.setdefault(str(row["stage"]), []).append(row)
    return grouped


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
