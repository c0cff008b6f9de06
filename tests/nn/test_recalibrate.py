"""AdaBN-style recalibration of normalization statistics."""

from __future__ import annotations

import torch
from torch import nn

from dabin.nn import BatchInstanceNorm2d, recalibrate_norm_stats


def test_statistics_become_the_new_domains_and_modes_are_kept() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), BatchInstanceNorm2d(4), nn.Dropout(0.5), nn.BatchNorm2d(4)).train()
    model[1].running_mean.fill_(-7.0)
    batches = [torch.randn(8, 3, 5, 5) * 3 + 2 for _ in range(4)]
    assert recalibrate_norm_stats(model, batches) == 2
    with torch.no_grad():
        features = torch.cat([model[0](x) for x in batches])
    expected_mean = features.mean(dim=(0, 2, 3))
    per_batch_var = torch.stack([model[0](x).var(dim=(0, 2, 3), unbiased=True) for x in batches]).detach()
    assert torch.allclose(model[1].running_mean, expected_mean, rtol=1e-4, atol=1e-5)
    assert torch.allclose(model[1].running_var, per_batch_var.mean(0), rtol=1e-4, atol=1e-5)
    assert model.training and model[1].training and model[1].momentum == 0.1
    model.eval()
    recalibrate_norm_stats(model, batches[:1])
    assert not model.training and not model[1].training and not model[2].training


def test_without_norm_layers_nothing_happens() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    assert recalibrate_norm_stats(model, [torch.randn(2, 3)]) == 0
