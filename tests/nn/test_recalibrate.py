"""AdaBN-style recalibration of normalization statistics: the population's by default, exactly."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from dabin.errors import DabinError
from dabin.nn import BatchInstanceNorm2d, recalibrate_norm_stats

#: Indices of the norm layers of :func:`_net`, in execution order.
NORMS = (1, 4, 9)


def _net() -> nn.Sequential:
    """conv → BN → ReLU → conv → BIN → ReLU → dropout → pool → linear → BN1d, in float64."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1), BatchInstanceNorm2d(4, gate_init=0.6), nn.ReLU(),
                        nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(4)).double()
    # Source statistics far from the target's: recalibration must replace, not blend, them.
    for index in NORMS:
        net[index].running_mean.fill_(-3.0)
        net[index].running_var.fill_(9.0)
    return net


def _class_sorted() -> Tensor:
    """60 images, 3 classes of 20 in file order; each class a large offset per channel plus noise.

    The between-class part dominates every channel's variance, so class-pure batches miss most of it.
    """
    generator = torch.Generator().manual_seed(1)
    offsets = torch.tensor([[-6.0, 0.0, 6.0], [5.0, -5.0, 0.0], [0.0, 7.0, -7.0]], dtype=torch.float64)
    images = [offsets[c].view(1, 3, 1, 1) + torch.randn(20, 3, 6, 6, generator=generator, dtype=torch.float64)
              for c in range(3)]
    return torch.cat(images)


def _reference(net: nn.Sequential, images: Tensor) -> nn.Sequential:
    """Layer by layer, the population mean and unbiased variance of layer k's input over the whole
    set in one tensor, with the layers before k already set (eval mode throughout)."""
    ref = copy.deepcopy(net).eval()
    with torch.no_grad():
        for index in NORMS:
            x = ref[:index](images)
            dims = [0, *range(2, x.dim())]
            ref[index].running_mean.copy_(x.mean(dim=dims))
            ref[index].running_var.copy_(x.var(dim=dims, correction=1))
    return ref


def _batches(images: Tensor, size: int) -> list[Tensor]:
    return list(images.split(size))


def _stats(net: nn.Sequential) -> list[tuple[Tensor, Tensor]]:
    return [(net[i].running_mean.clone(), net[i].running_var.clone()) for i in NORMS]


def _assert_close(actual: list[tuple[Tensor, Tensor]], expected: list[tuple[Tensor, Tensor]], rtol: float) -> None:
    for (mean, var), (mean_ref, var_ref) in zip(actual, expected):
        torch.testing.assert_close(mean, mean_ref, rtol=rtol, atol=rtol * float(mean_ref.abs().max()))
        torch.testing.assert_close(var, var_ref, rtol=rtol, atol=0.0)


def test_population_statistics_match_the_whole_set_reference() -> None:
    images = _class_sorted()
    net = _net()
    expected = _stats(_reference(net, images))
    assert recalibrate_norm_stats(net, _batches(images, 6)) == 3  # class-pure batches
    _assert_close(_stats(net), expected, rtol=1e-4)
    assert [int(net[i].num_batches_tracked) for i in NORMS] == [10, 10, 10]


def test_population_statistics_do_not_depend_on_order_or_batch_size() -> None:
    images = _class_sorted()
    permuted = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(2))]
    results = []
    for data, size in ((images, 7), (permuted, 25), (permuted, 7)):
        net = _net()
        recalibrate_norm_stats(net, _batches(data, size))
        results.append(_stats(net))
    for other in results[1:]:
        _assert_close(other, results[0], rtol=1e-10)


def test_batch_average_on_class_sorted_batches_misses_the_between_class_variance() -> None:
    # The estimate the population mode replaced, on the loader it used to get: far off.
    images = _class_sorted()
    reference = _stats(_reference(_net(), images))
    net = _net()
    assert recalibrate_norm_stats(net, iter(_batches(images, 6)), estimate="shuffled_batch_average") == 3
    first_var, first_ref = net[NORMS[0]].running_var, reference[0][1]
    assert ((first_var - first_ref).abs() / first_ref).max() > 0.5
    with pytest.raises(AssertionError):
        _assert_close(_stats(net), reference, rtol=1e-4)


def test_batch_average_is_the_mean_of_per_batch_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), BatchInstanceNorm2d(4), nn.Dropout(0.5), nn.BatchNorm2d(4)).train()
    model[1].running_mean.fill_(-7.0)
    batches = [torch.randn(8, 3, 5, 5) * 3 + 2 for _ in range(4)]
    assert recalibrate_norm_stats(model, batches, estimate="shuffled_batch_average") == 2
    with torch.no_grad():
        features = [model[0](x) for x in batches]
    expected_mean = torch.cat(features).mean(dim=(0, 2, 3))
    per_batch_var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in features])
    assert torch.allclose(model[1].running_mean, expected_mean, rtol=1e-4, atol=1e-5)
    assert torch.allclose(model[1].running_var, per_batch_var.mean(0), rtol=1e-4, atol=1e-5)
    assert int(model[1].num_batches_tracked) == 4


@pytest.mark.parametrize("estimate", ["population", "shuffled_batch_average"])
def test_flags_and_hooks_are_restored(estimate: str) -> None:
    net = _net().train()
    net[6].eval()  # a mixed state: every module's own flag must come back, not the model's
    net[1].momentum, net[4].momentum = 0.3, None
    images = _class_sorted()
    recalibrate_norm_stats(net, _batches(images, 10), estimate=estimate)  # type: ignore[arg-type]
    assert net.training and net[1].training and net[4].training and not net[6].training
    assert (net[1].momentum, net[4].momentum, net[9].momentum) == (0.3, None, 0.1)
    assert all(not module._forward_pre_hooks and not module._forward_hooks for module in net.modules())
    net.eval()
    recalibrate_norm_stats(net, _batches(images, 10), estimate=estimate)  # type: ignore[arg-type]
    assert not any(module.training for module in net.modules())


@pytest.mark.parametrize("estimate", ["population", "shuffled_batch_average"])
def test_flags_and_hooks_are_restored_after_an_error(estimate: str) -> None:
    net = _net().train()
    net[1].momentum = 0.3
    images = _class_sorted()
    before = _stats(net)

    calls = []

    def failing() -> Iterator[Tensor]:
        # Population mode: the order pass and the first layer's pass succeed, the second layer's
        # pass breaks, with the first layer already recalibrated. Batch average: its one pass breaks.
        calls.append(None)
        yield images[:10]
        yield images[10:20]
        if estimate == "shuffled_batch_average" or len(calls) == 3:
            raise RuntimeError("the loader broke")
        yield images[20:]

    with pytest.raises(RuntimeError, match="loader broke"):
        recalibrate_norm_stats(net, failing if estimate == "population" else failing(),  # type: ignore[arg-type]
                               estimate=estimate)  # type: ignore[arg-type]
    assert all(module.training for module in net.modules()) and net[1].momentum == 0.3
    assert all(not module._forward_pre_hooks for module in net.modules())
    _assert_close(_stats(net), before, rtol=0.0)  # no layer left half recalibrated


def test_callable_and_data_loader_batches_give_the_population_statistics() -> None:
    images = _class_sorted()
    expected = _stats(_reference(_net(), images))
    for batches in (lambda: iter(images.split(9)), DataLoader(images, batch_size=9)):  # type: ignore[arg-type]
        net = _net()
        recalibrate_norm_stats(net, batches)
        _assert_close(_stats(net), expected, rtol=1e-4)


class _WithSpare(nn.Module):
    """The toy net plus a norm layer its forward never calls (like a loss module's)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = _net()
        self.spare = nn.BatchNorm1d(4).double()
        self.spare.running_mean.fill_(5.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def test_layers_off_the_forward_path_keep_their_statistics() -> None:
    net = _WithSpare()
    for estimate in ("population", "shuffled_batch_average"):
        assert recalibrate_norm_stats(net, _batches(_class_sorted(), 10), estimate=estimate) == 3  # type: ignore[arg-type]
        assert torch.equal(net.spare.running_mean, torch.full((4,), 5.0, dtype=torch.float64))
        assert int(net.spare.num_batches_tracked) == 0


def test_without_norm_layers_nothing_happens() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    assert recalibrate_norm_stats(model, [torch.randn(2, 3)]) == 0
    assert recalibrate_norm_stats(model, [torch.randn(2, 3)], estimate="shuffled_batch_average") == 0


def test_bad_inputs_are_named() -> None:
    net, images = _net(), _class_sorted()
    with pytest.raises(DabinError, match="'average'"):
        recalibrate_norm_stats(net, [images], estimate="average")  # type: ignore[arg-type]
    with pytest.raises(DabinError, match="one-shot generator"):
        recalibrate_norm_stats(net, (x for x in images.split(10)))
    with pytest.raises(DabinError, match="one tensor"):
        recalibrate_norm_stats(net, images)
    with pytest.raises(DabinError, match="empty"):
        recalibrate_norm_stats(net, [])
    twice = nn.Sequential(nn.BatchNorm1d(3))
    shared = nn.Sequential(twice, twice)
    with pytest.raises(DabinError, match="runs 2 times"):
        recalibrate_norm_stats(shared, [torch.randn(4, 3)])
    with pytest.raises(DabinError, match="at least 2"):
        recalibrate_norm_stats(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), [torch.randn(1, 3)])
