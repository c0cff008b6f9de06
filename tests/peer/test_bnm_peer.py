"""BNMLoss against the authors' code and pytorch-adapt, transcribed here in float64.

Reference: S. Cui, S. Wang, J. Zhuo, L. Li, Q. Huang, Q. Tian, "Towards Discriminability and
Diversity: Batch Nuclear-norm Maximization under Label Insufficient Situations", CVPR 2020; the
paper's loss is ``L_bnm = −(1/B) ‖A‖_*`` with ``A`` the ``(B, C)`` softmax prediction matrix.

Implementations transcribed:

* the authors' code, ``cuishuhao/BNM``, ``DA/BNM/train_image.py``, function ``train``, branch
  ``config["method"] == "BNM"``::

      softmax_tgt = nn.Softmax(dim=1)(outputs_target)
      _, s_tgt, _ = torch.svd(softmax_tgt)
      transfer_loss = -torch.mean(s_tgt)

  (``torch.svd`` is reduced: ``min(B, C)`` singular values, so the mean divides by ``min(B, C)``);
* pytorch-adapt (K. Musgrave), ``src/pytorch_adapt/layers/bnm_loss.py``, ``BNMLoss.forward``::

      x = torch.nn.functional.softmax(x, dim=1)
      return -torch.linalg.norm(x, "nuc") / x.shape[0]

dabin's ``BNMLoss`` computes in float32, so the comparisons allow float32 rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dabin.methods import BNMLoss, StepOutputs

#: (B, C): more images than classes, fewer (Office-Home's 65), as many.
SHAPES = [(32, 10), (8, 65), (12, 12)]


def _authors_bnm(logits: np.ndarray) -> float:
    """cuishuhao/BNM, DA/BNM/train_image.py, ``train``: ``-torch.mean(s_tgt)`` of ``torch.svd(softmax_tgt)``."""
    softmax_tgt = torch.nn.Softmax(dim=1)(torch.tensor(logits, dtype=torch.float64))
    _, s_tgt, _ = torch.svd(softmax_tgt)
    return float(-torch.mean(s_tgt))


def _pytorch_adapt_bnm(logits: np.ndarray) -> float:
    """pytorch-adapt, src/pytorch_adapt/layers/bnm_loss.py, ``BNMLoss.forward``: ``-‖softmax(x)‖_nuc / B``."""
    x = torch.nn.functional.softmax(torch.tensor(logits, dtype=torch.float64), dim=1)
    return float(-torch.linalg.norm(x, "nuc") / x.shape[0])


def _logits(b: int, c: int, seed: int) -> np.ndarray:
    # scale 3: predictions between uniform and one-hot, so the singular values are spread.
    return np.random.default_rng(seed).normal(scale=3.0, size=(b, c))


def _loss(loss_fn: BNMLoss, logits: np.ndarray) -> float:
    b, c = logits.shape
    out = StepOutputs(torch.zeros(2, 3), torch.zeros(b, 3), torch.zeros(2, c),
                      torch.tensor(logits, dtype=torch.float32), 0.5)
    return loss_fn(out)[0].item()


@pytest.mark.parametrize(("b", "c"), SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_default_is_the_authors_code(b: int, c: int, seed: int) -> None:
    logits = _logits(b, c, seed)
    assert _loss(BNMLoss(3, c), logits) == pytest.approx(_authors_bnm(logits), rel=1e-5)
    assert _loss(BNMLoss(3, c, trade_off=0.3), logits) == pytest.approx(0.3 * _authors_bnm(logits), rel=1e-5)


@pytest.mark.parametrize(("b", "c"), SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_batch_size_option_is_the_papers_equation_as_pytorch_adapt(b: int, c: int, seed: int) -> None:
    logits = _logits(b, c, seed)
    assert _loss(BNMLoss(3, c, normalize="batch_size"), logits) == pytest.approx(_pytorch_adapt_bnm(logits), rel=1e-5)


@pytest.mark.parametrize(("b", "c"), SHAPES)
def test_ratio_of_the_two_is_min_over_batch(b: int, c: int) -> None:
    logits = _logits(b, c, 2)
    paper = _loss(BNMLoss(3, c, normalize="batch_size"), logits)
    code = _loss(BNMLoss(3, c), logits)
    assert paper / code == pytest.approx(min(b, c) / b, rel=1e-6)
    # The references themselves stand in the same ratio (the scale dabin's default changed by).
    assert _pytorch_adapt_bnm(logits) / _authors_bnm(logits) == pytest.approx(min(b, c) / b, rel=1e-12)
