"""convert_norm on torchvision models: exact outputs, copied statistics, clear errors."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from dabin import DabinError
from dabin.nn import (
    NORMS,
    BatchInstanceNorm1d,
    BatchInstanceNorm2d,
    convert_layer,
    convert_norm,
    gate_parameters,
    norm_layer,
)


def _randomize_bn(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g))
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


MODELS = {
    "resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "resnext": lambda: torchvision.models.ResNet(
        torchvision.models.resnet.Bottleneck, [1, 1, 1, 1], groups=4, width_per_group=8, num_classes=10),
    "vgg11_bn": lambda: torchvision.models.vgg11_bn(num_classes=10),
    "densenet": lambda: torchvision.models.DenseNet(growth_rate=8, block_config=(2, 2), num_init_features=16,
                                                    num_classes=10),
}


@pytest.mark.parametrize("name", MODELS)
def test_bin_conversion_keeps_outputs_in_eval_and_train(name):
    torch.manual_seed(0)
    model = MODELS[name]()
    _randomize_bn(model)
    # 64 px, batch 4: no 1x1 map with 2 samples, whose batch variance is ill-conditioned for both
    x = torch.randn(4, 3, 64, 64)
    converted = convert_norm(copy.deepcopy(model), "bin")
    kinds = {type(m) for m in converted.modules()}
    assert nn.BatchNorm2d not in kinds and BatchInstanceNorm2d in kinds
    with torch.no_grad():
        before_eval, after_eval = model.eval()(x), converted.eval()(x)
        model.train(), converted.train()
        torch.manual_seed(1)  # VGG's classifier has dropout
        before_train = model(x)
        torch.manual_seed(1)
        after_train = converted(x)
    torch.testing.assert_close(after_eval, before_eval, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(after_train, before_train, rtol=1e-3, atol=1e-3)
    # and a BN state dict loads into the converted model as it is
    fresh = convert_norm(MODELS[name](), "bin")
    fresh.load_state_dict(model.state_dict())


def test_conversion_copies_everything_in_place():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2), nn.BatchNorm1d(2))
    model(torch.randn(3, 3, 6, 6))
    _randomize_bn(model)
    model[1].weight.requires_grad_(False)
    model.eval()
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    out = convert_norm(model, "bin")
    assert out is model
    assert isinstance(model[1], BatchInstanceNorm2d) and isinstance(model[4], BatchInstanceNorm1d)
    assert not model[1].training and not model[1].weight.requires_grad
    for key, value in expected.items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_fixed_gate_norms_and_back_to_bn():
    model = torchvision.models.resnet18(num_classes=4)
    convert_norm(model, "in")
    assert all(torch.equal(m.gate, torch.zeros_like(m.gate)) for m in model.modules() if isinstance(m, BatchInstanceNorm2d))
    assert gate_parameters(model) == []
    convert_norm(model, "bnin")
    assert all(torch.equal(m.gate, torch.full_like(m.gate, 0.5)) for m in model.modules() if isinstance(m, BatchInstanceNorm2d))
    convert_norm(model, "bin")
    assert len(gate_parameters(model)) == 20
    with torch.no_grad():
        model.bn1.gate.fill_(0.3)
    convert_norm(model, "bin")  # BIN -> BIN keeps learned gates
    assert torch.allclose(model.bn1.gate, torch.full_like(model.bn1.gate, 0.3))
    convert_norm(model, "bn")
    assert type(model.bn1) is nn.BatchNorm2d


def test_norm_layer_factory():
    assert norm_layer("bn") is nn.BatchNorm2d
    layer = norm_layer("bnin")(7)
    assert isinstance(layer, BatchInstanceNorm2d) and not layer.learn_gate
    assert set(NORMS) == {"bn", "in", "bnin", "bin", "dsbin", "switchable", "transnorm", "ibn_a", "ibn_b", "mixstyle"}


def test_bad_inputs_name_the_value():
    with pytest.raises(DabinError, match=r"unknown norm 'gn'; expected one of bn, in, bnin, bin"):
        convert_norm(torchvision.models.resnet18(), "gn")
    with pytest.raises(DabinError, match="expected a BatchNorm1d/2d/3d layer to convert, got Conv2d"):
        convert_layer(nn.Conv2d(1, 1, 1), "bin")
    with pytest.raises(DabinError, match="no BatchNorm1d/2d/3d layer found in Sequential"):
        convert_norm(nn.Sequential(nn.Linear(2, 2)), "bin")
