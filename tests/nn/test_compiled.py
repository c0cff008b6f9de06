"""The compiled BIN kernels compute what the eager path computes (values, gradients, running stats)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from dabin.nn import BatchInstanceNorm2d, compiled


@pytest.fixture
def eager_switch() -> Iterator[None]:
    enabled = compiled.compiled_enabled()
    yield
    compiled.set_compiled(enabled)


def _run(x: torch.Tensor, grad: torch.Tensor, train: bool, use_compiled: bool) -> tuple[torch.Tensor, ...]:
    compiled.set_compiled(use_compiled)
    torch.manual_seed(0)
    layer = BatchInstanceNorm2d(x.shape[1]).train(train)
    with torch.no_grad():
        layer.gate.uniform_()
        layer.weight.normal_()
        layer.bias.normal_()
        layer.running_mean.normal_()
        layer.running_var.uniform_(0.5, 2.0)
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(grad)
    return y.detach(), x.grad, layer.weight.grad, layer.bias.grad, layer.gate.grad, layer.running_mean, layer.running_var


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("shape", [(4, 6, 5, 7), (3, 8, 1, 2)])
def test_compiled_matches_eager(shape: tuple[int, ...], train: bool, eager_switch: None) -> None:
    if not compiled.compiled_enabled():
        pytest.fail("the compiled kernels are disabled in this environment (DABIN_BIN_COMPILE=0 or a failed compile)")
    x = torch.randn(*shape) * 3 + 1
    grad = torch.randn(*shape)
    fast = _run(x, grad, train, use_compiled=True)
    assert compiled.compiled_enabled(), "compilation failed and fell back to eager"
    slow = _run(x, grad, train, use_compiled=False)
    for a, b in zip(fast, slow):
        # Both are float32 with different summation orders; 1x2 maps have ill-conditioned instance
        # statistics (two values per instance), hence the tolerance.
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), (a - b).abs().max()


def test_eligibility() -> None:
    assert compiled.eligible(torch.randn(2, 3, 4, 4)) == compiled.compiled_enabled()
    assert not compiled.eligible(torch.randn(2, 3, 4, 4, dtype=torch.float64))
    assert not compiled.eligible(torch.randn(2, 3, 1, 1))
    assert not compiled.eligible(torch.randn(2, 3, 4, 4).to(memory_format=torch.channels_last))


def test_one_graph_per_kernel_across_channel_counts(eager_switch: None) -> None:
    """A network's BIN layers differ in width; each width must not compile its own kernels."""
    from torch._dynamo.utils import counters

    compiled.set_compiled(True)

    def step(channels: int) -> None:
        layer = BatchInstanceNorm2d(channels)
        x = torch.randn(3, channels, 5, 7, requires_grad=True)
        layer(x).sum().backward()
        layer.eval()(x.detach())

    for channels in (4, 6):  # the second width lets Dynamo generalize the first graph's sizes
        step(channels)
    assert compiled.compiled_enabled(), "compilation failed and fell back to eager"
    graphs = counters["stats"]["unique_graphs"]
    for channels in (10, 12, 20):
        step(channels)
    assert counters["stats"]["unique_graphs"] == graphs, "a new channel count recompiled a kernel"
