"""DANNLoss against a hand computation: the DANN task's discriminator, CE over both domains, GRL(λ_p)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dabin.methods import DANNLoss, StepOutputs
from tests.methods.helpers import set_head, step_outputs


def _log_softmax(z: np.ndarray) -> np.ndarray:
    out = np.empty_like(z)
    for i, row in enumerate(z):
        m = max(row)
        out[i] = row - (m + math.log(sum(math.exp(v - m) for v in row)))
    return out


def _hand_dann(f: np.ndarray, labels: list[int], w: list[np.ndarray]) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss, d loss / d features (no reversal) and d loss / d b2, by hand."""
    w1, b1, w2, b2 = w
    n = f.shape[0]
    pre = f @ w1.T + b1
    hidden = np.maximum(pre, 0.0)
    z = hidden @ w2.T + b2
    logp = _log_softmax(z)
    loss = -sum(logp[i, labels[i]] for i in range(n)) / n
    dz = np.exp(logp)
    for i in range(n):
        dz[i, labels[i]] -= 1.0
    dz /= n
    dpre = (dz @ w2) * (pre > 0)
    return loss, dpre @ w1, dz.sum(0)


def test_loss_matches_hand_computation_and_logs() -> None:
    rng = np.random.default_rng(0)
    loss_fn = DANNLoss(3, 3, hidden_dim=4, dropout=0.0)
    w = set_head(loss_fn.discriminator, rng)
    out = step_outputs(rng, 2, 3, 3, 3, p=0.5)
    loss, logs = loss_fn(out)
    f = np.concatenate([out.features_s.detach().numpy(), out.features_t.detach().numpy()]).astype(np.float64)
    labels = [0, 0, 1, 1, 1]
    expected, _, _ = _hand_dann(f, labels, w)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert logs["lambda"] == pytest.approx(2.0 / (1.0 + math.exp(-5.0)) - 1.0, rel=1e-12)
    z = np.maximum(f @ w[0].T + w[1], 0) @ w[2].T + w[3]
    hits = sum(int(np.argmax(z[i]) == labels[i]) for i in range(5))
    assert float(logs["domain_acc"]) == pytest.approx(100.0 * hits / 5)


def test_features_gradient_is_reversed_and_scaled_by_lambda() -> None:
    rng = np.random.default_rng(1)
    loss_fn = DANNLoss(3, 3, hidden_dim=4, dropout=0.0, lambda_gamma=10.0, lambda_max=0.7)
    w = set_head(loss_fn.discriminator, rng)
    out = step_outputs(rng, 3, 3, 3, 3, p=0.2)
    loss, logs = loss_fn(out)
    loss.backward()
    lam = 0.7 * (2.0 / (1.0 + math.exp(-2.0)) - 1.0)
    assert logs["lambda"] == pytest.approx(lam, rel=1e-12)
    f = np.concatenate([out.features_s.detach().numpy(), out.features_t.detach().numpy()]).astype(np.float64)
    _, grad_f, grad_b2 = _hand_dann(f, [0, 0, 0, 1, 1, 1], w)
    grad = np.concatenate([out.features_s.grad.numpy(), out.features_t.grad.numpy()])
    np.testing.assert_allclose(grad, -lam * grad_f, rtol=1e-4, atol=1e-6)
    # The discriminator itself descends the domain loss: its gradient is not reversed.
    np.testing.assert_allclose(loss_fn.discriminator[3].bias.grad.numpy(), grad_b2, rtol=1e-4, atol=1e-6)
    assert out.logits_s.grad is None and out.logits_t.grad is None


def test_lambda_is_zero_at_the_start() -> None:
    rng = np.random.default_rng(2)
    loss_fn = DANNLoss(3, 3, hidden_dim=4, dropout=0.0)
    set_head(loss_fn.discriminator, rng)
    out = step_outputs(rng, 2, 2, 3, 3, p=0.0)
    loss, logs = loss_fn(out)
    loss.backward()
    assert logs["lambda"] == 0.0
    assert torch.count_nonzero(out.features_s.grad) == 0 and torch.count_nonzero(out.features_t.grad) == 0
    assert torch.count_nonzero(loss_fn.discriminator[3].weight.grad) > 0


def test_discriminator_is_the_dann_task_head() -> None:
    from dabin.modules.transfer import _mlp

    reference = _mlp(256, 1024, 2, 0.5)
    head = DANNLoss(256, 65).discriminator
    assert [type(m) for m in head] == [type(m) for m in reference]
    assert [tuple(p.shape) for p in head.parameters()] == [tuple(p.shape) for p in reference.parameters()]
    assert head[2].p == reference[2].p == 0.5


def test_bad_options_are_rejected() -> None:
    from dabin.errors import DabinError

    with pytest.raises(DabinError):
        DANNLoss(3, 3, dropout=1.0)
    with pytest.raises(DabinError):
        DANNLoss(3, 3, lambda_max=-1.0)
