"""MDDLoss against a hand computation: γ·CE on the source + −log(1 − p') on the target, through GRL(λ_p)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dabin.methods import MDDLoss, StepOutputs
from dabin.methods.mdd import log_one_minus_softmax
from tests.methods.helpers import set_head, step_outputs


def _hand_mdd(out: StepOutputs, w: list[np.ndarray], margin: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss, d loss / d features (no reversal) and d loss / d b2 (the head's last bias), by hand."""
    w1, b1, w2, b2 = w
    f = np.concatenate([out.features_s.detach().numpy(), out.features_t.detach().numpy()]).astype(np.float64)
    g = np.concatenate([out.logits_s.detach().numpy(), out.logits_t.detach().numpy()])
    n_s, n = out.features_s.shape[0], f.shape[0]
    n_t = n - n_s
    pre = f @ w1.T + b1
    z = np.maximum(pre, 0) @ w2.T + b2
    loss = 0.0
    dz = np.zeros_like(z)
    for i in range(n):
        y = int(np.argmax(g[i]))
        e = [math.exp(v - max(z[i])) for v in z[i]]
        p = [v / sum(e) for v in e]
        if i < n_s:  # γ · CE(h'(f_s), ŷ_s), mean over the source
            loss += margin * -math.log(p[y]) / n_s
            for j in range(len(p)):
                dz[i, j] = margin * (p[j] - (j == y)) / n_s
        else:  # −log(1 − p'[ŷ_t]), mean over the target
            loss += -math.log(1.0 - p[y]) / n_t
            for j in range(len(p)):
                dz[i, j] = p[y] * ((j == y) - p[j]) / (1.0 - p[y]) / n_t
    grad_f = ((dz @ w2) * (pre > 0)) @ w1
    return loss, grad_f, dz.sum(0)


def test_loss_matches_hand_computation() -> None:
    rng = np.random.default_rng(0)
    loss_fn = MDDLoss(3, 3, hidden_dim=4, dropout=0.0, margin=4.0)
    w = set_head(loss_fn.adversarial_head, rng)
    out = step_outputs(rng, 2, 3, 3, 3, p=0.5)
    loss, logs = loss_fn(out)
    expected, _, _ = _hand_mdd(out, w, 4.0)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert logs["lambda"] == pytest.approx(0.1 * (2.0 / (1.0 + math.exp(-5.0)) - 1.0), rel=1e-12)


def test_gradient_signs() -> None:
    """The head descends the loss; the features get its gradient reversed and scaled by λ_p."""
    rng = np.random.default_rng(1)
    loss_fn = MDDLoss(3, 3, hidden_dim=4, dropout=0.0, margin=2.0, lambda_max=0.5)
    w = set_head(loss_fn.adversarial_head, rng)
    out = step_outputs(rng, 3, 3, 3, 3, p=0.25)
    loss, logs = loss_fn(out)
    loss.backward()
    lam = 0.5 * (2.0 / (1.0 + math.exp(-2.5)) - 1.0)
    assert logs["lambda"] == pytest.approx(lam, rel=1e-12)
    _, grad_f, grad_b2 = _hand_mdd(out, w, 2.0)
    grad = np.concatenate([out.features_s.grad.numpy(), out.features_t.grad.numpy()])
    np.testing.assert_allclose(grad, -lam * grad_f, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(loss_fn.adversarial_head[3].bias.grad.numpy(), grad_b2, rtol=1e-4, atol=1e-6)
    # The main classifier's predictions are labels: no gradient reaches its logits.
    assert out.logits_s.grad is None and out.logits_t.grad is None


def test_a_descent_step_lowers_the_loss_for_the_head_and_raises_it_for_the_features() -> None:
    rng = np.random.default_rng(2)
    loss_fn = MDDLoss(3, 3, hidden_dim=4, dropout=0.0)
    set_head(loss_fn.adversarial_head, rng)
    out = step_outputs(rng, 3, 3, 3, 3, p=1.0)
    loss, _ = loss_fn(out)
    loss.backward()
    with torch.no_grad():
        moved_features = StepOutputs(out.features_s - 1e-2 * out.features_s.grad,
                                     out.features_t - 1e-2 * out.features_t.grad, out.logits_s, out.logits_t, 1.0)
        assert loss_fn(moved_features)[0].item() > loss.item()  # the features ascend the discrepancy...
        for param in loss_fn.adversarial_head.parameters():
            param -= 1e-3 * param.grad
        assert loss_fn(out)[0].item() < loss.item()  # ...the adversarial head descends it


def test_lambda_is_zero_at_the_start() -> None:
    rng = np.random.default_rng(3)
    loss_fn = MDDLoss(3, 3, hidden_dim=4, dropout=0.0)
    set_head(loss_fn.adversarial_head, rng)
    out = step_outputs(rng, 2, 2, 3, 3, p=0.0)
    loss, logs = loss_fn(out)
    loss.backward()
    assert logs["lambda"] == 0.0
    assert torch.count_nonzero(out.features_s.grad) == 0 and torch.count_nonzero(out.features_t.grad) == 0
    assert torch.count_nonzero(loss_fn.adversarial_head[0].weight.grad) > 0


def test_log_one_minus_softmax_is_exact_and_stable() -> None:
    logits = torch.tensor([[100.0, 0.0, 0.0], [0.5, -1.0, 2.0]], requires_grad=True)
    value = log_one_minus_softmax(logits, torch.tensor([0, 2]))
    assert value[0].item() == pytest.approx(math.log(2.0) - 100.0, rel=1e-6)
    e = [math.exp(0.5), math.exp(-1.0), math.exp(2.0)]
    assert value[1].item() == pytest.approx(math.log(1.0 - e[2] / sum(e)), rel=1e-6)
    value.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_defaults_and_head_shape() -> None:
    loss_fn = MDDLoss(256, 65)
    assert loss_fn.margin == 4.0 and loss_fn.lambda_max == 0.1 and loss_fn.lambda_gamma == 10.0
    head = loss_fn.adversarial_head
    assert (head[0].in_features, head[0].out_features, head[3].out_features) == (256, 1024, 65)
    assert head[2].p == 0.5
