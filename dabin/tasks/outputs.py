"""What a run leaves in its folder besides checkpoints and logs: ``metrics.json`` and ``gates.csv``.

``metrics.json`` is the run's result as the sweep and the report read it::

    {"test": {"<evaluated set>": {"accuracy": 63.2, "n": 872}, ...},
     "average": 63.2, "model_selection": "...", "method": "dann", "norm": "bin",
     "source": "Art", "target": "Clipart", "fold": null, "seed": 0, "steps": 10000,
     "time_s": 812.4, "config": {...}}

``gates.csv`` holds the BIN gate of every channel at the end of training
(:func:`dabin.analysis.write_gate_csv`). Both are written atomically after testing, so a file that
exists is complete.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from dabin.analysis import gate_table, write_gate_csv
from dabin.io import atomic_write_text

__all__ = ["MODEL_SELECTION", "RunSummary"]

#: The model-selection rule of every dabin run: no target label ever chooses a checkpoint.
MODEL_SELECTION = "last checkpoint (no selection on target labels)"


def _method(model: pl.LightningModule) -> str:
    adaptation = getattr(model.hparams, "adaptation", None)
    if adaptation is None:
        return "mixed"
    return "dann" if adaptation else "source_only"


class RunSummary(pl.Callback):
    """Write ``metrics.json`` (and ``gates.csv`` for models with BIN layers) after testing.

    Args:
        config: The run's configuration (as the CLI parsed it), stored in ``metrics.json``.
        seed: The run's seed.
    """

    def __init__(self, config: dict[str, Any] | None = None, seed: int | None = None) -> None:
        self.config = config or {}
        self.seed = seed
        self._fit_started: float | None = None
        self.fit_seconds = 0.0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_started = time.monotonic()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._fit_started is not None:
            self.fit_seconds += time.monotonic() - self._fit_started

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        results: dict[str, dict[str, float | int]] = getattr(pl_module, "test_results", {})
        if not results:
            return
        folder = Path(trainer.default_root_dir)
        datamodule = trainer.datamodule
        accuracies = [float(entry["accuracy"]) for entry in results.values()]
        summary = {
            "test": results,
            "average": sum(accuracies) / len(accuracies) if all(map(math.isfinite, accuracies)) else math.nan,
            "model_selection": MODEL_SELECTION,
            "method": _method(pl_module),
            "norm": getattr(pl_module.hparams, "norm", None),
            "num_classes": getattr(pl_module, "num_classes", None),
            "source": getattr(datamodule, "source_name", None),
            "target": getattr(datamodule, "target_name", None),
            "fold": getattr(datamodule, "fold", None),
            "seed": self.seed,
            "steps": trainer.global_step,
            "time_s": round(self.fit_seconds, 2),
            "config": self.config,
        }
        if gate_table(pl_module):
            write_gate_csv(pl_module, folder / "gates.csv")
        # metrics.json last: the sweep reads its presence as "the trainer finished".
        atomic_write_text(folder / "metrics.json", json.dumps(summary, indent=1, default=str) + "\n")
