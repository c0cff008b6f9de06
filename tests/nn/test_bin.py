"""BatchInstanceNorm against eq. (3) and (5) written out in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dabin.nn import BatchInstanceNorm1d, BatchInstanceNorm2d, BatchInstanceNorm3d, batch_instance_norm
from dabin.nn.reference import batch_instance_norm_reference

EPS = 1e-5


def eq3(x, gamma, beta, rho, mean_b=None, var_b=None):
    """Eq. (3) spelled out: BN over (N, *S) per channel, IN over S per (n, c), biased variances."""
    dims_b = [0] + list(range(2, x.dim()))
    dims_i = list(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    if mean_b is None:
        mean_b = x.mean(dims_b, keepdim=True)
        var_b = x.var(dims_b, unbiased=False, keepdim=True)
    else:
        mean_b, var_b = mean_b.reshape(shape), var_b.reshape(shape)
    x_b = (x - mean_b) / torch.sqrt(var_b + EPS)
    if x[0, 0].numel() == 1:
        x_i = torch.zeros_like(x)
    else:
        x_i = (x - x.mean(dims_i, keepdim=True)) / torch.sqrt(x.var(dims_i, unbiased=False, keepdim=True) + EPS)
    r = rho.reshape(shape)
    return (r * x_b + (1 - r) * x_i) * gamma.reshape(shape) + beta.reshape(shape), x_b, x_i


def _params(c, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    gamma = (torch.rand(c, generator=g, dtype=dtype) + 0.5).requires_grad_()
    beta = torch.randn(c, generator=g, dtype=dtype).requires_grad_()
    rho = torch.rand(c, generator=g, dtype=dtype).requires_grad_()
    return gamma, beta, rho


SHAPES = [(4, 3, 5, 6), (2, 5, 7), (3, 2, 3, 4, 2), (6, 4), (3, 4, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_gradients_match_eq3_in_float64(shape, training):
    torch.manual_seed(0)
    x = (torch.randn(*shape, dtype=torch.float64) * 3 + 2).requires_grad_()
    c = shape[1]
    gamma, beta, rho = _params(c)
    rm, rv = torch.randn(c, dtype=torch.float64), torch.rand(c, dtype=torch.float64) + 0.5
    y = batch_instance_norm(x, rm.clone(), rv.clone(), gamma, beta, rho, training, 0.1, EPS)
    ref, x_b, x_i = eq3(x, gamma, beta, rho, *(() if training else (rm, rv)))
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)

    grad = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, gamma, beta, rho), grad)
    want = torch.autograd.grad(ref, (x, gamma, beta, rho), grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # eq. (5): dL/drho_c = gamma_c * sum_{n,s} (x_b - x_i) * dL/dy
    dims = [0] + list(range(2, x.dim()))
    eq5 = gamma * ((x_b - x_i) * grad).sum(dims)
    torch.testing.assert_close(got[3], eq5.detach(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(training):
    torch.manual_seed(0)
    x = torch.randn(3, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    gamma, beta, rho = _params(2)
    rm, rv = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)

    def fn(x, gamma, beta, rho):
        return batch_instance_norm(x, rm.clone(), rv.clone(), gamma, beta, rho, training, 0.1, EPS)

    assert torch.autograd.gradcheck(fn, (x, gamma, beta, rho))


def test_float32_matches_float64_reference_with_relative_tolerance():
    torch.manual_seed(0)
    x64 = torch.randn(8, 16, 14, 14, dtype=torch.float64) * 4 + 3  # offset mean: stresses E[x²]−E[x]²
    gamma, beta, rho = (t.detach() for t in _params(16))
    layer = BatchInstanceNorm2d(16)
    with torch.no_grad():
        layer.weight.copy_(gamma)
        layer.bias.copy_(beta)
        layer.gate.copy_(rho)
    y = layer(x64.float())
    ref, _, _ = eq3(x64, gamma, beta, rho)
    torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_statistics_follow_batchnorm(momentum):
    torch.manual_seed(0)
    bn, bin_ = nn.BatchNorm2d(4, momentum=momentum), BatchInstanceNorm2d(4, momentum=momentum)
    for _ in range(3):
        x = torch.randn(5, 4, 6, 6) * 2 + 1
        bn(x)
        bin_(x)
    torch.testing.assert_close(bin_.running_mean, bn.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bin_.running_var, bn.running_var, rtol=1e-5, atol=1e-6)
    assert int(bin_.num_batches_tracked) == int(bn.num_batches_tracked) == 3


def test_gate_one_is_batchnorm_and_eval_uses_running_stats():
    torch.manual_seed(0)
    bn, bin_ = nn.BatchNorm2d(4), BatchInstanceNorm2d(4)
    x = torch.randn(6, 4, 5, 5)
    torch.testing.assert_close(bin_(x), bn(x), rtol=1e-5, atol=1e-5)
    bn.eval(), bin_.eval()
    x1 = torch.randn(1, 4, 5, 5)  # batch 1 in eval
    torch.testing.assert_close(bin_(x1), bn(x1), rtol=1e-5, atol=1e-5)


def test_without_running_stats_eval_uses_batch_statistics():
    torch.manual_seed(0)
    layer = BatchInstanceNorm2d(3, track_running_stats=False, affine=False).eval()
    x = torch.randn(4, 3, 5, 5)
    ref, _, _ = eq3(x.double(), torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
                    torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(layer(x).double(), ref, rtol=1e-4, atol=1e-4)


def test_one_by_one_maps_have_zero_instance_term():
    layer = BatchInstanceNorm2d(3)
    with torch.no_grad():
        layer.gate.zero_()  # pure IN
        layer.bias.fill_(0.25)
    y = layer(torch.randn(4, 3, 1, 1))
    torch.testing.assert_close(y, torch.full_like(y, 0.25))
    assert torch.isfinite(y).all()


def test_channels_last_input_gives_same_values_and_layout():
    torch.manual_seed(0)
    layer = BatchInstanceNorm2d(8)
    with torch.no_grad():
        layer.gate.uniform_()
    x = torch.randn(4, 8, 6, 6)
    xc = x.to(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    y, yc = layer(x), layer(xc)
    assert yc.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(yc, y, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gxc,) = torch.autograd.grad(yc, xc, g.to(memory_format=torch.channels_last))
    torch.testing.assert_close(gxc, gx, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_low_precision(dtype):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3)
    layer = BatchInstanceNorm2d(8)
    x = torch.randn(4, 3, 10, 10)
    with torch.autocast("cpu", dtype=dtype):
        h = conv(x)
        y = layer(h)
    assert y.dtype == h.dtype == dtype
    y.float().sum().backward()
    assert layer.gate.grad is not None and torch.isfinite(layer.gate.grad).all()
    ref = BatchInstanceNorm2d(8)(h.float())
    torch.testing.assert_close(y.float(), ref, rtol=0.05, atol=0.05)


def test_inplace_activation_after_bin_is_allowed():
    layer = BatchInstanceNorm2d(4)
    x = torch.randn(3, 4, 5, 5, requires_grad=True)
    y = torch.relu_(layer(x))
    y.sum().backward()
    assert x.grad is not None


def test_layers_check_rank_and_subclass_batchnorm():
    assert isinstance(BatchInstanceNorm1d(3), nn.BatchNorm1d)
    assert isinstance(BatchInstanceNorm3d(3), nn.BatchNorm3d)
    with pytest.raises(ValueError):
        BatchInstanceNorm2d(3)(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="more than 1 value"):
        BatchInstanceNorm2d(3)(torch.randn(1, 3, 1, 1))


def test_batchnorm_state_dict_loads_and_gate_starts_at_one():
    bn = nn.BatchNorm2d(5)
    bn.running_mean.uniform_()
    layer = BatchInstanceNorm2d(5)
    layer.load_state_dict(bn.state_dict())  # strict: the missing gate is not an error
    torch.testing.assert_close(layer.running_mean, bn.running_mean)
    assert torch.equal(layer.gate.detach(), torch.ones(5))
    assert "gate" in layer.state_dict()


def test_fixed_gate_is_a_buffer_outside_the_state_dict():
    layer = BatchInstanceNorm2d(3, gate_init=0.5, learn_gate=False)
    assert "gate" not in dict(layer.named_parameters())
    assert "gate" not in layer.state_dict()
    assert torch.equal(layer.gate, torch.full((3,), 0.5))
