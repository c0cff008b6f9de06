"""MDD (Zhang et al., ICML 2019): margin disparity discrepancy with an adversarial classifier head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dabin.errors import DabinError
from dabin.methods.adversarial import check_schedule, grl_lambda, mlp_head
from dabin.methods.base import AdaptationLoss, StepOutputs
from dabin.nn.grl import gradient_reversal

__all__ = ["MDDLoss", "log_one_minus_softmax"]


def log_one_minus_softmax(logits: Tensor, labels: Tensor) -> Tensor:
    """``log(1 − softmax(z)_y)`` per row, computed stably as ``logsumexp_{j≠y} z_j − logsumexp_j z_j``.

    Finite for any finite logits with ``C ≥ 2`` (no ``log(0)`` when ``softmax(z)_y`` rounds to 1),
    and its gradient with respect to ``z`` is bounded.

    Args:
        logits: ``(B, C)``.
        labels: ``(B,)`` class indices.

    Returns:
        ``(B,)``.
    """
    others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return torch.logsumexp(others, dim=1) - torch.logsumexp(logits, dim=1)


class MDDLoss(AdaptationLoss, name="mdd"):
    """Margin disparity discrepancy (the classification form of MDD, with the paper's log-loss surrogate).

    An adversarial head ``h'`` (``D → hidden → C``, ReLU and dropout between: the DANN task's label
    predictor) sees the features through a gradient reversal layer ``R``. With ``ŷ = argmax g`` the
    main classifier's predictions (constants: no gradient reaches the main classifier),
    ``p' = softmax(h'(R_{λ_p}(f)))`` and the margin ``γ``:

    .. math::

        L_{\\text{adapt}} = γ \\frac{1}{B_s}\\sum_{i \\in S} -\\log p'_i[ŷ_i]
                          + \\frac{1}{B_t}\\sum_{j \\in T} -\\log\\big(1 - p'_j[ŷ_j]\\big).

    Signs: this is ``−D̂_γ``, the negative of the empirical discrepancy
    ``D̂_γ = γ E_S[log p'[ŷ]] + E_T[log(1 − p'[ŷ])]`` (the paper's minimax objective with its
    log-loss surrogate; the ``transfer_loss`` of the authors' ``MDD.get_loss``,
    ``srcweight · CE_src + NLL(log(1 − p'_tgt))``; the Transfer-Learning-Library's ``-mdd(...)``).
    Added to the source classification loss and
    minimized, both terms train ``h'`` directly (no reversal between the loss and ``h'``'s weights):
    ``h'`` maximizes ``D̂_γ``, agreeing with ``ŷ`` on the source and disagreeing on the target. Both
    terms reach the features only through ``R``, reversed and scaled by ``λ_p``: the features
    minimize ``D̂_γ``. ``log(1 − p')`` is computed exactly (:func:`log_one_minus_softmax`) instead of
    the authors' plain ``log(1 - softmax)`` or the library's ``log(1 − p' + 1e-6)``.

    ``λ_p = λ_max (2 / (1 + exp(−γ_λ p)) − 1)`` with ``λ_max = 0.1``: the authors' reversal layer
    rises to ``high_value=0.1`` (``GradientReverseLayer`` in ``thuml/MDD``, ``model/MDD.py``; the
    library's ``WarmStartGradientReverseLayer(hi=0.1)``), over iterations (``alpha · iter / 1000``);
    here it follows the progress with DANN's ``γ_λ = 10``.

    Shapes: ``features_* (B_*, D)``, ``logits_* (B_*, C)`` with ``C ≥ 2``. Loss: a scalar.
    Logs: ``lambda``.

    Reference: Y. Zhang, T. Liu, M. Long, M. I. Jordan, "Bridging Theory and Algorithm for Domain
    Adaptation", ICML 2019.

    Args:
        features_dim: ``D``.
        num_classes: ``C``.
        hidden_dim: Hidden width of ``h'`` (1024: the authors' ``width`` for Office-31, the library's
            default; the authors use 2048 for Office-Home).
        dropout: Dropout of ``h'``'s hidden layer (0.5, the authors').
        margin: ``γ`` (4: the authors' ``srcweight`` for Office-31 and the library's default for
            Office-31 and Office-Home; the authors use 2 with width 2048, or 3 with width 1024, on
            Office-Home).
        lambda_gamma: ``γ_λ`` of the ``λ_p`` schedule (10, DANN's).
        lambda_max: Final ``λ`` (0.1, the authors').
    """

    def __init__(self, features_dim: int, num_classes: int, *, hidden_dim: int = 1024, dropout: float = 0.5,
                 margin: float = 4.0, lambda_gamma: float = 10.0, lambda_max: float = 0.1) -> None:
        super().__init__(features_dim, num_classes)
        check_schedule(lambda_gamma, lambda_max)
        if num_classes < 2:
            raise DabinError(f"MDD needs at least 2 classes, got {num_classes}")
        if margin < 0:
            raise DabinError(f"margin must be non-negative, got {margin}")
        self.margin = margin
        self.lambda_gamma = lambda_gamma
        self.lambda_max = lambda_max
        self.adversarial_head = mlp_head(features_dim, hidden_dim, num_classes, dropout)

    def current_lambda(self, progress: float) -> float:
        """``λ_p`` at training progress ``progress``."""
        return grl_lambda(progress, self.lambda_gamma, self.lambda_max)

    def forward(self, outputs: StepOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """``−D̂_γ`` of one step (see the class docstring) and ``lambda``."""
        lam = self.current_lambda(outputs.progress)
        n_source = outputs.features_s.shape[0]
        features = torch.cat([outputs.features_s, outputs.features_t])
        adversarial = self.adversarial_head(gradient_reversal(features, lam)).float()
        adversarial_s, adversarial_t = adversarial[:n_source], adversarial[n_source:]
        predicted_s = outputs.logits_s.detach().argmax(1)
        predicted_t = outputs.logits_t.detach().argmax(1)
        source_term = F.cross_entropy(adversarial_s, predicted_s)
        target_term = -log_one_minus_softmax(adversarial_t, predicted_t).mean()
        return self.margin * source_term + target_term, {"lambda": lam}
