"""The normalization lab through the norm switch, the builders and the transfer module.

The layers themselves are checked against float64 transcriptions of their references in tests/nn;
here: every name builds, loads BN weights, trains and evaluates; each norm gets what it needs from
the training (TransNorm the source/target split, dsbin its per-domain passes), and what cannot
work is refused in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from dabin.errors import DabinError
from dabin.models import build_backbone, resnet18
from dabin.modules import MixedDomainClassifier, TransferModule
from dabin.nn import (IBN, NORMS, MixStyle, SwitchNorm2d, TransNorm2d, convert_layer, convert_norm, target_gates,
                      target_stats)
from datamodules import TransferDataModule

LAB = ("dsbin", "switchable", "transnorm", "ibn_a", "ibn_b", "mixstyle")


@pytest.mark.parametrize("norm", NORMS)
def test_every_norm_builds_from_bn_weights_and_runs(norm: str, tmp_path: Path) -> None:
    bn = resnet18(norm="bn", width=8, small_input=True, num_classes=5)
    torch.save(bn.state_dict(), tmp_path / "bn.pt")
    model = resnet18(norm=norm, width=8, small_input=True, num_classes=5, weights=tmp_path / "bn.pt")
    # The BatchNorm weights reached every layer that has them (IBN-b's stem IN takes the affine only).
    state = model.state_dict()
    for key, value in bn.state_dict().items():
        if key in state and not key.startswith("fc."):
            torch.testing.assert_close(state[key], value)
    x = torch.randn(4, 3, 32, 32)
    model.train()
    assert torch.isfinite(model(x)).all()
    model.eval()
    assert model(x).shape == (4, 5)


def test_the_lab_layers_sit_where_their_names_say() -> None:
    kinds = {norm: {type(m) for m in resnet18(norm=norm, width=8, small_input=True).modules()} for norm in LAB}
    assert SwitchNorm2d in kinds["switchable"] and TransNorm2d in kinds["transnorm"]
    assert IBN in kinds["ibn_a"] and nn.InstanceNorm2d in kinds["ibn_b"]
    assert MixStyle in kinds["mixstyle"] and nn.BatchNorm2d in kinds["mixstyle"]
    model = resnet18(norm="ibn_a", width=8, small_input=True)
    assert [n for n, m in model.named_modules() if isinstance(m, IBN)] == [
        f"layer{s}.{b}.bn1" for s in (1, 2, 3) for b in (0, 1)]


def test_convert_norm_on_another_resnet_and_what_it_refuses() -> None:
    import torchvision

    model = convert_norm(torchvision.models.resnet34(), "ibn_a")
    assert sum(isinstance(m, IBN) for m in model.modules()) == 3 + 4 + 6  # bn1 of every block of layer1-3
    assert not any(isinstance(m, IBN) for m in model.layer4.modules())
    assert isinstance(build_backbone("resnet34", norm="switchable").layer2[0].bn2, SwitchNorm2d)
    with pytest.raises(DabinError, match="norm 'ibn_b' is built into dabin's resnet18 only"):
        build_backbone("resnet34", norm="ibn_b")
    with pytest.raises(DabinError, match="which a conversion cannot"):
        convert_norm(torchvision.models.resnet18(), "ibn_b")
    with pytest.raises(DabinError, match="needs a ResNet with layer1-layer3; Sequential has no layer1"):
        convert_norm(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), "ibn_a")
    with pytest.raises(DabinError, match="SwitchNorm2d is already a switchable layer"):
        convert_layer(SwitchNorm2d(4), "bin")
    # A lab layer already in a model is left as it is by a later conversion.
    net = nn.Sequential(nn.Conv2d(3, 4, 3), TransNorm2d(4), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    convert_norm(net, "bin")
    assert type(net[1]) is TransNorm2d and type(net[3]).__name__ == "BatchInstanceNorm2d"


def _data(office_tree: Path, batch_size: int = 4) -> TransferDataModule:
    return TransferDataModule(root=str(office_tree), task="Ar->Cl", image_size=32, batch_size=batch_size,
                              num_workers=0, steps_per_epoch=2)


def _model(**overrides: Any) -> TransferModule:
    options: dict[str, Any] = {"num_classes": 3, "small_input": True, "width": 8, "bottleneck_dim": 16,
                               "hidden_dim": 32, "evaluation_points": 0, **overrides}
    return TransferModule(**options)


def _fit(model: TransferModule, office_tree: Path, root: Path, steps: int = 2) -> pl.Trainer:
    trainer = pl.Trainer(default_root_dir=root, max_steps=steps, max_epochs=-1, accelerator="cpu", devices=1,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0)
    pl.seed_everything(0)
    trainer.fit(model, datamodule=_data(office_tree))
    return trainer


def test_transnorm_gets_the_source_target_split_and_evaluates_each_domain_with_its_own(office_tree: Path,
                                                                                       tmp_path: Path) -> None:
    model = _model(norm="transnorm")
    assert model.domain_stats == "joint"
    layer = next(m for m in model.modules() if isinstance(m, TransNorm2d))
    splits: list[int | None] = []
    layer.register_forward_pre_hook(lambda module, args: splits.append(module.source_size) if module.training else None)
    _fit(model, office_tree, tmp_path)
    assert splits == [4, 4]  # every training forward: the first 4 rows are the source's
    assert layer.source_size is None  # restored after each step
    assert not torch.equal(layer.running_mean, layer.target_running_mean)
    assert layer.eval_domain == "source"
    with model.target_context():
        assert layer.eval_domain == "target"


def test_dsbin_trains_each_domain_its_gate(office_tree: Path, tmp_path: Path) -> None:
    model = _model(norm="dsbin")
    assert model.domain_stats == "domain_specific"
    gates = target_gates(model)
    assert gates and all(g.requires_grad for g in gates)
    before = [g.detach().clone() for g in gates]
    source_gates = [m.gate.detach().clone() for m in model.modules() if m._parameters.get("target_gate") is not None]
    _fit(model, office_tree, tmp_path, steps=3)
    assert any(not torch.equal(b, g) for b, g in zip(before, target_gates(model)))
    layers = [m for m in model.modules() if m._parameters.get("target_gate") is not None]
    assert any(not torch.equal(s, m.gate) for s, m in zip(source_gates, layers))
    first = target_gates(model)[0]
    with target_stats(model):
        assert layers[0].gate is first  # the target's pass uses (and trains) the target's gate


def test_mixstyle_composes_with_bin_and_crossdomain_needs_target_halves(office_tree: Path, tmp_path: Path) -> None:
    model = _model(norm="bin", mixstyle="crossdomain", mixstyle_p=1.0)
    mixers = [m for m in model.modules() if isinstance(m, MixStyle)]
    assert len(mixers) == 3 and all(m.mix == "crossdomain" and m.p == 1.0 for m in mixers)
    assert any(type(m).__name__ == "BatchInstanceNorm2d" for m in model.modules())
    _fit(model, office_tree, tmp_path)
    plain = _model(norm="mixstyle")
    assert [m.mix for m in plain.modules() if isinstance(m, MixStyle)] == ["random"] * 3


@pytest.mark.parametrize(("overrides", "message"), [
    ({"norm": "transnorm", "method": "source_only"}, "norm transnorm needs target batches in training"),
    ({"norm": "dsbin", "method": "adabn"}, "norm dsbin needs target batches in training"),
    ({"norm": "dsbin", "domain_stats": "joint"}, "norm dsbin needs domain_stats domain_specific"),
    ({"norm": "transnorm", "domain_stats": "separate"}, "norm transnorm needs domain_stats joint"),
    ({"norm": "transnorm", "target_norm_stats": True}, "already keeps"),
    ({"norm": "bin", "mixstyle": "crossdomain", "method": "source_only"}, "mixstyle crossdomain mixes the source"),
    ({"norm": "bin", "mixstyle": "sometimes"}, "unknown mixstyle 'sometimes'"),
    ({"norm": "ibn_c"}, "unknown norm 'ibn_c'; expected one of bn, in, bnin, bin, dsbin, switchable"),
])
def test_what_cannot_work_is_refused_in_one_line(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(DabinError, match=message):
        _model(**overrides)


@pytest.mark.parametrize("norm", ["transnorm", "dsbin"])
def test_the_mixed_domain_classifier_refuses_per_domain_norms(norm: str) -> None:
    with pytest.raises(DabinError, match=f"norm {norm} keeps statistics per domain"):
        MixedDomainClassifier(num_classes=3, norm=norm, small_input=True, width=8)


@pytest.mark.parametrize("norm", LAB)
def test_a_module_state_round_trips_into_a_fresh_module(norm: str) -> None:
    # What a checkpoint holds (per-domain statistics, target gates, switches) is the module's state dict.
    first, second = _model(norm=norm), _model(norm=norm)
    with torch.no_grad():
        for parameter in first.parameters():
            parameter.add_(torch.rand_like(parameter) * 0.01)
    second.load_state_dict(first.state_dict(), strict=True)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
