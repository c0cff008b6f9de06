"""Hand-made sweep folders: a results.csv (and optionally sweep.json, run folders) written by the test."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dabin.cli import main
from dabin.record import COLUMNS


def transfer(method: str, norm: str, source: str, target: str, seed: int, accuracy: float | None = None,
             status: str = "ok", reason: str = "", task: str | None = None, **extra: Any) -> dict[str, Any]:
    """One results.csv row of a transfer run (its target-test row)."""
    task = task or f"{source[:2]}→{target[:2]}"
    row = {"run": f"{method}_{norm}_{source[:2]}-{target[:2]}_s{seed}", "method": method, "norm": norm, "task": task,
           "source": source, "target": target, "seed": seed, "fold": "", "domain": target,
           "accuracy": "" if accuracy is None else accuracy, "n": 50 if status == "ok" else "", "status": status,
           "reason": reason, "steps": 3 if status == "ok" else "", "time_s": "",
           "model_selection": "last checkpoint" if status == "ok" else ""}
    return {**row, **extra}


def mixed(norm: str, fold: int, seed: int, accuracies: dict[str, float | None], status: str = "ok",
          reason: str = "") -> list[dict[str, Any]]:
    """The results.csv rows of a mixed-domain run (one per domain)."""
    return [{"run": f"mixed_{norm}_f{fold}_s{seed}", "method": "mixed", "norm": norm, "task": "", "source": "",
             "target": "", "seed": seed, "fold": fold, "domain": domain, "accuracy": "" if acc is None else acc,
             "n": 40 if status == "ok" else "", "status": status, "reason": reason, "steps": "", "time_s": "",
             "model_selection": "last checkpoint" if status == "ok" else ""}
            for domain, acc in accuracies.items()]


def write_sweep(folder: Path, rows: Sequence[dict[str, Any]], manifest: dict[str, Any] | None = None,
                columns: Sequence[str] = COLUMNS) -> Path:
    """Write ``folder/results.csv`` (and ``sweep.json`` if given); returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    if manifest is not None:
        (folder / "sweep.json").write_text(json.dumps(manifest))
    return folder


def report(*argv: str) -> int:
    """``dabin report ...`` in-process; returns its exit status."""
    return main(["report", *argv])
