"""Mixed-domain classification: per-domain metrics, the step-decay policy, gate clipping."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from dabin.modules import MixedDomainClassifier
from datamodules import KFoldDataModule


def _fit(office_tree: Path, tmp_path: Path, model: MixedDomainClassifier, epochs: int,
         accumulate: int = 1) -> tuple[pl.Trainer, KFoldDataModule]:
    data = KFoldDataModule(root=str(office_tree), k=3, fold=2, image_size=32, batch_size=8, num_workers=0)
    trainer = pl.Trainer(default_root_dir=tmp_path, max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         num_sanity_val_steps=0, accumulate_grad_batches=accumulate)
    pl.seed_everything(0)
    trainer.fit(model, datamodule=data)
    return trainer, data


def test_accuracy_is_logged_per_domain(office_tree: Path, tmp_path: Path) -> None:
    model = MixedDomainClassifier(num_classes=3, small_input=True, width=8)
    trainer, data = _fit(office_tree, tmp_path, model, epochs=1)
    names = ["Art", "Clipart", "Product", "Real World"]
    assert {f"val/acc/{name}" for name in names} <= set(trainer.callback_metrics)
    trainer.test(model, datamodule=data, verbose=False)
    assert list(model.test_results) == names
    for name in names:
        held_out = len(data.held_out(names.index(name)))
        assert model.test_results[name]["n"] == held_out
        assert trainer.callback_metrics[f"test/acc/{name}"] == pytest.approx(model.test_results[name]["accuracy"])
    mean = sum(r["accuracy"] for r in model.test_results.values()) / 4
    assert float(trainer.callback_metrics["test/acc/avg"]) == pytest.approx(mean, rel=1e-5)


def test_lr_drops_tenfold_at_each_milestone_epoch(office_tree: Path, tmp_path: Path) -> None:
    model = MixedDomainClassifier(num_classes=3, small_input=True, width=8, lr=0.1, lr_milestones=[1, 2])
    seen: dict[int, float] = {}

    class Record(pl.Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            seen[trainer.current_epoch] = trainer.optimizers[0].param_groups[0]["lr"]

    data = KFoldDataModule(root=str(office_tree), k=3, fold=0, image_size=32, batch_size=8, num_workers=0)
    pl.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False,
               enable_model_summary=False, limit_val_batches=0, callbacks=[Record()],
               default_root_dir=tmp_path).fit(model, datamodule=data)
    assert [seen[e] for e in range(3)] == pytest.approx([0.1, 0.01, 0.001])


def test_gates_clipped_after_every_step_with_accumulation(office_tree: Path, tmp_path: Path) -> None:
    model = MixedDomainClassifier(num_classes=3, small_input=True, width=8, gate_lr_mult=1e5)
    _fit(office_tree, tmp_path, model, epochs=1, accumulate=2)
    gates = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if n.endswith("gate")])
    assert 0.0 <= gates.min() and gates.max() <= 1.0 and gates.min() < 1.0


def test_fixed_gates_are_not_trained(office_tree: Path, tmp_path: Path) -> None:
    model = MixedDomainClassifier(num_classes=3, norm="bnin", small_input=True, width=8)
    assert not [n for n, _ in model.named_parameters() if n.endswith("gate")]
    _fit(office_tree, tmp_path, model, epochs=1)
    gates = torch.cat([b.flatten() for n, b in model.named_buffers() if n.endswith("gate")])
    assert torch.all(gates == 0.5)
