"""Per-domain running statistics: the target's are swapped in for a block, and only they move there."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dabin.nn import BatchInstanceNorm2d, add_domain_stats, target_stats


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), BatchInstanceNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2),
                         nn.BatchNorm1d(2))


def test_target_block_uses_and_updates_only_the_target_statistics():
    net = _net()
    net(torch.randn(4, 3, 8, 8))  # materialize the lazy layer
    assert add_domain_stats(net) == 2
    bin_layer, bn = net[1], net[5]
    source_mean = bin_layer.running_mean.clone()
    with target_stats(net):
        net(torch.randn(4, 3, 8, 8) * 3 + 5)  # a target batch of another style
    assert torch.equal(bin_layer.running_mean, source_mean)  # the source's untouched
    assert not torch.equal(bin_layer.target_running_mean, source_mean)  # the target's moved
    assert int(bin_layer.target_num_batches_tracked) == int(bin_layer.num_batches_tracked) + 1
    assert "5.target_running_var" in net.state_dict() and bn.target_running_var.shape == (2,)
    # Eval inside the block normalizes with the target's statistics.
    net.eval()
    x = torch.randn(2, 3, 8, 8) * 3 + 5
    with torch.no_grad():
        plain = net(x)
        with target_stats(net):
            adapted = net(x)
    assert not torch.allclose(plain, adapted)


def test_statistics_come_back_after_an_exception():
    net = _net()
    net(torch.randn(4, 3, 8, 8))
    add_domain_stats(net)
    before = net[1].running_mean
    with pytest.raises(RuntimeError), target_stats(net):
        raise RuntimeError("boom")
    assert net[1].running_mean is before


def test_per_domain_statistics_survive_sync_conversion():
    from dabin.nn import convert_sync_norm, revert_sync_norm

    net = _net()
    net(torch.randn(4, 3, 8, 8))
    add_domain_stats(net)
    target_mean = net[1].target_running_mean
    keys = set(net.state_dict())
    converted = convert_sync_norm(net)
    assert converted[1].target_running_mean is target_mean and set(converted.state_dict()) == keys
    reverted = revert_sync_norm(converted)
    assert reverted[1].target_running_mean is target_mean and set(reverted.state_dict()) == keys


def _bin_reference(x: torch.Tensor, gate: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                   mean: torch.Tensor | None = None, var: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    """BIN's eq. (3) in float64 (Nam & Kim, 2018): batch statistics, or the given running ones."""
    shape = (1, -1, 1, 1)
    if mean is None:
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    x_b = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
    x_i = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + eps)
    rho = gate.view(shape)
    return (rho * x_b + (1 - rho) * x_i) * weight.view(shape) + bias.view(shape)


def test_domain_specific_bin_gives_each_domain_its_gate_and_statistics():
    torch.manual_seed(0)
    layer = BatchInstanceNorm2d(3).double()
    add_domain_stats(layer, gates=True)
    with torch.no_grad():
        layer.gate.copy_(torch.tensor([1.0, 0.5, 0.2]))
        layer.target_gate.copy_(torch.tensor([0.1, 0.9, 0.6]))
        layer.weight.copy_(torch.tensor([1.5, 0.5, 2.0]))
        layer.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    source, target = torch.randn(4, 3, 5, 5, dtype=torch.float64), torch.randn(4, 3, 5, 5, dtype=torch.float64) * 2 + 3
    out_s = layer(source)
    with target_stats(layer):
        out_t = layer(target)
    gates = (layer.gate.detach().clone(), layer.target_gate.detach().clone())
    torch.testing.assert_close(out_s, _bin_reference(source, gates[0], layer.weight, layer.bias), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out_t, _bin_reference(target, gates[1], layer.weight, layer.bias), rtol=1e-12, atol=1e-12)
    # The target's pass moves only the target's gate and statistics.
    (out_t ** 2).sum().backward()
    assert layer.gate.grad is None and layer.target_gate.grad is not None and layer.target_gate.grad.abs().sum() > 0
    expected_target_mean = 0.9 * torch.zeros(3, dtype=torch.float64) + 0.1 * target.mean((0, 2, 3))
    torch.testing.assert_close(layer.target_running_mean, expected_target_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.running_mean, 0.1 * source.mean((0, 2, 3)), rtol=1e-12, atol=1e-12)
    # Eval on the target: its running statistics and its gate.
    layer.eval()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64) + 3
    with torch.no_grad(), target_stats(layer):
        evaluated = layer(x)
    reference = _bin_reference(x, gates[1], layer.weight, layer.bias, layer.target_running_mean,
                               layer.target_running_var)
    torch.testing.assert_close(evaluated, reference, rtol=1e-12, atol=1e-12)
    assert "target_gate" in layer.state_dict()


def test_target_gates_train_clip_and_travel_like_gates():
    from dabin.nn import clamp_gates_, convert_sync_norm, gate_parameters, revert_sync_norm, target_gates

    net = _net()
    net(torch.randn(4, 3, 8, 8))
    add_domain_stats(net, gates=True)
    (target_gate,) = target_gates(net)
    assert {id(p) for p in gate_parameters(net)} == {id(net[1].gate), id(target_gate)}
    with torch.no_grad():
        target_gate.fill_(1.7)
    clamp_gates_(net)
    assert torch.all(target_gate == 1.0)
    keys = set(net.state_dict())
    converted = convert_sync_norm(net)
    assert converted[1].target_gate is target_gate and set(converted.state_dict()) == keys
    with target_stats(converted):
        assert converted[1].gate is target_gate
    reverted = revert_sync_norm(converted)
    assert reverted[1].target_gate is target_gate and set(reverted.state_dict()) == keys


def test_without_gates_no_target_gate_is_added():
    net = _net()
    net(torch.randn(4, 3, 8, 8))
    add_domain_stats(net)
    assert "target_gate" not in dict(net[1].named_parameters())
