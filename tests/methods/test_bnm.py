"""BNMLoss against hand computations of the batch nuclear norm (Cui et al., CVPR 2020)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dabin.methods import BNMLoss, StepOutputs


def _outputs(logits_t: np.ndarray) -> StepOutputs:
    b, c = logits_t.shape
    return StepOutputs(torch.randn(2, 3, requires_grad=True), torch.randn(b, 3, requires_grad=True),
                       torch.randn(2, c, requires_grad=True),
                       torch.tensor(logits_t, dtype=torch.float32, requires_grad=True), 0.5)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_two_by_two_closed_form() -> None:
    # softmax([x, 0]) = (a, 1 − a), a = sigmoid(x); A = [[a, 1−a], [1−a, a]] has singular values 1 and |2a − 1|.
    x = 1.3
    loss, logs = BNMLoss(3, 2)(_outputs(np.array([[x, 0.0], [0.0, x]])))
    a = _sigmoid(x)
    assert loss.shape == () and logs == {}
    assert loss.item() == pytest.approx(-(1.0 + abs(2 * a - 1)) / 2, rel=1e-6)


def test_confident_distinct_predictions_reach_minus_one() -> None:
    logits = np.array([[30.0, 0.0, 0.0], [0.0, 30.0, 0.0]])
    assert BNMLoss(3, 3)(_outputs(logits))[0].item() == pytest.approx(-1.0, abs=1e-6)
    same_class = np.array([[30.0, 0.0, 0.0], [30.0, 0.0, 0.0]])  # rank one: ‖A‖_* = sqrt(2)
    assert BNMLoss(3, 3)(_outputs(same_class))[0].item() == pytest.approx(-math.sqrt(2) / 2, abs=1e-6)


@pytest.mark.parametrize(("b", "c"), [(3, 3), (2, 4), (5, 3)])
def test_matches_numpy_singular_values(b: int, c: int) -> None:
    g = np.random.default_rng(b + c).normal(scale=2.0, size=(b, c))
    probs = np.exp(g) / np.exp(g).sum(1, keepdims=True)
    expected = -np.linalg.svd(probs, compute_uv=False).sum() / b
    assert BNMLoss(3, c, trade_off=2.0)(_outputs(g))[0].item() == pytest.approx(2.0 * expected, rel=1e-5)


def test_gradient_matches_finite_differences_and_only_reaches_target_logits() -> None:
    g = np.random.default_rng(0).normal(size=(3, 4))
    out = _outputs(g)
    loss_fn = BNMLoss(3, 4)
    loss_fn(out)[0].backward()

    def value(logits: np.ndarray) -> float:
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return -np.linalg.svd(p, compute_uv=False).sum() / 3

    eps = 1e-6
    numeric = np.zeros_like(g)
    for i in range(3):
        for j in range(4):
            up, down = g.copy(), g.copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (value(up) - value(down)) / (2 * eps)
    np.testing.assert_allclose(out.logits_t.grad.numpy(), numeric, rtol=1e-3, atol=1e-5)
    assert out.logits_s.grad is None and out.features_s.grad is None and out.features_t.grad is None
    assert list(loss_fn.parameters()) == [] and dict(loss_fn.state_dict()) == {}
