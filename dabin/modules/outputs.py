"""The callback that writes a run's record (:class:`dabin.record.RunRecord`), its BIN gates and Switchable Norm weights.

``metrics.json`` (schema: :mod:`dabin.record`), ``gates.csv`` (every BIN gate at the end of
training, :func:`dabin.analysis.write_gate_csv`) and ``switch_weights.csv``
(:func:`dabin.analysis.write_switch_csv`) are written atomically after testing, so a file
that exists is complete; ``metrics.json`` last, since the sweep reads its presence as "the trainer
finished".
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from dabin.analysis import gate_table, switch_table, write_gate_csv, write_switch_csv
from dabin.nn import gate_parameters
from dabin.modules.base import DomainModule
from dabin.modules.generalization import GeneralizationModule
from dabin.modules.transfer import TransferModule
from dabin.record import GATES, SWITCH_WEIGHTS, BatchRecord, GateLrRecord, RunRecord, SourceVal, TestResult
from datamodules import DomainDataModule, GeneralizationDataModule, KFoldDataModule, TransferDataModule

__all__ = ["MODEL_SELECTION", "RunSummary", "batch_record", "gate_lr_record"]

#: The model-selection rule of every dabin run: no target label ever chooses a checkpoint.
MODEL_SELECTION = "last checkpoint (no selection on target labels)"


def batch_record(trainer: pl.Trainer, pl_module: pl.LightningModule) -> BatchRecord | None:
    """The batch one optimizer step sees: per device × devices × accumulation (None if unknown).

    Under DDP every process draws its own ``batch_size`` (per domain, for transfer), so the
    recipe's batch holds on one device only; this records what a run really used.
    """
    datamodule = trainer.datamodule
    if not isinstance(datamodule, DomainDataModule) or not isinstance(pl_module, DomainModule):
        return None
    per_device = pl_module.batch_composition(datamodule.batch_size)
    scale = trainer.world_size * trainer.accumulate_grad_batches
    effective = {kind: count * scale for kind, count in per_device.items()}
    return BatchRecord(per_device=per_device, devices=trainer.world_size,
                       accumulate_grad_batches=trainer.accumulate_grad_batches, effective=effective,
                       effective_images=sum(effective.values()))


def gate_lr_record(trainer: pl.Trainer, pl_module: pl.LightningModule) -> GateLrRecord | None:
    """What the gates' learning rate was: the multiplier, what it multiplies, the initial rates."""
    if not isinstance(pl_module, DomainModule) or not gate_parameters(pl_module):
        return None
    gate_ids = {id(p) for p in gate_parameters(pl_module)}
    rates = sorted({group.get("initial_lr", group["lr"]) for optimizer in trainer.optimizers
                    for group in optimizer.param_groups if any(id(p) in gate_ids for p in group["params"])})
    return GateLrRecord(mult=pl_module.hparams.gate_lr_mult, of=pl_module.hparams.gate_lr_base, initial_lr=rates)


class RunSummary(pl.Callback):
    """Write ``metrics.json`` (and ``gates.csv`` / ``switch_weights.csv`` for models with BIN / Switchable Norm layers) after testing.

    Args:
        config: The run's configuration (as the CLI parsed it), stored in ``metrics.json``.
        seed: The run's seed.
    """

    def __init__(self, config: dict[str, Any] | None = None, seed: int | None = None) -> None:
        self.config = config or {}
        self.seed = seed
        self._fit_started: float | None = None
        self.fit_seconds = 0.0
        self._test_started: float | None = None
        self.source_val: SourceVal | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A transfer run validates on the source's validation split only (a mixed run validates on
        # its test fold, which is not recorded as validation).
        if trainer.sanity_checking or not isinstance(trainer.datamodule, TransferDataModule):
            return
        value = trainer.callback_metrics.get("val/acc/avg")
        if value is not None:
            self.source_val = SourceVal(accuracy=round(float(value), 4), step=trainer.global_step)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_started = time.monotonic()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._fit_started is not None:
            self.fit_seconds += time.monotonic() - self._fit_started

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._test_started = time.monotonic()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        test_seconds = time.monotonic() - self._test_started if self._test_started is not None else None
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        if not isinstance(pl_module, DomainModule):
            return
        results = pl_module.test_results
        if not results:
            return
        folder = Path(trainer.default_root_dir)
        datamodule = trainer.datamodule
        # Both name a source (or the training domains, joined) and a target (or the held-out domain).
        paired = isinstance(datamodule, (TransferDataModule, GeneralizationDataModule))
        timed = isinstance(pl_module, (TransferModule, GeneralizationModule))
        accuracies = [float(entry["accuracy"]) for entry in results.values()]
        record = RunRecord(
            test={name: TestResult.from_json(name, entry) for name, entry in results.items()},
            average=sum(accuracies) / len(accuracies) if all(map(math.isfinite, accuracies)) else math.nan,
            model_selection=MODEL_SELECTION,
            method=pl_module.method_name,
            domain_stats=pl_module.domain_stats,
            norm=pl_module.hparams.get("norm"),
            num_classes=pl_module.num_classes,
            source=datamodule.source_name if paired else None,
            target=datamodule.target_name if paired else None,
            fold=datamodule.fold if isinstance(datamodule, KFoldDataModule) else None,
            seed=self.seed,
            steps=trainer.global_step,
            time_s=round(self.fit_seconds, 2),
            evaluation_s=round(pl_module.evaluation_seconds, 2) if timed else None,
            test_s=round(test_seconds, 2) if test_seconds is not None else None,
            batch=batch_record(trainer, pl_module),
            gate_lr=gate_lr_record(trainer, pl_module),
            source_val=self.source_val,
            evaluation_points=tuple(pl_module.evaluation_records) if isinstance(pl_module, TransferModule) else (),
            accuracy_points=tuple(pl_module.accuracy_records) if isinstance(pl_module, GeneralizationModule) else (),
            config=self.config,
        )
        if gate_table(pl_module):
            write_gate_csv(pl_module, folder / GATES)
        if switch_table(pl_module):
            write_switch_csv(pl_module, folder / SWITCH_WEIGHTS)
        # metrics.json last: the sweep reads its presence as "the trainer finished".
        record.write(folder)
