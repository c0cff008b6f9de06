"""BNM (Cui et al., CVPR 2020): batch nuclear-norm maximization on the target predictions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dabin.methods.base import AdaptationLoss, StepOutputs

__all__ = ["BNMLoss"]


class BNMLoss(AdaptationLoss):
    """Batch nuclear-norm maximization on the target batch; no parameters.

    With ``A = softmax(g_t)`` the ``(B_t, C)`` target prediction matrix:

    .. math::

        L_{\\text{adapt}} = -\\text{trade\\_off} \\cdot \\frac{1}{B_t} \\|A\\|_*
                          = -\\text{trade\\_off} \\cdot \\frac{1}{B_t} \\sum_k σ_k(A),

    the sum of ``A``'s singular values (``torch.linalg.svdvals``; its gradient is ``U Vᵀ``).
    Maximizing the nuclear norm raises both the predictions' confidence (discriminability) and the
    number of classes the batch predicts (diversity) (Cui et al.). The authors' code
(``cuishuhao/BNM``, ``DA/BNM/train_image.py``) takes the mean of the singular values,
``/ min(B_t, C)``: the same when ``B_t ≤ C`` (e.g. 36 images and 65 Office-Home classes).

    Shapes: ``logits_t (B_t, C)``; features and source logits are not used. Loss: a scalar in
    ``[−trade_off · sqrt(min(B_t, C) / B_t), 0)``; ``−trade_off`` when ``B_t ≤ C`` and the batch
    predicts ``B_t`` different classes with certainty. Logs: none.

    Reference: S. Cui, S. Wang, J. Zhuo, L. Li, Q. Huang, Q. Tian, "Towards Discriminability and
    Diversity: Batch Nuclear-norm Maximization under Label Insufficient Situations", CVPR 2020.

    Args:
        features_dim: ``D`` (unused).
        num_classes: ``C``.
        trade_off: Weight of the loss (1: the authors' ``--trade_off`` default).
    """

    def __init__(self, features_dim: int, num_classes: int, *, trade_off: float = 1.0) -> None:
        super().__init__(features_dim, num_classes)
        self.trade_off = trade_off

    def forward(self, outputs: StepOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """``−trade_off · ‖softmax(g_t)‖_* / B_t`` (see the class docstring)."""
        probs = F.softmax(outputs.logits_t.float(), dim=1)
        nuclear_norm = torch.linalg.svdvals(probs).sum()
        return -self.trade_off * nuclear_norm / probs.shape[0], {}
