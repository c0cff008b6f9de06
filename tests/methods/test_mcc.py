"""MCCLoss against a hand computation of the class confusion (Jin et al., ECCV 2020)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dabin.methods import MCCLoss, StepOutputs


def _outputs(logits_t: np.ndarray, n_s: int = 2, d: int = 3) -> StepOutputs:
    c = logits_t.shape[1]
    return StepOutputs(torch.randn(n_s, d, requires_grad=True), torch.randn(len(logits_t), d, requires_grad=True),
                       torch.randn(n_s, c, requires_grad=True),
                       torch.tensor(logits_t, dtype=torch.float32, requires_grad=True), 0.5)


def _hand_mcc(g: np.ndarray, temperature: float, fixed_weights: np.ndarray | None = None) -> float:
    """Loops: softmax(g/T), entropy weights, the weighted confusion, row-normalized, off-diagonal / C."""
    b, c = g.shape
    y = np.zeros((b, c))
    for i in range(b):
        e = [math.exp(g[i, j] / temperature) for j in range(c)]
        y[i] = [v / sum(e) for v in e]
    if fixed_weights is None:
        raw = [1.0 + math.exp(sum(v * math.log(v) for v in y[i])) for i in range(b)]
        weights = np.array([b * r / sum(raw) for r in raw])
    else:
        weights = fixed_weights
    conf = np.zeros((c, c))
    for j in range(c):
        for k in range(c):
            conf[j, k] = sum(weights[i] * y[i, j] * y[i, k] for i in range(b))
    total = 0.0
    for j in range(c):
        row = sum(conf[j])
        total += sum(conf[j, k] / row for k in range(c) if k != j)
    return total / c


@pytest.mark.parametrize(("b", "c", "temperature"), [(3, 3, 2.5), (2, 4, 1.0), (5, 3, 2.5)])
def test_loss_matches_hand_computation(b: int, c: int, temperature: float) -> None:
    g = np.random.default_rng(b * 10 + c).normal(scale=2.0, size=(b, c))
    loss, logs = MCCLoss(3, c, temperature=temperature)(_outputs(g))
    assert loss.shape == () and logs == {}
    assert loss.item() == pytest.approx(_hand_mcc(g, temperature), rel=1e-5)


def test_known_values() -> None:
    confident = np.array([[40.0, 0.0, 0.0], [0.0, 40.0, 0.0], [0.0, 0.0, 40.0]])
    assert MCCLoss(3, 3, temperature=1.0)(_outputs(confident))[0].item() == pytest.approx(0.0, abs=1e-6)
    uniform = np.zeros((4, 3))
    assert MCCLoss(3, 3)(_outputs(uniform))[0].item() == pytest.approx(2.0 / 3.0, rel=1e-6)


def test_trade_off_scales_the_loss() -> None:
    g = np.random.default_rng(0).normal(size=(3, 3))
    base = MCCLoss(3, 3)(_outputs(g))[0].item()
    assert MCCLoss(3, 3, trade_off=0.3)(_outputs(g))[0].item() == pytest.approx(0.3 * base, rel=1e-6)


def test_no_parameters_and_only_target_logits_get_gradients() -> None:
    loss_fn = MCCLoss(3, 3)
    assert list(loss_fn.parameters()) == [] and dict(loss_fn.state_dict()) == {}
    out = _outputs(np.random.default_rng(1).normal(size=(3, 3)))
    loss_fn(out)[0].backward()
    assert out.logits_t.grad is not None and torch.count_nonzero(out.logits_t.grad) > 0
    assert out.logits_s.grad is None and out.features_s.grad is None and out.features_t.grad is None


def test_entropy_weights_are_constants_in_the_gradient() -> None:
    g = np.random.default_rng(2).normal(scale=2.0, size=(3, 3))
    out = _outputs(g)
    MCCLoss(3, 3)(out)[0].backward()
    # The weights at g, held fixed, in the finite differences of the hand computation.
    b = 3
    y = np.exp(g / 2.5) / np.exp(g / 2.5).sum(1, keepdims=True)
    raw = 1.0 + np.exp((y * np.log(y)).sum(1))
    fixed = b * raw / raw.sum()
    eps = 1e-6
    numeric = np.zeros_like(g)
    moving = np.zeros_like(g)
    for i in range(3):
        for j in range(3):
            up, down = g.copy(), g.copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (_hand_mcc(up, 2.5, fixed) - _hand_mcc(down, 2.5, fixed)) / (2 * eps)
            moving[i, j] = (_hand_mcc(up, 2.5) - _hand_mcc(down, 2.5)) / (2 * eps)
    np.testing.assert_allclose(out.logits_t.grad.numpy(), numeric, rtol=1e-3, atol=1e-6)
    assert np.abs(moving - numeric).max() > 1e-4  # the two conventions are distinguishable here


def test_bad_temperature_is_rejected() -> None:
    from dabin.errors import DabinError

    with pytest.raises(DabinError):
        MCCLoss(3, 3, temperature=0.0)
