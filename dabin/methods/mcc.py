"""MCC (Jin et al., ECCV 2020): minimum class confusion on the target predictions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dabin.errors import DabinError
from dabin.methods.base import AdaptationLoss, StepOutputs

__all__ = ["MCCLoss"]


class MCCLoss(AdaptationLoss, name="mcc"):
    """Minimum Class Confusion on the target batch; no parameters.

    With ``g_t`` the ``(B, C)`` target logits and ``T`` the temperature:

    .. math::

        \\hat Y = \\mathrm{softmax}(g_t / T), \\qquad
        W_i = B \\, \\frac{1 + \\exp(-H(\\hat Y_i))}{\\sum_{i'} 1 + \\exp(-H(\\hat Y_{i'}))}, \\qquad
        C = \\hat Y^\\top \\mathrm{diag}(W) \\hat Y \\in \\mathbb{R}^{C \\times C},

        \\tilde C_{jj'} = \\frac{C_{jj'}}{\\sum_{j''} C_{jj''}}, \\qquad
        L_{\\text{adapt}} = \\text{trade\\_off} \\cdot \\frac{1}{C} \\sum_j \\sum_{j' \\ne j} \\tilde C_{jj'},

    with ``H(y) = −Σ_c y_c log y_c`` (Jin et al.). The entropy weights ``W`` are constants
    (detached, as in the authors' code and the Transfer-Learning-Library); their scaling to sum to
    ``B`` is kept from the paper but cancels in the normalization of ``C``. ``C`` is symmetric, so
    normalizing its rows (the paper) or its columns (what the authors' code's broadcast
    ``C / C.sum(dim=1)`` does) gives the same loss, ``1 − (1/C) Σ_j C_jj / Σ_j' C_jj'``.

    Shapes: ``logits_t (B_t, C)``; features and source logits are not used. Loss: a scalar in
    ``[0, 1 − 1/C]``. Logs: none.

    Reference: Y. Jin, X. Wang, M. Long, J. Wang, "Minimum Class Confusion for Versatile Domain
    Adaptation", ECCV 2020.

    Args:
        features_dim: ``D`` (unused).
        num_classes: ``C``.
        temperature: ``T`` (2.5: the paper's default; the Transfer-Learning-Library's default too).
        trade_off: Weight of the loss (1: the Transfer-Learning-Library's default ``--trade-off``).
    """

    def __init__(self, features_dim: int, num_classes: int, *, temperature: float = 2.5,
                 trade_off: float = 1.0) -> None:
        super().__init__(features_dim, num_classes)
        if temperature <= 0:
            raise DabinError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.trade_off = trade_off

    def forward(self, outputs: StepOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """``trade_off`` times the class confusion of the target batch (see the class docstring)."""
        logits = outputs.logits_t.float()
        batch_size, num_classes = logits.shape
        probs = F.softmax(logits / self.temperature, dim=1)
        weights = 1.0 + torch.exp(-torch.special.entr(probs.detach()).sum(1))
        weights = batch_size * weights / weights.sum()
        confusion = (probs * weights.unsqueeze(1)).t() @ probs
        confusion = confusion / confusion.sum(dim=1, keepdim=True)
        loss = (confusion.sum() - confusion.trace()) / num_classes
        return self.trade_off * loss, {}
