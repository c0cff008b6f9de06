"""BNMLoss against hand computations of the batch nuclear norm (Cui et al., CVPR 2020).

The transcriptions of the authors' code and of ``pytorch-adapt`` are in ``tests/peer/test_bnm_peer.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import get_type_hints

import numpy as np
import pytest
import torch

from dabin.cli import main
from dabin.errors import DabinError
from dabin.methods import BNMLoss, StepOutputs, build_method
from dabin.methods.bnm import BNMNormalize

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "demo"


def _outputs(logits_t: np.ndarray) -> StepOutputs:
    b, c = logits_t.shape
    return StepOutputs(torch.randn(2, 3, requires_grad=True), torch.randn(b, 3, requires_grad=True),
                       torch.randn(2, c, requires_grad=True),
                       torch.tensor(logits_t, dtype=torch.float32, requires_grad=True), 0.5)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.mark.parametrize("normalize", ["mean_singular_value", "batch_size"])
def test_two_by_two_closed_form(normalize: BNMNormalize) -> None:
    # softmax([x, 0]) = (a, 1 − a), a = sigmoid(x); A = [[a, 1−a], [1−a, a]] has singular values 1 and |2a − 1|.
    # B = C = 2: both normalizations divide by 2.
    x = 1.3
    loss, logs = BNMLoss(3, 2, normalize=normalize)(_outputs(np.array([[x, 0.0], [0.0, x]])))
    a = _sigmoid(x)
    assert loss.shape == () and logs == {}
    assert loss.item() == pytest.approx(-(1.0 + abs(2 * a - 1)) / 2, rel=1e-6)


def test_confident_distinct_predictions_reach_minus_one() -> None:
    logits = np.array([[30.0, 0.0, 0.0], [0.0, 30.0, 0.0]])
    assert BNMLoss(3, 3)(_outputs(logits))[0].item() == pytest.approx(-1.0, abs=1e-6)
    same_class = np.array([[30.0, 0.0, 0.0], [30.0, 0.0, 0.0]])  # rank one: ‖A‖_* = sqrt(2)
    assert BNMLoss(3, 3)(_outputs(same_class))[0].item() == pytest.approx(-math.sqrt(2) / 2, abs=1e-6)


def test_confident_balanced_predictions_reach_the_bound_when_b_exceeds_c() -> None:
    # 6 one-hot rows, 2 per class of 3: singular values sqrt(2) three times, ‖A‖_* = 3 sqrt(2) =
    # sqrt(B min(B, C)), the docstring's bound: −sqrt(2) by min(B, C) = 3, −1/sqrt(2) by B = 6.
    logits = np.tile(np.eye(3) * 30.0, (2, 1))
    assert BNMLoss(3, 3)(_outputs(logits))[0].item() == pytest.approx(-math.sqrt(2), abs=1e-5)
    assert BNMLoss(3, 3, normalize="batch_size")(_outputs(logits))[0].item() == pytest.approx(-1 / math.sqrt(2),
                                                                                             abs=1e-5)


@pytest.mark.parametrize(("b", "c"), [(3, 3), (2, 4), (5, 3)])
@pytest.mark.parametrize("normalize", ["mean_singular_value", "batch_size"])
def test_matches_numpy_singular_values(b: int, c: int, normalize: BNMNormalize) -> None:
    g = np.random.default_rng(b + c).normal(scale=2.0, size=(b, c))
    probs = np.exp(g) / np.exp(g).sum(1, keepdims=True)
    divisor = min(b, c) if normalize == "mean_singular_value" else b
    expected = -np.linalg.svd(probs, compute_uv=False).sum() / divisor
    loss = BNMLoss(3, c, trade_off=2.0, normalize=normalize)(_outputs(g))[0]
    assert loss.item() == pytest.approx(2.0 * expected, rel=1e-5)


def test_default_is_the_mean_singular_value() -> None:
    loss_fn = BNMLoss(3, 4)
    assert loss_fn.normalize == "mean_singular_value" and "normalize='mean_singular_value'" in repr(loss_fn)
    # jsonargparse reads the annotation to parse --model.method.normalize: it must resolve to the Literal.
    assert get_type_hints(BNMLoss.__init__)["normalize"] == BNMNormalize


def test_option_through_the_registry_and_bad_value_is_one_line() -> None:
    loss_fn = build_method("bnm", 3, 4, normalize="batch_size")
    assert isinstance(loss_fn, BNMLoss) and loss_fn.normalize == "batch_size"
    with pytest.raises(DabinError) as info:
        BNMLoss(3, 4, normalize="batch")  # type: ignore[arg-type]
    message = str(info.value)
    assert message == "unknown BNM normalize 'batch'; expected one of mean_singular_value, batch_size"
    assert "\n" not in message


def test_option_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The way every method option is given: the loss class with its init args.
    capsys.readouterr()
    status = main(["fit", "-c", str(DEMO / "dann.yaml"), "--model.method", "BNMLoss", "--model.method.normalize",
                   "batch_size", "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == "bnm"
    assert metrics["config"]["model"]["init_args"]["method"]["init_args"]["normalize"] == "batch_size"
    status = main(["fit", "-c", str(DEMO / "dann.yaml"), "--model.method", "BNMLoss", "--model.method.normalize",
                   "batches", "--trainer.fast_dev_run", "1", "--trainer.default_root_dir", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert status == 2 and "batches" in err and len(err.strip().splitlines()) == 1, err


def test_singular_values_stay_finite_for_repeated_and_zero_singular_values() -> None:
    # One class for the whole batch (rank one: zero singular values) and repeated rows (repeated ones).
    repeated = np.tile(np.random.default_rng(1).normal(size=(2, 4)), (4, 1))
    for logits in (np.tile([30.0, 0.0, 0.0, 0.0], (8, 1)), repeated, np.zeros((8, 4))):
        out = _outputs(logits)
        loss = BNMLoss(3, 4)(out)[0]
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(out.logits_t.grad).all()


def test_gradient_matches_finite_differences_and_only_reaches_target_logits() -> None:
    # B = 5 > C = 3, so the default divides by C.
    g = np.random.default_rng(0).normal(size=(5, 3))
    out = _outputs(g)
    loss_fn = BNMLoss(3, 3)
    loss_fn(out)[0].backward()

    def value(logits: np.ndarray) -> float:
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return -np.linalg.svd(p, compute_uv=False).sum() / 3

    eps = 1e-6
    numeric = np.zeros_like(g)
    for i in range(5):
        for j in range(3):
            up, down = g.copy(), g.copy()
            up[i, j] += eps
            down[i, j] -= eps
            numeric[i, j] = (value(up) - value(down)) / (2 * eps)
    np.testing.assert_allclose(out.logits_t.grad.numpy(), numeric, rtol=1e-3, atol=1e-5)
    assert out.logits_s.grad is None and out.features_s.grad is None and out.features_t.grad is None
    assert list(loss_fn.parameters()) == [] and dict(loss_fn.state_dict()) == {}
