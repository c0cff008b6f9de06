"""TransNorm2d against an independent transcription of the official layer, plus loading, splits, dtypes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.gradcheck import GradcheckError

from dabin.nn.domain_stats import target_stats
from dabin.nn.recalibrate import recalibrate_norm_stats
from dabin.nn.transnorm import TransNorm2d, domain_split, eval_statistics

TOL = dict(rtol=1e-10, atol=1e-10)
C = 4


# --------------------------------------------------------------------------------------------------
# Reference: a float64 transcription of github.com/thuml/TransNorm, src/trans_norm.py,
# _TransNorm.forward (TransNorm2d), with its buffers passed in a dict and two generalizations the
# official code lacks, both marked: the split size (the code always takes N // 2 source rows) and
# normalizing eval batches with the source's statistics (the code always uses the target's).
# --------------------------------------------------------------------------------------------------
def official_forward(x: Tensor, state: dict[str, Tensor], weight: Tensor, bias: Tensor, training: bool,
                     momentum: float, eps: float, n_source: int | None = None,
                     eval_source: bool = False) -> tuple[Tensor, Tensor]:
    """Returns (output, alpha); updates ``state`` in training as F.batch_norm does in the code."""
    num_features = x.shape[1]
    if training:
        batch_size = x.size()[0] // 2 if n_source is None else n_source  # generalization: n_source
        input_source = x[:batch_size]
        input_target = x[batch_size:]
        z_source = F.batch_norm(input_source, state["running_mean_source"], state["running_var_source"],
                                weight, bias, True, momentum, eps)
        z_target = F.batch_norm(input_target, state["running_mean_target"], state["running_var_target"],
                                weight, bias, True, momentum, eps)
        z = torch.cat((z_source, z_target), dim=0)
        input_source = input_source.permute(0, 2, 3, 1).contiguous().view(-1, num_features)
        input_target = input_target.permute(0, 2, 3, 1).contiguous().view(-1, num_features)
        cur_mean_source = torch.mean(input_source, dim=0)
        cur_var_source = torch.var(input_source, dim=0)
        cur_mean_target = torch.mean(input_target, dim=0)
        cur_var_target = torch.var(input_target, dim=0)
        dis = torch.abs(cur_mean_source / torch.sqrt(cur_var_source + eps)
                        - cur_mean_target / torch.sqrt(cur_var_target + eps))
        prob = 1.0 / (1.0 + dis)
        alpha = num_features * prob / sum(prob)
        return z * (1 + alpha.detach().view(1, num_features, 1, 1)), alpha.detach()
    domain = "source" if eval_source else "target"  # generalization: the code has "target" only
    z = F.batch_norm(x, state[f"running_mean_{domain}"], state[f"running_var_{domain}"], weight, bias,
                     False, momentum, eps)
    dis = torch.abs(state["running_mean_source"] / torch.sqrt(state["running_var_source"] + eps)
                    - state["running_mean_target"] / torch.sqrt(state["running_var_target"] + eps))
    prob = 1.0 / (1.0 + dis)
    alpha = num_features * prob / sum(prob)
    return z * (1 + alpha.detach().view(1, num_features, 1, 1)), alpha.detach()


def _official_state() -> dict[str, Tensor]:
    # The official __init__: zeros and ones (our layer starts from the same values).
    return {"running_mean_source": torch.zeros(C, dtype=torch.float64),
            "running_mean_target": torch.zeros(C, dtype=torch.float64),
            "running_var_source": torch.ones(C, dtype=torch.float64),
            "running_var_target": torch.ones(C, dtype=torch.float64)}


def _batch(n_source: int, n_target: int, kind: str, generator: torch.Generator) -> Tensor:
    source = torch.randn(n_source, C, 5, 3, dtype=torch.float64, generator=generator) * 1.5 + 0.5
    if kind == "identical":
        assert n_source == n_target
        return torch.cat([source, source.clone()])
    target = torch.randn(n_target, C, 5, 3, dtype=torch.float64, generator=generator)
    if kind == "different":
        # Channels 0, 1: far apart across domains (α ≪ 1); channels 2, 3: close (α > 1).
        shift = torch.tensor([6.0, -4.0, 0.0, 0.1], dtype=torch.float64).view(1, C, 1, 1)
        spread = torch.tensor([0.3, 1.0, 1.5, 1.5], dtype=torch.float64).view(1, C, 1, 1)
        target = target * spread + 0.5 + shift
    return torch.cat([source, target])


def _layer(momentum: float | None) -> TransNorm2d:
    layer = TransNorm2d(C, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.0, 0.5, -1.5, 2.0]))
        layer.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    return layer


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("kind, n_source, n_target", [("different", 4, 4), ("identical", 3, 3),
                                                      ("different", 3, 6), ("random", 5, 2)])
def test_matches_the_official_layer(momentum: float | None, kind: str, n_source: int, n_target: int) -> None:
    generator = torch.Generator().manual_seed(0)
    layer = _layer(momentum)
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()
    state = _official_state()
    split = None if n_source == n_target else n_source  # equal halves: the layer's default
    for step in range(1, 4):
        x = _batch(n_source, n_target, kind, generator).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        # The official code has no cumulative mode; the cumulative average is momentum 1/step.
        factor = 1.0 / step if momentum is None else momentum
        expected, alpha = official_forward(x_ref, state, weight, bias, True, factor, layer.eps, n_source=split)
        with domain_split(layer, split):
            out = layer(x)
        torch.testing.assert_close(out, expected, **TOL)
        upstream = torch.randn(out.shape, dtype=torch.float64, generator=generator)
        out.backward(upstream)
        expected.backward(upstream)
        torch.testing.assert_close(x.grad, x_ref.grad, **TOL)
        torch.testing.assert_close(layer.weight.grad, weight.grad, **TOL)
        torch.testing.assert_close(layer.bias.grad, bias.grad, **TOL)
        for parameter in (layer.weight, layer.bias, weight, bias):
            parameter.grad = None
        if kind == "identical":
            torch.testing.assert_close(alpha, torch.ones(C, dtype=torch.float64), rtol=0, atol=1e-12)
        if kind == "different":
            assert alpha[:2].max() < 0.5 and alpha[2:].min() > 1.4  # far from 1 both ways
    # Running statistics of both domains after three steps.
    torch.testing.assert_close(layer.running_mean, state["running_mean_source"], **TOL)
    torch.testing.assert_close(layer.running_var, state["running_var_source"], **TOL)
    torch.testing.assert_close(layer.target_running_mean, state["running_mean_target"], **TOL)
    torch.testing.assert_close(layer.target_running_var, state["running_var_target"], **TOL)
    assert int(layer.num_batches_tracked) == int(layer.target_num_batches_tracked) == 3
    # Eval: the target's statistics by default, α from both domains' running statistics.
    layer.eval()
    x = _batch(n_source, n_target, kind, generator)
    expected, alpha = official_forward(x, state, weight, bias, False, 0.1, layer.eps)
    torch.testing.assert_close(layer(x), expected, **TOL)
    torch.testing.assert_close(layer.running_alpha(), alpha, **TOL)
    expected_source, _ = official_forward(x, state, weight, bias, False, 0.1, layer.eps, eval_source=True)
    with eval_statistics(layer, "source"):
        torch.testing.assert_close(layer(x), expected_source, **TOL)
    if kind == "identical":  # the same statistics in both domains: α = 1, either domain normalizes alike
        torch.testing.assert_close(layer.running_alpha(), torch.ones(C, dtype=torch.float64), rtol=0, atol=1e-12)
        torch.testing.assert_close(expected, expected_source, **TOL)
    else:
        assert not torch.allclose(expected, expected_source)


def test_gradcheck_in_training(monkeypatch: pytest.MonkeyPatch) -> None:
    import dabin.nn.transnorm as transnorm
    import dabin.nn.transnorm_functional as transnorm_functional

    layer = TransNorm2d(3, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 2, 2, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(3, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(3, dtype=torch.float64, generator=generator, requires_grad=True)

    def f(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,), strict=False)

    with domain_split(layer, 1):  # an unequal split: 1 source row, 2 target rows
        # α does not depend on γ, β: the true function's gradient.
        assert torch.autograd.gradcheck(lambda w, b: f(x.detach(), w, b), (weight, bias))
        # α is a stop-gradient of x (the official alpha.detach()), so finite differences of the
        # layer see a dependence its gradient omits by design ...
        with pytest.raises(GradcheckError):
            torch.autograd.gradcheck(f, (x, weight, bias))
        # ... and with α held at its value the rest (per-domain batch statistics) checks exactly.
        fixed = transnorm_functional._alpha(*_split_moments(x.detach(), 1), layer.eps)
        monkeypatch.setattr(transnorm, "_alpha", lambda *args: fixed)  # where the layer looks it up
        assert torch.autograd.gradcheck(f, (x, weight, bias))
        assert torch.autograd.gradgradcheck(f, (x, weight, bias))


def _split_moments(x: Tensor, n_source: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    var_s, mean_s = torch.var_mean(x[:n_source], dim=(0, 2, 3))
    var_t, mean_t = torch.var_mean(x[n_source:], dim=(0, 2, 3))
    return mean_s, var_s, mean_t, var_t


def test_gradcheck_in_eval() -> None:
    layer = _trained_layer().double().eval()
    x = torch.randn(3, C, 2, 2, dtype=torch.float64, requires_grad=True)
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()

    def f(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,), strict=False)

    assert torch.autograd.gradcheck(f, (x, weight, bias))


def test_batchnorm_state_dict_loads_strictly_and_round_trips() -> None:
    bn = nn.Sequential(nn.BatchNorm2d(C))
    bn.train()
    for _ in range(2):
        bn(torch.randn(6, C, 4, 4) * 2 + 1)
    tn = nn.Sequential(TransNorm2d(C))
    tn.load_state_dict(bn.state_dict(), strict=True)
    layer = tn[0]
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(layer, name), getattr(bn[0], name))
        assert torch.equal(getattr(layer, "target_" + name), getattr(bn[0], name))
        assert getattr(layer, "target_" + name) is not getattr(layer, name)  # own storage
    assert torch.equal(layer.weight, bn[0].weight)
    # Train so the domains' statistics differ, then round-trip the layer's own state dict.
    with domain_split(tn, 2):
        tn(torch.cat([torch.randn(2, C, 4, 4), torch.randn(5, C, 4, 4) * 3 - 2]))
    state = tn.state_dict()
    assert {"0.target_running_mean", "0.target_running_var", "0.target_num_batches_tracked"} <= set(state)
    assert not torch.equal(state["0.running_mean"], state["0.target_running_mean"])
    copy = nn.Sequential(TransNorm2d(C))
    copy.load_state_dict(state, strict=True)
    for key, value in copy.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_old_batchnorm_state_dict_without_batch_count_loads() -> None:
    state = nn.BatchNorm2d(C).state_dict()
    del state["num_batches_tracked"]
    state._metadata[""]["version"] = 1  # type: ignore[attr-defined]
    layer = TransNorm2d(C)
    layer.num_batches_tracked.fill_(7)
    layer.target_num_batches_tracked.fill_(7)
    layer.load_state_dict(state, strict=True)
    # BatchNorm keeps its current count for such a checkpoint; the target's does the same.
    assert int(layer.num_batches_tracked) == int(layer.target_num_batches_tracked) == 7


def test_reset_running_stats_resets_both_domains() -> None:
    layer = TransNorm2d(C)
    layer(torch.randn(4, C, 3, 3) + 2)
    layer.reset_running_stats()
    assert torch.equal(layer.target_running_mean, torch.zeros(C))
    assert torch.equal(layer.target_running_var, torch.ones(C))
    assert int(layer.target_num_batches_tracked) == 0


def test_split_errors() -> None:
    layer = TransNorm2d(C)
    with pytest.raises(ValueError, match="odd batch"):
        layer(torch.randn(5, C, 2, 2))
    with domain_split(layer, 2):
        assert layer(torch.randn(5, C, 2, 2)).shape == (5, C, 2, 2)  # explicit split: fine
    with domain_split(layer, 5), pytest.raises(ValueError, match="empty"):
        layer(torch.randn(5, C, 2, 2))
    with pytest.raises(ValueError, match="more than one value"):
        layer(torch.randn(2, C, 1, 1))
    with pytest.raises(ValueError), domain_split(layer, 0):
        pass
    with pytest.raises(TypeError), domain_split(layer, True):  # type: ignore[arg-type]
        pass
    with pytest.raises(ValueError):
        layer.eval_domain = "both"  # type: ignore[assignment]


def test_context_managers_restore_after_an_exception() -> None:
    net = nn.Sequential(nn.Conv2d(3, C, 1), TransNorm2d(C), nn.ReLU(), TransNorm2d(C))
    net[3].source_size = 7
    with pytest.raises(RuntimeError, match="boom"), domain_split(net, 3) as count:
        assert count == 2 and net[1].source_size == 3 and net[3].source_size == 3
        with domain_split(net, None):
            assert net[3].source_size is None
        assert net[3].source_size == 3
        raise RuntimeError("boom")
    assert net[1].source_size is None and net[3].source_size == 7
    with pytest.raises(RuntimeError, match="boom"), eval_statistics(net, "source"):
        assert net[1].eval_domain == "source"
        raise RuntimeError("boom")
    assert net[1].eval_domain == net[3].eval_domain == "target"


def _trained_layer() -> TransNorm2d:
    torch.manual_seed(3)
    layer = TransNorm2d(C)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
    layer(torch.cat([torch.randn(4, C, 6, 6), torch.randn(4, C, 6, 6) * 2 + 1]))
    return layer


@pytest.mark.parametrize("training", [True, False])
def test_bfloat16_autocast_close_to_float32(training: bool) -> None:
    torch.manual_seed(4)
    conv = nn.Conv2d(3, C, 3, padding=1)
    layer = _trained_layer()
    reference = _trained_layer()
    layer.train(training)
    reference.train(training)
    x = torch.cat([torch.randn(4, 3, 6, 6), torch.randn(4, 3, 6, 6) * 2 + 1])
    expected = reference(conv(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = conv(x)
        assert hidden.dtype == torch.bfloat16
        out = layer(hidden)
    assert out.dtype == torch.bfloat16
    assert layer.running_mean.dtype == layer.target_running_var.dtype == torch.float32
    torch.testing.assert_close(out.float(), expected, rtol=3e-2, atol=3e-2)
    for name in ("running_mean", "running_var", "target_running_mean", "target_running_var"):
        torch.testing.assert_close(getattr(layer, name), getattr(reference, name), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("training", [True, False])
def test_channels_last_matches_contiguous(training: bool) -> None:
    layer, reference = _trained_layer(), _trained_layer()
    layer.train(training)
    reference.train(training)
    x = torch.cat([torch.randn(4, C, 6, 6), torch.randn(4, C, 6, 6) * 2 + 1])
    x_last = x.clone().to(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    out, expected = layer(x_last), reference(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    upstream = torch.randn(out.shape)
    out.backward(upstream)
    expected.backward(upstream)
    torch.testing.assert_close(x_last.grad, x.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-5)


def test_no_running_stats_uses_batch_statistics_in_eval() -> None:
    layer = TransNorm2d(C, track_running_stats=False).eval()
    assert layer.target_running_mean is None and "target_running_mean" not in layer.state_dict()
    x = torch.randn(6, C, 3, 3, dtype=torch.float64)
    layer = layer.double()
    state = _official_state()
    expected, _ = official_forward(x, state, layer.weight, layer.bias, True, 0.1, layer.eps)
    torch.testing.assert_close(layer(x), expected, **TOL)
    with pytest.raises(RuntimeError):
        layer.running_alpha()


def test_recalibration_recipe_writes_the_target_statistics() -> None:
    """AdaBN's population statistics of target data go to the target's buffers, consistently."""
    torch.manual_seed(5)
    net = nn.Sequential(TransNorm2d(3), nn.Conv2d(3, C, 3), TransNorm2d(C)).double()
    net(torch.cat([torch.randn(4, 3, 6, 6, dtype=torch.float64), torch.randn(4, 3, 6, 6, dtype=torch.float64)]))
    source = [(layer.running_mean.clone(), layer.running_var.clone()) for layer in (net[0], net[2])]
    target_batches = [torch.randn(5, 3, 6, 6, dtype=torch.float64) * 2 + 3 for _ in range(3)]
    with target_stats(net), eval_statistics(net, "source"):
        assert recalibrate_norm_stats(net, target_batches) == 2
    for layer, (mean, var) in zip((net[0], net[2]), source):  # the source's untouched
        assert torch.equal(layer.running_mean, mean) and torch.equal(layer.running_var, var)
    images = torch.cat(target_batches)
    torch.testing.assert_close(net[0].target_running_mean, images.mean(dim=(0, 2, 3)), **TOL)
    torch.testing.assert_close(net[0].target_running_var, images.var(dim=(0, 2, 3)), **TOL)
    # The second layer's statistics are those of its input as the model now runs on the target.
    net.eval()
    with torch.no_grad():
        hidden = net[1](net[0](images))
    torch.testing.assert_close(net[2].target_running_mean, hidden.mean(dim=(0, 2, 3)), **TOL)
    torch.testing.assert_close(net[2].target_running_var, hidden.var(dim=(0, 2, 3)), **TOL)


@pytest.mark.parametrize("grad_kind", ["random", "expanded"])
def test_large_maps_match_the_official_layer(grad_kind: str) -> None:
    """Maps of more than 256 values and stride-0 gradients take their own kernels in the fused path."""
    generator = torch.Generator().manual_seed(2)
    layer = _layer(0.1)
    weight = layer.weight.detach().clone().requires_grad_()
    bias = layer.bias.detach().clone().requires_grad_()
    state = _official_state()
    x = torch.randn(5, C, 17, 16, dtype=torch.float64, generator=generator) * 1.5 + 0.5
    x_ref = x.clone().requires_grad_()
    x.requires_grad_()
    expected, _ = official_forward(x_ref, state, weight, bias, True, 0.1, layer.eps, n_source=2)
    with domain_split(layer, 2):
        out = layer(x)
    torch.testing.assert_close(out, expected, **TOL)
    if grad_kind == "random":
        upstream = torch.randn(out.shape, dtype=torch.float64, generator=generator)
        out.backward(upstream)
        expected.backward(upstream)
    else:
        (out.sum() + out[0].sum()).backward()
        (expected.sum() + expected[0].sum()).backward()
    torch.testing.assert_close(x.grad, x_ref.grad, **TOL)
    torch.testing.assert_close(layer.weight.grad, weight.grad, **TOL)
    torch.testing.assert_close(layer.bias.grad, bias.grad, **TOL)
    torch.testing.assert_close(layer.target_running_var, state["running_var_target"], **TOL)


@pytest.mark.parametrize("shape", [(4, C, 5, 7), (4, C, 17, 16)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_no_grad_training_output_matches_the_autograd_output(shape: tuple[int, ...], channels_last: bool) -> None:
    x = torch.cat([torch.randn(shape), torch.randn(shape) * 2 + 1])
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    with_grad, without = _trained_layer(), _trained_layer()
    want = with_grad(x.clone().requires_grad_())
    with torch.no_grad():
        got = without(x)
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(got, want.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(without.target_running_var, with_grad.target_running_var)


def test_float32_is_accurate_when_the_mean_dwarfs_the_spread() -> None:
    # α compares μ/σ of the domains (~300 here): the pooled variances must be exact to ~1e-7 (pooling
    # the maps' moments without the rounded means' residual Σ(x − μ) loses 10× more, 7e-4 here).
    generator = torch.Generator().manual_seed(2)
    x = (torch.randn(8, C, 7, 7, dtype=torch.float64, generator=generator) + 300).float().double()
    grad = torch.randn(x.shape, dtype=torch.float64, generator=generator)
    results = []
    for dtype in (torch.float64, torch.float32):
        layer = _trained_layer().to(dtype)
        xd = x.detach().to(dtype).requires_grad_()
        out = layer(xd)
        out.backward(grad.to(dtype))
        results.append((out.detach().double(), xd.grad.double(), layer.weight.grad.double()))
    (want_out, *want_grads), (got_out, *got_grads) = results
    torch.testing.assert_close(got_out, want_out, rtol=0, atol=2e-4)
    for want, got in zip(want_grads, got_grads):
        torch.testing.assert_close(got, want, rtol=0, atol=5e-5 * float(want.abs().max()))
