"""Progress display: Lightning's Rich bar in a terminal, plain log lines elsewhere (CI, sweeps, Slurm).

A progress bar written to a file is a wall of carriage returns; :class:`PlainProgress` prints one
line every ``every_n_steps`` steps and one per validation instead, which reads well in ``log.txt``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, RichProgressBar

__all__ = ["PlainProgress", "progress_callback"]


class PlainProgress(Callback):
    """One line per ``every_n_steps`` training steps (with the logged metrics) and per validation.

    Args:
        every_n_steps: Steps between two lines.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every_n_steps = max(1, every_n_steps)
        self._started = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.monotonic()
        total = pl_module.trainer.estimated_stepping_batches
        print(f"training from step {trainer.global_step} to {total}", flush=True)

    def _line(self, trainer: pl.Trainer, prefix: str) -> str:
        shown = {k: v for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}
        return "  ".join(f"{k}={float(v):.4g}" for k, v in sorted(shown.items()))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every_n_steps == 0 or step == trainer.max_steps:
            elapsed = time.monotonic() - self._started
            print(f"step {step}/{trainer.estimated_stepping_batches} epoch {trainer.current_epoch} "
                  f"{elapsed:.0f}s  {self._line(trainer, 'train/')}", flush=True)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            print(f"validation at step {trainer.global_step}: {self._line(trainer, 'val/')}", flush=True)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        print(f"test: {self._line(trainer, 'test/')}", flush=True)


def progress_callback() -> Callback:
    """Rich progress bar when stdout is a terminal, :class:`PlainProgress` lines otherwise."""
    return RichProgressBar() if sys.stdout.isatty() else PlainProgress()
