"""DANN and the source-only baseline: schedules in training, resuming, gates, checkpoints, param groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from dabin.modules import TransferModule, dann_lambda, dann_lr_factor
from datamodules import TransferDataModule


def _data(office_tree: Path) -> TransferDataModule:
    return TransferDataModule(root=str(office_tree), task="Ar->Cl", image_size=32, batch_size=4, num_workers=0,
                              steps_per_epoch=2)


def _model(**overrides: Any) -> DANN:
    # No evaluation points: the tests count the passes training makes (tests/selection has the points).
    options: dict[str, Any] = {"num_classes": 3, "norm": "bin", "small_input": True, "width": 8,
                               "bottleneck_dim": 16, "hidden_dim": 32, "evaluation_points": 0, **overrides}
    return TransferModule(**options)


def _trainer(root: Path, max_steps: int, callbacks: list[pl.Callback]) -> pl.Trainer:
    return pl.Trainer(default_root_dir=root, max_steps=max_steps, max_epochs=-1, accelerator="cpu", devices=1,
                      logger=False, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=callbacks)


class Record(pl.Callback):
    """λ and the heads' learning rate after every step; optionally a checkpoint and a stop at one step."""

    def __init__(self, stop_at: int | None = None, path: Path | None = None) -> None:
        self.seen: dict[int, tuple[float, float]] = {}
        self.stop_at, self.path = stop_at, path

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        lr = trainer.optimizers[0].param_groups[-1]["lr"]
        self.seen[trainer.global_step] = (float(trainer.callback_metrics["train/lambda"]), lr)
        if trainer.global_step == self.stop_at:
            trainer.save_checkpoint(self.path)
            trainer.should_stop = True


def test_schedules_follow_progress_in_training(office_tree: Path, tmp_path: Path) -> None:
    record = Record()
    pl.seed_everything(0)
    _trainer(tmp_path, 8, [record]).fit(_model(), datamodule=_data(office_tree))
    for step in (1, 4, 8):
        lam, lr = record.seen[step]
        # λ was set before step `step` ran (from step - 1); the lr after it is the next step's.
        assert lam == pytest.approx(dann_lambda((step - 1) / 8), rel=1e-6)
        assert lr == pytest.approx(0.01 * dann_lr_factor(step / 8), rel=1e-6)


def test_resumed_run_continues_the_schedules(office_tree: Path, tmp_path: Path) -> None:
    straight = Record()
    pl.seed_everything(0)
    _trainer(tmp_path / "a", 8, [straight]).fit(_model(), datamodule=_data(office_tree))
    ckpt = tmp_path / "mid.ckpt"
    pl.seed_everything(0)
    _trainer(tmp_path / "b", 8, [Record(stop_at=3, path=ckpt)]).fit(_model(), datamodule=_data(office_tree))
    resumed = Record()
    pl.seed_everything(0)
    _trainer(tmp_path / "c", 8, [resumed]).fit(_model(), datamodule=_data(office_tree), ckpt_path=ckpt)
    assert sorted(resumed.seen) == [4, 5, 6, 7, 8]
    for step in resumed.seen:
        assert resumed.seen[step] == pytest.approx(straight.seen[step], rel=1e-9)


def test_gates_stay_in_unit_interval_and_move(office_tree: Path, tmp_path: Path) -> None:
    model = _model(gate_lr_mult=1e4)  # steps large enough to push gates out of [0, 1]
    pl.seed_everything(0)
    _trainer(tmp_path, 6, []).fit(model, datamodule=_data(office_tree))
    gates = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if n.endswith("gate")])
    assert gates.min() >= 0.0 and gates.max() <= 1.0
    assert (gates < 1.0).float().mean() > 0.1  # they did train


def test_checkpoint_reloads_to_identical_predictions(office_tree: Path, tmp_path: Path) -> None:
    model = _model()
    pl.seed_everything(0)
    trainer = _trainer(tmp_path, 4, [])
    trainer.fit(model, datamodule=_data(office_tree))
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    images = torch.randn(5, 3, 32, 32)
    model.eval()
    reloaded = TransferModule.load_from_checkpoint(tmp_path / "last.ckpt").eval()
    with torch.no_grad():
        assert torch.equal(model(images), reloaded(images))


def test_source_only_never_sees_target_images(office_tree: Path, tmp_path: Path) -> None:
    model = _model(adaptation=False)
    seen: list[int] = []
    model.backbone.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[0]))
    _trainer(tmp_path, 2, []).fit(model, datamodule=_data(office_tree))
    assert seen == [4, 4]  # source batches only; DANN would pass 4 + 4
    assert model.adaptation_loss is None and model.method_name == "source_only"


def test_param_groups_pretrained_backbone_at_a_tenth_and_gates_at_ten_times(tmp_path: Path) -> None:
    state = _model(norm="bn", width=64, small_input=False).backbone.state_dict()
    torch.save({f"{k}": v for k, v in state.items()} | {"fc.weight": torch.zeros(1000, 512),
                                                        "fc.bias": torch.zeros(1000)}, tmp_path / "w.pth")
    model = _model(width=64, small_input=False, weights=str(tmp_path / "w.pth"), lr=0.02, weight_decay=1e-3)
    model.trainer = None  # type: ignore[assignment]
    groups = model.configure_optimizers()["optimizer"].param_groups
    by_size = {(round(g["lr"], 6), g["weight_decay"]): sum(p.numel() for p in g["params"]) for g in groups}
    gates = sum(p.numel() for n, p in model.named_parameters() if n.endswith("gate"))
    assert by_size[(0.002, 1e-3)] == sum(p.numel() for p in model.backbone.parameters()) - gates
    assert by_size[(0.02, 0.0)] == gates  # backbone gates: 10 x (lr / 10), no decay
    heads = sum(p.numel() for m in (model.bottleneck, model.classifier, model.adaptation_loss)
                for p in m.parameters())
    assert by_size[(0.02, 1e-3)] == heads


@pytest.mark.parametrize("domain_stats", ["joint", "separate", "domain_specific"])
def test_domain_statistics_passes(domain_stats: str, office_tree: Path, tmp_path: Path) -> None:
    model = _model(domain_stats=domain_stats)
    seen: list[int] = []
    model.backbone.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[0]))
    pl.seed_everything(0)
    _trainer(tmp_path, 2, []).fit(model, datamodule=_data(office_tree))
    # joint: one batch of 4 + 4 per step; separate and domain_specific: a pass per domain.
    assert seen == ([8, 8] if domain_stats == "joint" else [4, 4, 4, 4])
    layer = model.backbone.bn1
    if domain_stats == "domain_specific":
        assert int(layer.num_batches_tracked) == int(layer.target_num_batches_tracked) == 2
        assert not torch.equal(layer.running_mean, layer.target_running_mean)
        torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                    "pytorch-lightning_version": pl.__version__}, tmp_path / "m.ckpt")
        reloaded = TransferModule.load_from_checkpoint(tmp_path / "m.ckpt")  # the target's statistics are saved too
        assert torch.equal(reloaded.backbone.bn1.target_running_mean, layer.target_running_mean)
    else:
        assert not hasattr(layer, "target_running_mean")


def test_domain_specific_statistics_are_used_on_the_target_test_set(office_tree: Path, tmp_path: Path) -> None:
    model = _model(domain_stats="domain_specific")
    pl.seed_everything(0)
    trainer = _trainer(tmp_path, 2, [])
    trainer.fit(model, datamodule=_data(office_tree))
    used: list[bool] = []
    layer = model.backbone.bn1
    target_mean = layer.target_running_mean
    layer.register_forward_pre_hook(lambda module, inputs: used.append(module.running_mean is target_mean))
    trainer.test(model, datamodule=_data(office_tree), verbose=False)
    assert used and all(used)  # the target's test split, with the target's statistics
    assert layer.target_running_mean is target_mean  # swapped back afterwards


@pytest.mark.parametrize(("overrides", "message"), [
    ({"domain_stats": "domain_specific", "method": "source_only"}, "needs target batches"),
    ({"domain_stats": "domain_specific", "target_norm_stats": True}, "use one or the other"),
    ({"domain_stats": "dsbn"}, "unknown domain_stats 'dsbn'"),
])
def test_domain_statistics_contradictions(overrides: dict[str, Any], message: str) -> None:
    from dabin.errors import DabinError

    with pytest.raises(DabinError, match=message):
        _model(**overrides)
