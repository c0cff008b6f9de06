"""DANLoss against a hand computation of the unbiased multi-kernel MMD² (Long et al., ICML 2015)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dabin.errors import DabinError
from dabin.methods import DANLoss, StepOutputs

MULTS = (0.125, 0.25, 0.5, 1.0, 2.0)


def _outputs(f_s: np.ndarray, f_t: np.ndarray, c: int = 3) -> StepOutputs:
    return StepOutputs(torch.tensor(f_s, dtype=torch.float32, requires_grad=True),
                       torch.tensor(f_t, dtype=torch.float32, requires_grad=True),
                       torch.zeros(len(f_s), c, requires_grad=True), torch.zeros(len(f_t), c, requires_grad=True), 0.5)


def _hand_mmd(f_s: np.ndarray, f_t: np.ndarray, mults: tuple[float, ...] = MULTS,
              bandwidth: float | None = None) -> float:
    x = [list(row) for row in f_s] + [list(row) for row in f_t]
    n, n_s = len(x), len(f_s)
    n_t = n - n_s
    dist = [[sum((a - b) ** 2 for a, b in zip(x[i], x[j])) for j in range(n)] for i in range(n)]
    if bandwidth is None:
        bandwidth = sum(sum(row) for row in dist) / n ** 2

    def k(i: int, j: int) -> float:
        return sum(math.exp(-dist[i][j] / (2 * m * bandwidth)) for m in mults)

    ss = sum(k(i, j) for i in range(n_s) for j in range(n_s) if i != j) / (n_s * (n_s - 1))
    tt = sum(k(i, j) for i in range(n_s, n) for j in range(n_s, n) if i != j) / (n_t * (n_t - 1))
    st = sum(k(i, j) for i in range(n_s) for j in range(n_s, n)) / (n_s * n_t)
    return ss + tt - 2 * st


@pytest.mark.parametrize(("n_s", "n_t"), [(2, 2), (2, 3), (3, 3)])
def test_loss_matches_hand_computation(n_s: int, n_t: int) -> None:
    rng = np.random.default_rng(n_s * 10 + n_t)
    f_s, f_t = rng.normal(size=(n_s, 3)), rng.normal(loc=0.5, size=(n_t, 3))
    f_s, f_t = f_s.astype(np.float32).astype(np.float64), f_t.astype(np.float32).astype(np.float64)
    loss, logs = DANLoss(3, 3)(_outputs(f_s, f_t))
    expected = _hand_mmd(f_s, f_t)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert float(logs["mmd"]) == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_trade_off_and_kernel_mults() -> None:
    rng = np.random.default_rng(0)
    f_s, f_t = rng.normal(size=(3, 3)), rng.normal(loc=1.0, size=(3, 3))
    loss, logs = DANLoss(3, 3, kernel_mults=(1.0,), trade_off=0.5)(_outputs(f_s, f_t))
    assert loss.item() == pytest.approx(0.5 * _hand_mmd(f_s, f_t, (1.0,)), rel=1e-4)
    assert float(logs["mmd"]) == pytest.approx(_hand_mmd(f_s, f_t, (1.0,)), rel=1e-4)


def test_bandwidth_is_a_constant_in_the_gradient() -> None:
    rng = np.random.default_rng(1)
    f_s, f_t = rng.normal(size=(2, 3)), rng.normal(loc=0.5, size=(3, 3))
    out = _outputs(f_s, f_t)
    DANLoss(3, 3)(out)[0].backward()
    x = np.concatenate([f_s, f_t])
    fixed = float(((x[:, None] - x[None]) ** 2).sum(-1).mean())
    eps = 1e-6
    numeric = np.zeros_like(x)
    for i in range(5):
        for j in range(3):
            up, down = x.copy(), x.copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (_hand_mmd(up[:2], up[2:], bandwidth=fixed)
                             - _hand_mmd(down[:2], down[2:], bandwidth=fixed)) / (2 * eps)
    grad = np.concatenate([out.features_s.grad.numpy(), out.features_t.grad.numpy()])
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-5)
    assert out.logits_s.grad is None and out.logits_t.grad is None


def test_mmd_separates_shifted_distributions() -> None:
    rng = np.random.default_rng(2)
    same = DANLoss(8, 3)(_outputs(rng.normal(size=(100, 8)), rng.normal(size=(100, 8))))[0].item()
    shifted = DANLoss(8, 3)(_outputs(rng.normal(size=(100, 8)), rng.normal(loc=1.0, size=(100, 8))))[0].item()
    assert abs(same) < 0.1 and shifted > 0.5  # the estimate's spread is about 0.01 for 100 + 100 samples


def test_identical_features_give_zero_not_nan() -> None:
    ones = np.ones((3, 4))
    loss, _ = DANLoss(4, 3)(_outputs(ones, ones))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_no_parameters_and_small_batches_rejected() -> None:
    assert list(DANLoss(3, 3).parameters()) == []
    with pytest.raises(DabinError):
        DANLoss(3, 3)(_outputs(np.ones((1, 3)), np.zeros((2, 3))))
    with pytest.raises(DabinError):
        DANLoss(3, 3, kernel_mults=())
