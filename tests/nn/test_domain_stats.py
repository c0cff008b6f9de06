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
