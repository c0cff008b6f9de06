"""The learned mixtures per layer and network stage: BIN gates (the paper's Figure 2) and Switchable Norm's weights.

Figure 2 of Nam & Kim (2018) shows the distribution of ``ρ`` in the lower, middle and upper
layers of a ResNet: lower layers send more channels to IN (ρ near 0) than upper ones. For a
ResNet the levels are the stem and ``layer1`` (lower), ``layer2``-``layer3`` (middle) and
``layer4`` (upper); for any other network the layers are split in thirds by depth.

Domain-specific BIN (``dsbin``) has a second gate per channel, the target's ρ_t
(:data:`~dabin.nn.domain_stats.TARGET_GATE`): the gate table then has a ``target_gate`` column.
Under domain generalization (DSON's branches, :func:`~dabin.nn.domain_stats.domain_slots`) each
training domain's branch has its gate: ``gate`` is branch 0's and ``domain1_gate``, ``domain2_gate``,
... the others' (branch ``i`` trains on dataset domain ``branch_domains[i]``, the model's recorded
configuration).
Switchable Norm (Luo et al., 2019) learns, per layer, the softmaxed weights ``w`` (means) and
``w'`` (variances) over IN, LN and BN statistics: :func:`switch_table` lists them.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from dabin.errors import DabinError
from dabin.io import atomic_open
from dabin.nn.bin import _BatchInstanceNorm
from dabin.nn.domain_stats import TARGET_GATE, is_slot_gate_name
from dabin.nn.switchable import SWITCH_ORDER, SwitchNorm2d

__all__ = ["GATE_COLUMNS", "LEVELS", "SWITCH_COLUMNS", "TARGET_GATE_COLUMN", "gate_summary", "gate_table",
           "plot_gate_histogram", "read_gate_csv", "read_switch_csv", "switch_table", "write_gate_csv",
           "write_switch_csv"]

GATE_COLUMNS = ("layer", "stage", "level", "depth", "channel", "gate")
#: The optional column of a domain-specific BIN model's gate table: the target's gate ρ_t.
TARGET_GATE_COLUMN = TARGET_GATE
#: One row per Switchable Norm layer and statistic (``mean``: w, ``var``: w'), a weight per normalizer.
SWITCH_COLUMNS = ("layer", "stage", "level", "depth", "statistic", *SWITCH_ORDER)
LEVELS = ("lower", "middle", "upper")
_RESNET_LEVELS = {"stem": "lower", "layer1": "lower", "layer2": "middle", "layer3": "middle", "layer4": "upper"}
_STAGE = re.compile(r"(?:^|\.)(layer\d+)(?:\.|$)")


def gate_table(model: nn.Module) -> list[dict[str, Any]]:
    """One row per channel of every BIN layer (learned or fixed gates).

    Args:
        model: Any module holding BIN layers (a backbone, or a LightningModule around one).

    Returns:
        Rows with :data:`GATE_COLUMNS`: ``layer`` (qualified name), ``stage`` (``stem``,
        ``layer1``..``layer4`` for ResNets, else the name's first part), ``level``
        (lower/middle/upper), ``depth`` (order of the layer in the network), ``channel``, ``gate``;
        and a column per further gate of a domain-specific BIN layer, named as its parameter:
        :data:`TARGET_GATE_COLUMN` (source -> target) or ``domain1_gate``, ... (DSON's branches).
    """
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, _BatchInstanceNorm)]
    rows: list[dict[str, Any]] = []
    for depth, ((name, layer), (stage, level)) in enumerate(zip(layers, _levels([name for name, _ in layers]))):
        slots = {key: gate.detach().float().cpu().tolist() for key, gate in layer.named_parameters(recurse=False)
                 if is_slot_gate_name(key)}
        for channel, value in enumerate(layer.gate.detach().float().cpu().tolist()):
            row = {"layer": name, "stage": stage, "level": level, "depth": depth, "channel": channel,
                   "gate": float(value)}
            rows.append(row | {key: float(values[channel]) for key, values in slots.items()})
    return rows


def _slot_columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The further gate columns of ``rows`` (domain-specific BIN), in the order they first appear."""
    return list(dict.fromkeys(key for row in rows for key in row if is_slot_gate_name(key)))


def switch_table(model: nn.Module) -> list[dict[str, Any]]:
    """Two rows per Switchable Norm layer: the softmaxed weights of its means and of its variances.

    Args:
        model: Any module holding :class:`~dabin.nn.switchable.SwitchNorm2d` layers.

    Returns:
        Rows with :data:`SWITCH_COLUMNS`: ``layer``, ``stage``, ``level``, ``depth`` as in
        :func:`gate_table`, ``statistic`` (``mean``: w, ``var``: w'), and the weight of each of
        IN, LN, BN (each row sums to 1).
    """
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, SwitchNorm2d)]
    rows: list[dict[str, Any]] = []
    for depth, ((name, layer), (stage, level)) in enumerate(zip(layers, _levels([name for name, _ in layers]))):
        for statistic, weights in zip(("mean", "var"), layer.switch_weights()):
            rows.append({"layer": name, "stage": stage, "level": level, "depth": depth, "statistic": statistic,
                         **dict(zip(SWITCH_ORDER, (float(w) for w in weights.detach().cpu().tolist())))})
    return rows


def _levels(names: Sequence[str]) -> list[tuple[str, str]]:
    """``(stage, level)`` of each layer, in network order (module docstring)."""
    stages = [_stage(name) for name in names]
    if any(stage.startswith("layer") for stage in stages):  # a ResNet
        return [(stage, _RESNET_LEVELS.get(stage, "upper" if stage.startswith("layer") else "lower"))
                for stage in stages]
    return [(stage, LEVELS[min(2, 3 * depth // max(1, len(stages)))]) for depth, stage in enumerate(stages)]


def _stage(name: str) -> str:
    match = _STAGE.search(name)
    if match:
        return match.group(1)
    last = name.rsplit(".", 1)[-1]
    # A ResNet's stem norm is its top-level bn1, possibly inside a wrapper ("backbone.bn1").
    return "stem" if last == "bn1" else name.split(".", 1)[0]


def gate_summary(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-layer summary: channels, mean gate and the share of channels near IN / near BN.

    Args:
        rows: Rows of :func:`gate_table` (or :func:`read_gate_csv`).

    Returns:
        One row per layer, in depth order: layer, stage, level, channels, mean, min, max,
        ``near_in`` (share with ρ < 0.1) and ``near_bn`` (share with ρ > 0.9).
    """
    by_layer: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_layer.setdefault(str(row["layer"]), []).append(row)
    summary = []
    for layer, items in sorted(by_layer.items(), key=lambda kv: int(kv[1][0]["depth"])):
        gates = [float(r["gate"]) for r in items]
        summary.append({
            "layer": layer, "stage": items[0]["stage"], "level": items[0]["level"], "channels": len(gates),
            "mean": sum(gates) / len(gates), "min": min(gates), "max": max(gates),
            "near_in": sum(g < 0.1 for g in gates) / len(gates),
            "near_bn": sum(g > 0.9 for g in gates) / len(gates),
        })
    return summary


def write_gate_csv(model_or_rows: nn.Module | Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write the gate table as CSV (atomically); returns the number of rows.

    The further gate columns (:data:`TARGET_GATE_COLUMN`, ``domain1_gate``, ...) are written when
    any row has them (domain-specific BIN).
    """
    rows = gate_table(model_or_rows) if isinstance(model_or_rows, nn.Module) else list(model_or_rows)
    _write_csv(rows, (*GATE_COLUMNS, *_slot_columns(rows)), path)
    return len(rows)


def read_gate_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a gate table written by :func:`write_gate_csv` (numbers parsed; further gates where given)."""
    def parse(row: dict[str, Any]) -> dict[str, Any]:
        slots = {key for key in row if is_slot_gate_name(key)}
        parsed = {key: value for key, value in row.items() if key not in slots}
        return {**parsed, "depth": int(row["depth"]), "channel": int(row["channel"]), "gate": float(row["gate"]),
                **{key: float(row[key]) for key in slots if row[key]}}

    return _read_csv(path, GATE_COLUMNS, "gate table", parse)


def write_switch_csv(model_or_rows: nn.Module | Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> int:
    """Write :func:`switch_table` as CSV (atomically); returns the number of rows."""
    rows = switch_table(model_or_rows) if isinstance(model_or_rows, nn.Module) else list(model_or_rows)
    _write_csv(rows, SWITCH_COLUMNS, path)
    return len(rows)


def read_switch_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a table written by :func:`write_switch_csv` (numbers parsed)."""
    return _read_csv(path, SWITCH_COLUMNS, "Switchable Norm weight table",
                     lambda row: {**row, "depth": int(row["depth"]), **{n: float(row[n]) for n in SWITCH_ORDER}})


def _read_csv(path: str | os.PathLike[str], columns: Sequence[str], what: str,
              parse: Callable[[dict[str, Any]], dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a CSV with at least ``columns``, each through ``parse``; one clear error for anything else."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not set(columns) <= set(reader.fieldnames):
            raise DabinError(f"{path}: not a {what}; expected columns {', '.join(columns)}")
        try:
            return [parse(row) for row in reader]
        except ValueError as error:
            raise DabinError(f"{path}: bad number in {what} ({error})") from None


def _write_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: str | os.PathLike[str]) -> None:
    with atomic_open(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), restval="")
        writer.writeheader()
        writer.writerows(rows)


def plot_gate_histogram(
    model_or_rows: nn.Module | Sequence[dict[str, Any]],
    path: str | os.PathLike[str],
    title: str = "BIN gate distribution by network level",
    bins: int = 20,
) -> Path:
    """Histogram of gates per level (lower/middle/upper), like the paper's Figure 2, as a PNG.

    Args:
        model_or_rows: A model or rows of :func:`gate_table`.
        path: Output PNG.
        title: Figure title.
        bins: Bins over [0, 1].

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = gate_table(model_or_rows) if isinstance(model_or_rows, nn.Module) else list(model_or_rows)
    if not rows:
        raise DabinError("no BIN gates to plot: the model has no BatchInstanceNorm layer")
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharey=False)
    for ax, level in zip(axes, LEVELS):
        values = [float(r["gate"]) for r in rows if r["level"] == level]
        ax.hist(values, bins=bins, range=(0.0, 1.0), color="#4477aa", edgecolor="white")
        ax.set_title(f"{level} layers (n={len(values)})")
        ax.set_xlabel("gate ρ  (0 = IN, 1 = BN)")
    axes[0].set_ylabel("channels")
    fig.suptitle(title)
    fig.tight_layout()
    target = Path(path)
    with atomic_open(target, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
    return target
