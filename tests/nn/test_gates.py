"""Gate training: parameter groups (Section 4) and the clip of eq. (4) under Lightning."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dabin.errors import DabinError
from dabin.nn import BatchInstanceNorm2d, GateClamp, bin_param_groups, clamp_gates_, gate_parameters, norm_layer


def _net(norm: str = "bin") -> nn.Module:
    make = norm_layer(norm)  # type: ignore[arg-type]
    return nn.Sequential(nn.Conv2d(3, 4, 3), make(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def test_param_groups_split_gates_with_lr_mult_and_no_decay():
    net = _net()
    head = list(net[5].parameters())
    body = [p for p in net.parameters() if all(p is not q for q in head)]
    groups = bin_param_groups(net, [{"params": body, "lr": 0.001}, {"params": head}], lr=0.01, weight_decay=5e-4)
    gate = net[1].gate
    by_gate = [g for g in groups if any(p is gate for p in g["params"])]
    assert len(by_gate) == 1 and by_gate[0]["params"] == [gate]
    assert by_gate[0]["lr"] == 0.001 * 10 and by_gate[0]["weight_decay"] == 0.0
    others = [g for g in groups if g is not by_gate[0]]
    assert [g["lr"] for g in others] == [0.001, 0.01]
    assert all(g["weight_decay"] == 5e-4 for g in others)
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    torch.optim.SGD(groups, lr=0.01)  # valid for an optimizer


def test_gate_rate_of_the_group_or_of_the_base_rate():
    net = _net()
    head = list(net[5].parameters())
    body = [p for p in net.parameters() if all(p is not q for q in head)]
    gate = net[1].gate

    def gate_lr(base: str) -> float:
        groups = bin_param_groups(net, [{"params": body, "lr": 0.001}, {"params": head}], lr=0.01,
                                  gate_lr_base=base)  # type: ignore[arg-type]
        return next(g["lr"] for g in groups if any(p is gate for p in g["params"]))

    assert gate_lr("group") == pytest.approx(0.001 * 10)  # x10 of the backbone's own 1/10 rate
    assert gate_lr("base") == pytest.approx(0.01 * 10)  # x10 of the base rate
    with pytest.raises(DabinError, match="unknown gate_lr_base 'heads'"):
        gate_lr("heads")


def test_default_single_group_and_custom_mult():
    net = _net()
    groups = bin_param_groups(net, lr=0.1, gate_lr_mult=3.0)
    assert [g["lr"] for g in groups] == [0.1, 0.1 * 3.0]


def test_clamp_gates_in_place():
    net = _net()
    with torch.no_grad():
        net[1].gate.copy_(torch.tensor([-1.0, 0.5, 2.0, 1.0]))
    clamp_gates_(net)
    assert net[1].gate.tolist() == [0.0, 0.5, 1.0, 1.0]


class _Module(pl.LightningModule):
    def __init__(self, norm: str = "bin", two_optimizers: bool = False) -> None:
        super().__init__()
        self.net = _net(norm)
        self.two_optimizers = two_optimizers
        self.automatic_optimization = not two_optimizers
        self.gate_history: list[torch.Tensor] = []

    def _loss(self, batch):
        x, y = batch
        # A huge push on the gates: without the clip they would leave [0, 1] at once.
        return nn.functional.cross_entropy(self.net(x), y) + 1e3 * sum(g.sum() for g in gate_parameters(self)) * (
            -1 if self.global_step % 2 else 1)

    def training_step(self, batch, batch_idx):
        if not self.two_optimizers:
            return self._loss(batch)
        for opt in self.optimizers():
            opt.zero_grad()
            self.manual_backward(self._loss(batch))
            opt.step()
            self.gate_history.append(torch.cat([g.detach().clone() for g in gate_parameters(self)]))
        return None

    def configure_optimizers(self):
        groups = bin_param_groups(self, lr=1.0)
        if self.two_optimizers:
            return torch.optim.SGD(groups[:1], lr=1.0), torch.optim.SGD(groups[1:], lr=1.0)
        return torch.optim.SGD(groups, lr=1.0)


def _fit(module: pl.LightningModule, **trainer_args) -> None:
    data = TensorDataset(torch.randn(16, 3, 8, 8), torch.randint(0, 2, (16,)))
    trainer = pl.Trainer(max_steps=4, callbacks=[GateClamp()], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", **trainer_args)
    trainer.fit(module, DataLoader(data, batch_size=4))


def test_gates_stay_in_unit_interval_during_training():
    module = _Module()
    _fit(module)
    gates = torch.cat([g.detach() for g in gate_parameters(module)])
    assert gates.min() >= 0 and gates.max() <= 1
    assert ((gates == 0) | (gates == 1)).any()  # the push was big enough to need the clip


def test_clamp_after_every_step_with_accumulation_and_two_optimizers():
    module = _Module()
    _fit(module, accumulate_grad_batches=2)
    gates = torch.cat([g.detach() for g in gate_parameters(module)])
    assert gates.min() >= 0 and gates.max() <= 1
    module = _Module(two_optimizers=True)
    _fit(module)
    assert module.gate_history and all(h.min() >= 0 and h.max() <= 1 for h in module.gate_history)


def test_fixed_gates_never_move():
    module = _Module(norm="bnin")
    layer = module.net[1]
    assert isinstance(layer, BatchInstanceNorm2d) and not layer.learn_gate
    before = layer.gate.clone()
    _fit(module)
    assert torch.equal(layer.gate, before)
