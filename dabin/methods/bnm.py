"""BNM (Cui et al., CVPR 2020): batch nuclear-norm maximization on the target predictions."""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from dabin.errors import DabinError
from dabin.methods.base import AdaptationLoss, StepOutputs

__all__ = ["BNMLoss", "BNMNormalize"]

#: What the batch nuclear norm is divided by (see :class:`BNMLoss`): ``mean_singular_value``
#: (``min(B_t, C)``, the authors' code) or ``batch_size`` (``B_t``, the paper's equation).
BNMNormalize = Literal["mean_singular_value", "batch_size"]


class BNMLoss(AdaptationLoss, name="bnm"):
    """Batch nuclear-norm maximization on the target batch; no parameters.

    With ``A = softmax(g_t)`` the ``(B_t, C)`` target prediction matrix and ``σ_k(A)``,
    ``k = 1..min(B_t, C)``, its singular values:

    .. math::

        \\|A\\|_* = \\sum_{k=1}^{\\min(B_t, C)} σ_k(A), \\qquad
        L_{\\text{adapt}} = -\\text{trade\\_off} \\cdot \\frac{\\|A\\|_*}{n}, \\qquad
        n = \\begin{cases}
              \\min(B_t, C) & \\text{normalize = mean\\_singular\\_value (default)} \\\\
              B_t           & \\text{normalize = batch\\_size}
            \\end{cases}

    Maximizing the nuclear norm raises both the predictions' confidence (discriminability) and the
    number of classes the batch predicts (diversity) (Cui et al.).

    * ``mean_singular_value`` (the default) is the authors' code, ``cuishuhao/BNM``,
      ``DA/BNM/train_image.py`` (``train``, ``method == "BNM"``):
      ``_, s_tgt, _ = torch.svd(softmax_tgt); transfer_loss = -torch.mean(s_tgt)``, where the
      reduced SVD has ``min(B_t, C)`` singular values. The authors' ``trade_off`` (1) was run
      on this scale.
    * ``batch_size`` is the paper's equation, ``L_bnm = −(1/B) ‖A‖_*``, and ``pytorch-adapt``'s
      ``BNMLoss`` (``src/pytorch_adapt/layers/bnm_loss.py``:
      ``-torch.linalg.norm(x, "nuc") / x.shape[0]``).

    The two agree when ``B_t ≤ C`` (e.g. 32 images and Office-Home's 65 classes). When
    ``B_t > C`` the paper's form is the code's times ``C / B_t``, i.e. a smaller weight at the
    same ``trade_off``; in general ``batch_size / mean_singular_value = min(B_t, C) / B_t``.

    The singular values come from ``torch.linalg.svdvals`` in float32. The gradient of
    ``‖A‖_*`` is ``U Vᵀ`` of the reduced SVD ``A = U diag(σ) Vᵀ``; the ``1 / (σ_i² − σ_j²)``
    terms of an SVD's backward belong to the singular vectors' gradients only, which this loss
    does not use, so repeated or zero singular values (a batch predicting one class) keep it
    finite.

    Shapes: ``logits_t (B_t, C)``; features and source logits are not used. Loss: a scalar in
    ``[−trade_off · sqrt(B_t · min(B_t, C)) / n, 0)``, since ``‖A‖_* ≤ sqrt(rank A) ‖A‖_F`` and
    each row of ``A`` has Euclidean norm at most 1; the bound is reached by one-hot predictions
    spread evenly over ``min(B_t, C)`` classes (where that divides ``B_t``): ``−trade_off`` for
    ``B_t ≤ C`` with either normalization. Logs: none.

    Reference: S. Cui, S. Wang, J. Zhuo, L. Li, Q. Huang, Q. Tian, "Towards Discriminability and
    Diversity: Batch Nuclear-norm Maximization under Label Insufficient Situations", CVPR 2020.

    Args:
        features_dim: ``D`` (unused).
        num_classes: ``C``.
        trade_off: Weight of the loss (1: the authors' ``--trade_off`` default).
        normalize: ``n`` above: ``mean_singular_value`` (the authors' code) or ``batch_size``
            (the paper's equation, ``pytorch-adapt``'s). ``method: bnm`` takes the default; the
            other through the class, as any method option: ``--model.method BNMLoss
            --model.method.normalize batch_size``, or in YAML ``method: {class_path:
            dabin.methods.BNMLoss, init_args: {normalize: batch_size}}``.

    Raises:
        DabinError: For a ``normalize`` that is neither.
    """

    def __init__(self, features_dim: int, num_classes: int, *, trade_off: float = 1.0,
                 normalize: BNMNormalize = "mean_singular_value") -> None:
        super().__init__(features_dim, num_classes)
        if normalize not in get_args(BNMNormalize):
            choices = ", ".join(get_args(BNMNormalize))
            raise DabinError(f"unknown BNM normalize {normalize!r}; expected one of {choices}")
        self.trade_off = trade_off
        self.normalize = normalize

    def forward(self, outputs: StepOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """``−trade_off · ‖softmax(g_t)‖_* / n`` (see the class docstring)."""
        # float32 also under autocast: no SVD in half precision.
        probs = F.softmax(outputs.logits_t.float(), dim=1)
        batch_size, num_classes = probs.shape
        divisor = min(batch_size, num_classes) if self.normalize == "mean_singular_value" else batch_size
        return -self.trade_off * torch.linalg.svdvals(probs).sum() / divisor, {}

    def extra_repr(self) -> str:
        """The options, for ``print(module)``."""
        return f"trade_off={self.trade_off}, normalize={self.normalize!r}"
