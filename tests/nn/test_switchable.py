"""SwitchNorm2d against a float64 transcription of the authors' code.

Transcribed: github.com/switchablenorms/Switchable-Normalization at commit 5472286, file
``devkit/ops/switchable_norm.py``, class ``SwitchNorm2d`` (``__init__``, ``reset_parameters``,
``forward``) with ``using_bn=True, last_gamma=False``; and, for the batch-average mode, the
function ``sn_helper`` of ``main.py`` at commit 56ea8a3 (the script that finalized it; later
commits dropped it). ``torch.autograd.Variable(t)`` is written as ``t`` (a no-op since torch 0.4).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import pytest
import torch
from torch import Tensor, nn

from dabin.nn.switchable import SWITCH_ORDER, SwitchNorm2d

TOL = {"rtol": 1e-10, "atol": 1e-10}


class OfficialSwitchNorm2d(nn.Module):
    """``SwitchNorm2d`` of ``devkit/ops/switchable_norm.py`` (commit 5472286), line by line."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.9,
                 using_moving_average: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.using_moving_average = using_moving_average
        self.weight = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1, 1))
        self.mean_weight = nn.Parameter(torch.ones(3))
        self.var_weight = nn.Parameter(torch.ones(3))
        self.register_buffer("running_mean", torch.zeros(1, num_features, 1))
        self.register_buffer("running_var", torch.zeros(1, num_features, 1))

    def forward(self, x: Tensor) -> Tensor:
        N, C, H, W = x.size()
        x = x.view(N, C, -1)
        mean_in = x.mean(-1, keepdim=True)
        var_in = x.var(-1, keepdim=True)

        mean_ln = mean_in.mean(1, keepdim=True)
        temp = var_in + mean_in ** 2
        var_ln = temp.mean(1, keepdim=True) - mean_ln ** 2

        if self.training:
            mean_bn = mean_in.mean(0, keepdim=True)
            var_bn = temp.mean(0, keepdim=True) - mean_bn ** 2
            if self.using_moving_average:
                self.running_mean.mul_(self.momentum)
                self.running_mean.add_((1 - self.momentum) * mean_bn.data)
                self.running_var.mul_(self.momentum)
                self.running_var.add_((1 - self.momentum) * var_bn.data)
            else:
                self.running_mean.add_(mean_bn.data)
                self.running_var.add_(mean_bn.data ** 2 + var_bn.data)
        else:
            mean_bn = self.running_mean
            var_bn = self.running_var

        softmax = nn.Softmax(0)
        mean_weight = softmax(self.mean_weight)
        var_weight = softmax(self.var_weight)

        mean = mean_weight[0] * mean_in + mean_weight[1] * mean_ln + mean_weight[2] * mean_bn
        var = var_weight[0] * var_in + var_weight[1] * var_ln + var_weight[2] * var_bn

        x = (x - mean) / (var + self.eps).sqrt()
        x = x.view(N, C, H, W)
        return x * self.weight + self.bias


def official_sn_helper(model: nn.Module, batches: Iterable[Tensor]) -> None:
    """``sn_helper`` of ``main.py`` (commit 56ea8a3): the batch average over ``K`` batches."""
    batches = list(batches)
    model.train()
    for name, param in model.state_dict().items():
        if "running_mean" in name:
            param.fill_(0)
        elif "running_var" in name:
            param.fill_(0)
    with torch.no_grad():
        for x in batches:
            model(x)
    for name, param in model.state_dict().items():
        if "running_mean" in name:
            param /= len(batches)
            model.state_dict()[name.replace("running_mean", "running_var")] /= len(batches)
            model.state_dict()[name.replace("running_mean", "running_var")] -= param ** 2


def _pair(c: int, official_momentum: float = 0.9, using_moving_average: bool = True,
          seed: int = 0) -> tuple[SwitchNorm2d, OfficialSwitchNorm2d]:
    """The layer and the transcription with the same random parameters and the official init buffers."""
    g = torch.Generator().manual_seed(seed)
    official = OfficialSwitchNorm2d(c, momentum=official_momentum, using_moving_average=using_moving_average).double()
    ours = SwitchNorm2d(c, momentum=1 - official_momentum, using_moving_average=using_moving_average,
                        dtype=torch.float64)
    with torch.no_grad():
        official.weight.copy_((torch.rand(c, generator=g, dtype=torch.float64) + 0.5).view(1, c, 1, 1))
        official.bias.copy_(torch.randn(c, generator=g, dtype=torch.float64).view(1, c, 1, 1))
        official.mean_weight.copy_(torch.randn(3, generator=g, dtype=torch.float64))
        official.var_weight.copy_(torch.randn(3, generator=g, dtype=torch.float64))
        ours.weight.copy_(official.weight.view(c))
        ours.bias.copy_(official.bias.view(c))
        ours.mean_weight.copy_(official.mean_weight)
        ours.var_weight.copy_(official.var_weight)
        # The official buffers start at 0 (BatchNorm's running_var at 1): start both alike.
        ours.running_mean.copy_(official.running_mean.view(c))
        ours.running_var.copy_(official.running_var.view(c))
    return ours, official


def _random(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, 5, 5, generator=g, dtype=torch.float64) * 2 + 1


def _constant_channels(seed: int) -> Tensor:
    x = _random(4, seed)
    x[:, 2] = 3.0  # constant over the batch: IN and BN variances 0
    x[:, 4] = torch.arange(4, dtype=torch.float64).view(4, 1, 1) - 1.5  # constant per image: IN variance 0
    return x


CASES = {
    "random": lambda seed: _random(4, seed),
    "batch_of_one": lambda seed: _random(1, seed),
    "constant_channels": _constant_channels,
}


def _step(ours: nn.Module, official: nn.Module, x: Tensor, seed: int) -> None:
    """One forward/backward through both: outputs and every gradient must agree."""
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), official(xb)
    torch.testing.assert_close(ya, yb, **TOL)
    grad = torch.randn(ya.shape, generator=torch.Generator().manual_seed(seed), dtype=ya.dtype)
    ya.backward(grad)
    yb.backward(grad)
    torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    for name in ("weight", "bias", "mean_weight", "var_weight"):
        a, b = getattr(ours, name), getattr(official, name)
        assert a.grad is not None and b.grad is not None, name
        torch.testing.assert_close(a.grad, b.grad.reshape(a.shape), **TOL, msg=lambda m, name=name: f"{name}: {m}")
        a.grad, b.grad = None, None


@pytest.mark.parametrize("official_momentum", [0.9, 0.997])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_official_in_train_and_eval(case: str, official_momentum: float) -> None:
    ours, official = _pair(6, official_momentum)
    make = CASES[case]
    for step in range(2):
        _step(ours, official, make(10 + step), seed=step)
    torch.testing.assert_close(ours.running_mean, official.running_mean.view(6), **TOL)
    torch.testing.assert_close(ours.running_var, official.running_var.view(6), **TOL)
    assert int(ours.num_batches_tracked) == 2
    ours.eval()
    official.eval()
    _step(ours, official, make(20), seed=2)
    # Eval mode leaves the running statistics alone.
    torch.testing.assert_close(ours.running_var, official.running_var.view(6), **TOL)


def test_batch_average_matches_official_sn_helper() -> None:
    ours, official = _pair(6, using_moving_average=False)
    for step in range(2):  # training before the helper: the official buffers then hold raw sums
        _step(ours, official, _random(4, 30 + step), seed=step)
    batches = [_random(4, 40 + k) for k in range(3)] + [_random(2, 43)]
    official_sn_helper(official, batches)
    ours.reset_running_stats()
    with torch.no_grad():
        for x in batches:
            ours(x)
    torch.testing.assert_close(ours.running_mean, official.running_mean.view(6), **TOL)
    torch.testing.assert_close(ours.running_var, official.running_var.view(6), **TOL)
    ours.eval()
    official.eval()
    _step(ours, official, _random(3, 50), seed=3)


def test_cumulative_average_with_momentum_none() -> None:
    ours = SwitchNorm2d(6, momentum=None, dtype=torch.float64)
    means, variances = [], []
    for k in range(3):
        x = _random(4, 60 + k)
        # Official momentum 0 keeps only the new batch: its buffers are that batch's statistics.
        probe = OfficialSwitchNorm2d(6, momentum=0.0).double()
        probe(x)
        means.append(probe.running_mean.view(6))
        variances.append(probe.running_var.view(6))
        ours(x)
    torch.testing.assert_close(ours.running_mean, torch.stack(means).mean(0), **TOL)
    torch.testing.assert_close(ours.running_var, torch.stack(variances).mean(0), **TOL)


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(training: bool) -> None:
    layer = SwitchNorm2d(3, dtype=torch.float64).train(training)
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([0.3, -0.2, 0.1]))
        layer.running_var.copy_(torch.tensor([0.5, 1.5, 2.0]))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    params = [
        (torch.rand(3, generator=g, dtype=torch.float64) + 0.5).requires_grad_(),
        torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True),
        torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True),
        torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True),
    ]

    def fn(x: Tensor, weight: Tensor, bias: Tensor, mean_weight: Tensor, var_weight: Tensor) -> Tensor:
        values = {"weight": weight, "bias": bias, "mean_weight": mean_weight, "var_weight": var_weight}
        return torch.func.functional_call(layer, values, (x,))

    assert torch.autograd.gradcheck(fn, (x, *params))


def test_switch_order_is_in_ln_bn() -> None:
    assert SWITCH_ORDER == ("in", "ln", "bn")
    x = _random(4, 70)
    layer = SwitchNorm2d(6, dtype=torch.float64).eval()
    with torch.no_grad():
        layer.running_mean.copy_(torch.linspace(-1, 1, 6))
        layer.running_var.copy_(torch.linspace(0.5, 2, 6))
    for index in range(3):
        with torch.no_grad():
            logits = torch.full((3,), -50.0, dtype=torch.float64)
            logits[index] = 50.0
            layer.mean_weight.copy_(logits)
            layer.var_weight.copy_(logits)
        y = layer(x)
        if index == 0:  # IN with the unbiased variance
            want = (x - x.mean((2, 3), keepdim=True)) / (x.var((2, 3), keepdim=True) + layer.eps).sqrt()
        elif index == 1:  # LN's mean over (C, H, W); its variance from the unbiased IN ones
            spatial = x[0, 0].numel()
            var = x.var((1, 2, 3), correction=0, keepdim=True) \
                + (x.var((2, 3), correction=0) / (spatial - 1)).mean(1).view(-1, 1, 1, 1)
            want = (x - x.mean((1, 2, 3), keepdim=True)) / (var + layer.eps).sqrt()
        else:  # BN in eval mode: BatchNorm's eval output
            want = nn.functional.batch_norm(x, layer.running_mean, layer.running_var, eps=layer.eps)
        torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12, msg=lambda m, i=index: f"{SWITCH_ORDER[i]}: {m}")


def test_single_spatial_value_is_finite_where_the_official_code_gives_nan() -> None:
    x = torch.randn(3, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    official = OfficialSwitchNorm2d(4).double()
    with pytest.warns(UserWarning, match="degrees of freedom"):
        assert torch.isnan(official(x)).all()
    layer = SwitchNorm2d(4, dtype=torch.float64)
    y = layer(x)
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert torch.isfinite(layer.running_var).all()


def test_batchnorm_state_dict_loads_and_switch_keeps_its_values() -> None:
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
        for k in range(3):
            bn(torch.randn(4, 6, 5, 5) * (k + 1))
    state = bn.state_dict()
    keys = set(state)

    fresh = SwitchNorm2d(6)
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.mean_weight, torch.ones(3)) and torch.equal(fresh.var_weight, torch.ones(3))

    layer = SwitchNorm2d(6)
    with torch.no_grad():
        layer.mean_weight.copy_(torch.tensor([0.5, -1.0, 2.0]))
        layer.var_weight.copy_(torch.tensor([-0.3, 0.2, 1.0]))
    layer.load_state_dict(state, strict=True)
    for name, value in state.items():
        assert torch.equal(layer.state_dict()[name], value), name
    assert torch.equal(layer.mean_weight, torch.tensor([0.5, -1.0, 2.0]))
    assert torch.equal(layer.var_weight, torch.tensor([-0.3, 0.2, 1.0]))
    assert set(state) == keys, "the caller's state dict was modified"
    assert isinstance(layer, nn.BatchNorm2d)
    assert set(layer.state_dict()) == keys | {"mean_weight", "var_weight"}

    # A SwitchNorm2d state dict carries its switch: it is loaded, not kept.
    fresh.load_state_dict(layer.state_dict(), strict=True)
    assert torch.equal(fresh.mean_weight, layer.mean_weight) and torch.equal(fresh.var_weight, layer.var_weight)


def test_official_checkpoint_loads() -> None:
    _, official = _pair(6, seed=3)
    with torch.no_grad():
        official.running_mean.normal_()
        official.running_var.uniform_(0.5, 2.0)
    layer = SwitchNorm2d(6, dtype=torch.float64)
    layer.load_state_dict(official.state_dict(), strict=True)
    layer.eval()
    official.eval()
    x = _random(2, 80)
    torch.testing.assert_close(layer(x), official(x), **TOL)


def test_float32_is_accurate_when_the_mean_dwarfs_the_spread() -> None:
    # LN and BN variances as mean(σ²_in) + mean((μ_in − μ)²), not E[σ²_in + μ²_in] − μ²: the official
    # form loses ~2e-2 of the output here in float32 (cancellation of two ~9e4 terms), this one 1e-4.
    ours, _ = _pair(6)
    x = torch.randn(4, 6, 7, 7, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 300
    want = ours(x)
    got = ours.float()(x.float())
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-3)


def _float32_layer() -> SwitchNorm2d:
    torch.manual_seed(0)
    layer = SwitchNorm2d(6)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.normal_()
        layer.mean_weight.normal_()
        layer.var_weight.normal_()
    return layer


@pytest.mark.parametrize("training", [True, False])
def test_bf16_autocast_on_cpu_is_close_to_float32(training: bool) -> None:
    conv = nn.Conv2d(3, 6, 3, padding=1)
    model = nn.Sequential(conv, _float32_layer()).train(training)
    x = torch.randn(4, 3, 8, 8)
    reference = copy.deepcopy(model)
    want = reference(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = model(x)
    assert got.dtype == torch.bfloat16  # the conv's output dtype, kept by the norm
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), want, rtol=0.05, atol=0.05)
    got.float().square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    # A bf16 input without autocast: float32 statistics, bf16 output.
    layer = _float32_layer().train(training)
    xb = torch.randn(4, 6, 8, 8).bfloat16()
    torch.testing.assert_close(layer(xb).float(), _float32_layer().train(training)(xb.float()), rtol=0.02, atol=0.02)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_input_uses_float32_statistics(dtype: torch.dtype) -> None:
    layer = _float32_layer()
    # A large mean against the spread: float16 arithmetic on x would lose the signal.
    x = (torch.randn(4, 6, 8, 8) * 0.5 + 20).to(dtype)
    y = layer(x)
    assert y.dtype == dtype
    want = _float32_layer()(x.float())
    torch.testing.assert_close(y.float(), want, rtol=0.02, atol=0.02)


@pytest.mark.parametrize("training", [True, False])
def test_channels_last_matches_contiguous(training: bool) -> None:
    contiguous, channels_last = _float32_layer().train(training), _float32_layer().train(training)
    x = torch.randn(4, 6, 7, 5) * 2 + 1
    xa = x.clone().requires_grad_()
    xb = x.clone().to(memory_format=torch.channels_last).requires_grad_()
    ya, yb = contiguous(xa), channels_last(xb)
    assert yb.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ya)
    ya.backward(grad)
    yb.backward(grad)
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(channels_last.mean_weight.grad, contiguous.mean_weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(channels_last.running_mean, contiguous.running_mean)
    torch.testing.assert_close(channels_last.running_var, contiguous.running_var)


@pytest.mark.parametrize("momentum,using_moving_average", [(0.1, True), (None, False)])
def test_torch_compile_matches_eager(momentum: float | None, using_moving_average: bool) -> None:
    eager = _float32_layer()
    eager.momentum, eager.using_moving_average = momentum, using_moving_average
    compiled_layer = copy.deepcopy(eager)
    # fullgraph: a graph break (e.g. a .item() on the step count) fails the test.
    compiled = torch.compile(compiled_layer, fullgraph=True)
    for k in range(2):
        x = torch.randn(2, 6, 4, 4) * (k + 1)
        torch.testing.assert_close(compiled(x), eager(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled_layer.running_mean, eager.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled_layer.running_var, eager.running_var, rtol=1e-5, atol=1e-6)
    assert int(compiled_layer.num_batches_tracked) == int(eager.num_batches_tracked) == 2
    eager.eval()
    compiled_layer.eval()
    x = torch.randn(1, 6, 4, 4)
    torch.testing.assert_close(compiled(x), eager(x), rtol=1e-5, atol=1e-5)


def test_without_running_stats_and_affine() -> None:
    layer = SwitchNorm2d(6, affine=False, track_running_stats=False, dtype=torch.float64)
    official = OfficialSwitchNorm2d(6).double()
    x = _random(4, 90)
    want = official(x)  # official train mode: batch statistics, γ = 1, β = 0
    torch.testing.assert_close(layer(x), want, **TOL)
    torch.testing.assert_close(layer.eval()(x), want, **TOL)  # no running stats: batch stats in eval too


def test_extra_repr_mentions_the_switch() -> None:
    text = repr(SwitchNorm2d(8, using_moving_average=False))
    assert "switch=(IN, LN, BN)" in text and "using_moving_average=False" in text


def test_reset_parameters_resets_the_switch() -> None:
    layer = _float32_layer()
    layer.reset_parameters()
    assert torch.equal(layer.mean_weight, torch.ones(3)) and torch.equal(layer.var_weight, torch.ones(3))
    assert torch.equal(layer.weight, torch.ones(6)) and torch.equal(layer.running_var, torch.ones(6))
    w, w_var = layer.switch_weights()
    torch.testing.assert_close(w, torch.full((3,), 1 / 3))
    torch.testing.assert_close(w_var, torch.full((3,), 1 / 3))


# The fused eager path: a closed-form backward, a no-grad path, and its own kernels for maps of
# more than 256 values (BatchNorm's kernel on a flat view) and for non-contiguous gradients.


@pytest.mark.parametrize("grad_kind", ["random", "expanded"])
def test_large_maps_match_official(grad_kind: str) -> None:
    ours, official = _pair(6, seed=4)
    g = torch.Generator().manual_seed(6)
    for training in (True, True, False):
        ours.train(training)
        official.train(training)
        x = torch.randn(3, 6, 17, 16, generator=g, dtype=torch.float64) * 2 + 1  # 272 values per map
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ours(xa), official(xb)
        torch.testing.assert_close(ya, yb, **TOL)
        if grad_kind == "random":
            grad = torch.randn(ya.shape, generator=g, dtype=ya.dtype)
            ya.backward(grad)
            yb.backward(grad)
        else:  # the gradient of a sum: a stride-0 tensor
            ya.sum().backward()
            yb.sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, **TOL)
        for name in ("weight", "bias", "mean_weight", "var_weight"):
            a, b = getattr(ours, name), getattr(official, name)
            torch.testing.assert_close(a.grad, b.grad.reshape(a.shape), **TOL)
            a.grad, b.grad = None, None
    torch.testing.assert_close(ours.running_var, official.running_var.view(6), **TOL)


@pytest.mark.parametrize("training", [True, False])
def test_gradgradcheck(training: bool) -> None:
    layer = SwitchNorm2d(3, dtype=torch.float64).train(training)
    with torch.no_grad():
        layer.running_mean.copy_(torch.tensor([0.3, -0.2, 0.1]))
        layer.running_var.copy_(torch.tensor([0.5, 1.5, 2.0]))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    params = [torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(4)]

    def fn(x: Tensor, weight: Tensor, bias: Tensor, mean_weight: Tensor, var_weight: Tensor) -> Tensor:
        values = {"weight": weight, "bias": bias, "mean_weight": mean_weight, "var_weight": var_weight}
        return torch.func.functional_call(layer, values, (x,))

    assert torch.autograd.gradgradcheck(fn, (x, *params))


@pytest.mark.parametrize("shape", [(4, 6, 5, 7), (2, 6, 17, 16)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_no_grad_output_matches_the_autograd_output(shape: tuple[int, ...], channels_last: bool,
                                                    training: bool) -> None:
    x = torch.randn(shape) * 3 - 1
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    with_grad, without = _float32_layer().train(training), _float32_layer().train(training)
    want = with_grad(x.clone().requires_grad_())
    with torch.no_grad():
        got = without(x)
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(got, want.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(without.running_var, with_grad.running_var)


def test_float32_gradients_are_accurate_when_the_mean_dwarfs_the_spread() -> None:
    # The backward reads x, not x − μ_in: its per-map sums centre x element by element.
    x = torch.randn(4, 6, 7, 7, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 300
    x = x.float().double()  # representable in float32: both precisions see the same input
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    results = []
    for dtype in (torch.float64, torch.float32):
        layer = _float32_layer().to(dtype)
        xd = x.detach().to(dtype).requires_grad_()
        layer(xd).backward(grad.to(dtype))
        results.append((xd.grad.double(), layer.weight.grad.double(), layer.bias.grad.double()))
    for want, got in zip(*results):
        torch.testing.assert_close(got, want, rtol=0, atol=5e-5 * float(want.abs().max()))
