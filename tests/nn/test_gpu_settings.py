"""GPU settings users turn on (bf16 autocast, channels_last, torch.compile), checked on the CPU.

Each test runs one training step (forward, backward, SGD step) of a small BIN ResNet-18 whose
gates, γ and β are random, so both branches of every BIN layer matter, and compares it with an
independent float32 reference: the contiguous eager model (``compiled.set_compiled(False)``), or
for one layer the authors' two-pass formulation differentiated by autograd
(:func:`dabin.nn.reference.batch_instance_norm_reference`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dabin.cli import main
from dabin.models import resnet18
from dabin.nn import BatchInstanceNorm2d, compiled
from dabin.nn.reference import batch_instance_norm_reference

REPO = Path(__file__).resolve().parents[2]
SHAPE = (8, 3, 32, 32)
NUM_CLASSES = 5
LR = 0.1


@pytest.fixture
def restore_compiled() -> Iterator[None]:
    """Put the process-wide compiled-kernel switch back as it was."""
    enabled = compiled.compiled_enabled()
    yield
    compiled.set_compiled(enabled)


def _bin_layers(model: nn.Module) -> list[BatchInstanceNorm2d]:
    return [m for m in model.modules() if isinstance(m, BatchInstanceNorm2d)]


def _model(seed: int = 0) -> nn.Module:
    """BIN ResNet-18 (width 8, 32-px stem) with random gates in [0, 1], γ and β."""
    torch.manual_seed(seed)
    model = resnet18(norm="bin", width=8, small_input=True, num_classes=NUM_CLASSES)
    with torch.no_grad():
        for layer in _bin_layers(model):
            layer.gate.uniform_()
            layer.weight.uniform_(0.5, 1.5)
            layer.bias.normal_(0.0, 0.2)
    return model.train()


def _batch(seed: int = 1) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*SHAPE, generator=generator), torch.randint(0, NUM_CLASSES, (SHAPE[0],), generator=generator)


@dataclass
class Step:
    """What one SGD step produced."""

    logits: Tensor
    loss: Tensor
    grads: dict[str, Tensor]
    params: dict[str, Tensor]  # after the step
    buffers: dict[str, Tensor]  # running statistics after the step


def _step(model: nn.Module, x: Tensor, y: Tensor, params_of: nn.Module | None = None) -> Step:
    """Forward, backward and one plain SGD step; ``params_of`` names the parameters (an uncompiled model)."""
    named = params_of if params_of is not None else model
    optimizer = torch.optim.SGD(named.parameters(), lr=LR)
    optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in named.named_parameters() if p.grad is not None}
    optimizer.step()
    return Step(logits.detach(), loss.detach(), grads,
                {name: p.detach().clone() for name, p in named.named_parameters()},
                {name: b.detach().clone() for name, b in named.named_buffers()})


def _eager_step(model: nn.Module, x: Tensor, y: Tensor) -> Step:
    """The float32 reference: contiguous input, BIN's eager code (no compiled kernels)."""
    compiled.set_compiled(False)
    return _step(model, x.contiguous(), y)


def _assert_close(actual: Tensor, expected: Tensor, what: str, rtol: float, atol: float) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert torch.isfinite(actual).all(), f"{what}: not finite"
    error = (actual.float() - expected.float()).abs()
    bound = atol + rtol * expected.float().abs()
    assert (error <= bound).all(), f"{what}: max abs error {error.max().item():.3g} (rtol {rtol}, atol {atol})"


def _assert_steps_equal(actual: Step, expected: Step, rtol: float, atol: float) -> None:
    _assert_close(actual.logits, expected.logits, "logits", rtol, atol)
    assert set(actual.grads) == set(expected.grads), "parameters with a gradient differ"
    for name, grad in expected.grads.items():
        _assert_close(actual.grads[name], grad, f"grad of {name}", rtol, atol)
    for name, value in expected.params.items():
        _assert_close(actual.params[name], value, f"{name} after the SGD step", rtol, atol)
    for name, value in expected.buffers.items():
        _assert_close(actual.buffers[name], value, f"buffer {name}", rtol, atol)


def _assert_bin_params_trained(step: Step, model: nn.Module) -> None:
    """Every BIN layer's gate, γ and β got a finite, non-zero gradient."""
    names = [f"{prefix}.{p}" for prefix, m in model.named_modules() if isinstance(m, BatchInstanceNorm2d)
             for p in ("gate", "weight", "bias")]
    assert len(names) == 3 * 20  # ResNet-18: 17 BIN layers in the blocks and stem, 3 in the downsamples
    for name in names:
        assert name in step.grads, f"{name} got no gradient"
        assert torch.isfinite(step.grads[name]).all(), f"{name}: gradient not finite"
        assert step.grads[name].abs().sum() > 0, f"{name}: gradient is zero"


# -- bf16-mixed -------------------------------------------------------------------------------------


def test_bf16_autocast_one_layer_matches_float32_reference(restore_compiled: None) -> None:
    """One BIN layer on bf16 input under autocast against the float32 two-pass reference."""
    compiled.set_compiled(False)
    torch.manual_seed(0)
    layer = BatchInstanceNorm2d(16).train()
    with torch.no_grad():
        layer.gate.uniform_()
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.normal_(0.0, 0.2)
    x16 = (torch.randn(8, 16, 12, 12) * 2 + 0.5).bfloat16()
    grad16 = torch.randn(8, 16, 12, 12).bfloat16()
    reference = copy.deepcopy(layer)

    x = x16.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    y.backward(grad16)
    assert y.dtype == torch.bfloat16 and x.grad is not None and x.grad.dtype == torch.bfloat16
    assert layer.running_mean.dtype == torch.float32

    # The reference sees the same (bf16-representable) values, in float32 throughout.
    x_ref = x16.float().requires_grad_()
    y_ref = batch_instance_norm_reference(x_ref, reference.running_mean, reference.running_var, reference.weight,
                                          reference.bias, reference.gate, True, reference.momentum, reference.eps)
    y_ref.backward(grad16.float())

    # The output is a float32 result rounded to bf16 once (8 significant bits: 2^-8 relative).
    _assert_close(y, y_ref, "output", rtol=2**-8, atol=1e-3)
    _assert_close(x.grad, x_ref.grad, "input gradient", rtol=2**-7, atol=2e-3)
    # Statistics and parameter gradients are accumulated in float32 from the same values.
    for name in ("gate", "weight", "bias"):
        _assert_close(getattr(layer, name).grad, getattr(reference, name).grad, f"grad of {name}",
                      rtol=1e-4, atol=1e-4)
    _assert_close(layer.running_mean, reference.running_mean, "running_mean", rtol=1e-5, atol=1e-6)
    _assert_close(layer.running_var, reference.running_var, "running_var", rtol=1e-5, atol=1e-6)


def test_bf16_autocast_resnet_step(restore_compiled: None) -> None:
    x, y = _batch()
    model = _model()
    reference = copy.deepcopy(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        step = _step(model, x, y)
    assert step.logits.dtype == torch.bfloat16  # autocast really ran the network in bf16
    assert torch.isfinite(step.loss)
    _assert_bin_params_trained(step, model)
    for layer in _bin_layers(model):
        assert layer.gate.dtype == layer.weight.dtype == layer.running_var.dtype == torch.float32
        assert torch.isfinite(layer.running_mean).all() and torch.isfinite(layer.running_var).all()

    expected = _eager_step(reference, x, y)
    # bf16 convolutions through 20 layers: the loss agrees to a few bf16 ulps, and the gates'
    # gradient (eq. 5) points the same way as in float32.
    assert abs(step.loss.item() - expected.loss.item()) <= 0.05 * abs(expected.loss.item()), \
        (step.loss.item(), expected.loss.item())
    gates = [n for n in expected.grads if n.endswith(".gate")]
    bf16_gates = torch.cat([step.grads[n] for n in gates])
    fp32_gates = torch.cat([expected.grads[n] for n in gates])
    cosine = F.cosine_similarity(bf16_gates, fp32_gates, dim=0).item()
    assert cosine > 0.9, f"bf16 gate gradients disagree with float32 (cosine {cosine:.3f})"


def test_bf16_mixed_lightning_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One real ``dabin fit`` step with ``--trainer.precision bf16-mixed``."""
    capsys.readouterr()
    status = main(["fit", "-c", str(REPO / "experiments" / "demo" / "mixed.yaml"),
                   "--trainer.precision", "bf16-mixed", "--trainer.max_steps", "1",
                   "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
                   "--data.batch_size", "8", "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["norm"] == "bin" and metrics["steps"] == 1
    assert metrics["test"] and all(0 <= v["accuracy"] <= 100 and v["n"] > 0 for v in metrics["test"].values())


# -- channels_last ----------------------------------------------------------------------------------


def test_channels_last_one_layer_keeps_the_format() -> None:
    layer = BatchInstanceNorm2d(16).train()
    with torch.no_grad():
        layer.gate.uniform_()
    x = torch.randn(4, 16, 6, 6).to(memory_format=torch.channels_last).requires_grad_()
    y = layer(x)
    y.backward(torch.randn_like(y))
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert x.grad is not None and x.grad.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_resnet_step(restore_compiled: None) -> None:
    x, y = _batch()
    model = _model()
    reference = copy.deepcopy(model)
    model = model.to(memory_format=torch.channels_last)
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x_cl = x.to(memory_format=torch.channels_last)
    assert not x_cl.is_contiguous()  # really another layout, so BIN takes its strided code
    step = _step(model, x_cl, y)
    _assert_bin_params_trained(step, model)
    expected = _eager_step(reference, x, y)
    _assert_steps_equal(step, expected, rtol=1e-4, atol=1e-5)


# -- torch.compile ----------------------------------------------------------------------------------


# Dynamo traces through dabin's lru_caches (compiled._compiled, functional._zeros_ones) and says so;
# the comparison with the eager model below is what shows the result is right.
@pytest.mark.filterwarnings("ignore:Dynamo detected a call to a `functools.lru_cache`")
def test_torch_compile_resnet_step(restore_compiled: None) -> None:
    """``torch.compile(model)`` (Inductor) trains exactly like the eager model, in one graph.

    dabin's own compiled BIN kernels (on by default on the CPU) step aside while Dynamo traces, so
    it captures each layer's autograd.Function, forward and analytic backward, without a graph
    break: the path CUDA input takes as well.
    """
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    x, y = _batch()
    model = _model()
    reference = copy.deepcopy(model)
    compiled.set_compiled(True)
    step = _step(torch.compile(model, dynamic=False), x, y, params_of=model)
    assert sum(counters["graph_break"].values()) == 0, dict(counters["graph_break"])
    assert len(_bin_layers(model)) == 20  # still BIN layers, not replaced by something else
    _assert_bin_params_trained(step, model)
    expected = _eager_step(reference, x, y)
    _assert_steps_equal(step, expected, rtol=1e-4, atol=1e-5)
