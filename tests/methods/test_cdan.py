"""CDANLoss / CDANELoss against hand computations: the multilinear and randomized maps, entropy weights, GRL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dabin.methods import CDANELoss, CDANLoss, StepOutputs
from tests.methods.helpers import set_head, step_outputs


def _softmax_rows(g: np.ndarray) -> np.ndarray:
    out = np.empty_like(g)
    for i, row in enumerate(g):
        e = [math.exp(v - max(row)) for v in row]
        out[i] = [v / sum(e) for v in e]
    return out


def _stacked(out: StepOutputs) -> tuple[np.ndarray, np.ndarray]:
    f = np.concatenate([out.features_s.detach().numpy(), out.features_t.detach().numpy()]).astype(np.float64)
    g = np.concatenate([out.logits_s.detach().numpy(), out.logits_t.detach().numpy()]).astype(np.float64)
    return f, g


def _outer_map(f: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Row i: [p_0 f_0, p_0 f_1, ..., p_0 f_{D-1}, p_1 f_0, ...] with explicit loops."""
    n, d = f.shape
    c = p.shape[1]
    t = np.zeros((n, c * d))
    for i in range(n):
        for a in range(c):
            for k in range(d):
                t[i, a * d + k] = p[i, a] * f[i, k]
    return t


def _per_sample_ce(t: np.ndarray, labels: list[int], w: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample CE of the head on t, the head's logits, and d CE_i / d t_i."""
    w1, b1, w2, b2 = w
    pre = t @ w1.T + b1
    z = np.maximum(pre, 0) @ w2.T + b2
    ce = np.empty(len(labels))
    dz = np.empty_like(z)
    for i, y in enumerate(labels):
        m = z[i].max()
        lse = m + math.log(sum(math.exp(v - m) for v in z[i]))
        ce[i] = lse - z[i, y]
        dz[i] = np.exp(z[i] - lse)
        dz[i, y] -= 1.0
    dt = ((dz @ w2) * (pre > 0)) @ w1
    return ce, z, dt


def _entropy(p: np.ndarray) -> np.ndarray:
    return np.array([-sum(v * math.log(v) for v in row if v > 0) for row in p])


def test_multilinear_loss_matches_hand_computation() -> None:
    rng = np.random.default_rng(0)
    loss_fn = CDANLoss(3, 3, hidden_dim=4, dropout=0.0)
    assert not loss_fn.randomized
    assert loss_fn.discriminator[0].in_features == 9
    w = set_head(loss_fn.discriminator, rng)
    out = step_outputs(rng, 2, 3, 3, 3, p=0.5)
    loss, logs = loss_fn(out)
    f, g = _stacked(out)
    labels = [0, 0, 1, 1, 1]
    ce, z, _ = _per_sample_ce(_outer_map(f, _softmax_rows(g)), labels, w)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(ce.mean(), rel=1e-5)
    assert logs["lambda"] == pytest.approx(2.0 / (1.0 + math.exp(-5.0)) - 1.0)
    hits = sum(int(np.argmax(z[i]) == labels[i]) for i in range(5))
    assert float(logs["domain_acc"]) == pytest.approx(100.0 * hits / 5)


def test_entropy_weights_are_normalized_within_each_domain() -> None:
    rng = np.random.default_rng(1)
    loss_fn = CDANLoss(3, 3, hidden_dim=4, dropout=0.0, entropy=True)
    w = set_head(loss_fn.discriminator, rng)
    out = step_outputs(rng, 2, 3, 3, 3, p=0.5)
    loss, _ = loss_fn(out)
    f, g = _stacked(out)
    p = _softmax_rows(g)
    ce, _, _ = _per_sample_ce(_outer_map(f, p), [0, 0, 1, 1, 1], w)
    raw = [1.0 + math.exp(-h) for h in _entropy(p)]
    src = [2 * raw[i] / (raw[0] + raw[1]) for i in (0, 1)]
    tgt = [3 * raw[i] / (raw[2] + raw[3] + raw[4]) for i in (2, 3, 4)]
    expected = sum(wi * ci for wi, ci in zip(src + tgt, ce)) / 5
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # Normalizing over both domains together (the Transfer-Learning-Library) would give another value.
    joint = sum(5 * r / sum(raw) * ci for r, ci in zip(raw, ce)) / 5
    assert abs(expected - joint) > 1e-4


def test_entropy_loss_equals_the_authors_formula_for_equal_batches() -> None:
    rng = np.random.default_rng(2)
    loss_fn = CDANELoss(3, 3, hidden_dim=4, dropout=0.0)
    assert loss_fn.entropy
    w = set_head(loss_fn.discriminator, rng)
    out = step_outputs(rng, 3, 3, 3, 3, p=0.5)
    loss, _ = loss_fn(out)
    f, g = _stacked(out)
    p = _softmax_rows(g)
    ce, _, _ = _per_sample_ce(_outer_map(f, p), [0, 0, 0, 1, 1, 1], w)
    raw = [1.0 + math.exp(-h) for h in _entropy(p)]
    # thuml/CDAN: each domain's weights sum to 1, the weighted sum is divided by the total weight (2).
    s_sum, t_sum = sum(raw[:3]), sum(raw[3:])
    weights = [r / s_sum for r in raw[:3]] + [r / t_sum for r in raw[3:]]
    assert loss.item() == pytest.approx(sum(wi * ci for wi, ci in zip(weights, ce)) / sum(weights), rel=1e-5)


def test_features_gradient_is_reversed_and_predictions_are_detached() -> None:
    rng = np.random.default_rng(3)
    loss_fn = CDANLoss(3, 3, hidden_dim=4, dropout=0.0)
    w = set_head(loss_fn.discriminator, rng)
    out = step_outputs(rng, 2, 2, 3, 3, p=0.3)
    loss, logs = loss_fn(out)
    loss.backward()
    lam = 2.0 / (1.0 + math.exp(-3.0)) - 1.0
    assert logs["lambda"] == pytest.approx(lam)
    f, g = _stacked(out)
    p = _softmax_rows(g)
    _, _, dt = _per_sample_ce(_outer_map(f, p), [0, 0, 1, 1], w)
    dt /= 4  # the mean over the batch
    grad_f = np.zeros_like(f)
    for i in range(4):
        for a in range(3):
            for k in range(3):
                grad_f[i, k] += p[i, a] * dt[i, a * 3 + k]
    grad = np.concatenate([out.features_s.grad.numpy(), out.features_t.grad.numpy()])
    np.testing.assert_allclose(grad, -lam * grad_f, rtol=1e-4, atol=1e-6)
    assert out.logits_s.grad is None and out.logits_t.grad is None


@pytest.mark.parametrize("entropy", [False, True])
def test_lambda_is_zero_at_the_start(entropy: bool) -> None:
    rng = np.random.default_rng(4)
    loss_fn = CDANLoss(3, 3, hidden_dim=4, dropout=0.0, entropy=entropy)
    set_head(loss_fn.discriminator, rng)
    out = step_outputs(rng, 2, 2, 3, 3, p=0.0)
    loss, logs = loss_fn(out)
    loss.backward()
    assert logs["lambda"] == 0.0
    assert torch.count_nonzero(out.features_s.grad) == 0 and torch.count_nonzero(out.features_t.grad) == 0
    assert out.logits_s.grad is None and out.logits_t.grad is None
    assert torch.count_nonzero(loss_fn.discriminator[0].weight.grad) > 0


def test_randomized_map_above_the_threshold_matches_hand_computation() -> None:
    rng = np.random.default_rng(5)
    loss_fn = CDANLoss(3, 3, hidden_dim=4, dropout=0.0, randomized_dim_threshold=8, randomized_dim=5, seed=7)
    assert loss_fn.randomized
    assert tuple(loss_fn.random_f.shape) == (3, 5) and tuple(loss_fn.random_g.shape) == (3, 5)
    assert loss_fn.discriminator[0].in_features == 5
    w = set_head(loss_fn.discriminator, rng)
    out = step_outputs(rng, 2, 3, 3, 3, p=1.0)
    loss, _ = loss_fn(out)
    f, g = _stacked(out)
    p = _softmax_rows(g)
    r_f = loss_fn.random_f.numpy().astype(np.float64)
    r_g = loss_fn.random_g.numpy().astype(np.float64)
    t = np.zeros((5, 5))
    for i in range(5):
        for j in range(5):
            left = sum(f[i, k] * r_f[k, j] for k in range(3))
            right = sum(p[i, a] * r_g[a, j] for a in range(3))
            t[i, j] = left * right / math.sqrt(5)
    ce, _, _ = _per_sample_ce(t, [0, 0, 1, 1, 1], w)
    assert loss.item() == pytest.approx(ce.mean(), rel=1e-5)


def test_default_threshold_and_dimension() -> None:
    office_home = CDANLoss(256, 65)  # 256 · 65 > 4096: the paper's randomized map of width 1024
    assert office_home.randomized
    assert tuple(office_home.random_f.shape) == (256, 1024) and tuple(office_home.random_g.shape) == (65, 1024)
    assert office_home.discriminator[0].in_features == 1024
    at_threshold = CDANLoss(64, 64, hidden_dim=8)  # 4096 is not above the threshold
    assert not at_threshold.randomized and at_threshold.discriminator[0].in_features == 4096
    assert "random_f" not in at_threshold.state_dict()


def test_random_matrices_are_seeded_buffers() -> None:
    a = CDANLoss(256, 65, hidden_dim=8, seed=3)
    b = CDANLoss(256, 65, hidden_dim=8, seed=3)
    c = CDANLoss(256, 65, hidden_dim=8, seed=4)
    assert torch.equal(a.random_f, b.random_f) and torch.equal(a.random_g, b.random_g)
    assert not torch.equal(a.random_f, c.random_f)
    assert {"random_f", "random_g"} <= set(a.state_dict())
    assert all(not p.requires_grad for p in a.buffers())
    assert abs(a.random_f.mean().item()) < 0.01 and a.random_f.std().item() == pytest.approx(1.0, abs=0.01)
    torch.manual_seed(0)
    d = CDANLoss(256, 65, hidden_dim=8, seed=3)  # the global RNG state does not matter
    assert torch.equal(a.random_f, d.random_f)


def test_cdan_e_without_entropy_is_cdan() -> None:
    rng = np.random.default_rng(6)
    plain = CDANLoss(3, 3, hidden_dim=4, dropout=0.0)
    other = CDANELoss(3, 3, hidden_dim=4, dropout=0.0, entropy=False)
    other.load_state_dict(plain.state_dict())
    out = step_outputs(rng, 2, 3, 3, 3, p=0.5)
    assert plain(out)[0].item() == pytest.approx(other(out)[0].item(), rel=1e-6)
