"""DANN (Ganin et al., JMLR 2016) as an adaptation loss: a domain discriminator behind gradient reversal.

The pieces the adversarial methods share (the head :func:`~dabin.methods.adversarial.mlp_head`, the
schedule :func:`~dabin.methods.adversarial.grl_lambda`) are in :mod:`dabin.methods.adversarial`;
this module still hands those two on under their earlier address.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dabin.methods.adversarial import check_schedule, domain_labels, grl_lambda, mlp_head
from dabin.methods.base import AdaptationLoss, StepOutputs
from dabin.nn.grl import gradient_reversal

__all__ = ["DANNLoss", "grl_lambda", "mlp_head"]


class DANNLoss(AdaptationLoss, name="dann"):
    """Domain-adversarial loss of DANN: a domain classifier on reversed features.

    With ``f = [f_s; f_t]`` the ``(B_s + B_t, D)`` features, ``d_i`` their domain labels (0 source,
    1 target) and ``h`` the discriminator (``D → hidden → 2``, ReLU and dropout between: the domain
    classifier of :class:`dabin.modules.TransferModule`),

    .. math::

        L_{\\text{adapt}} = \\frac{1}{B_s + B_t}\\sum_{i \\in S \\cup T} \\mathrm{CE}\\big(d_i, h(R_{λ_p}(f_i))\\big),

    where the gradient reversal layer ``R`` is the identity forward and multiplies the gradient by
    ``−λ_p`` backward: the discriminator minimizes the loss, the features maximize it (scaled by
    ``λ_p``). ``λ_p = λ_max (2 / (1 + exp(−γ p)) − 1)`` follows the training progress ``p`` (Ganin et
    al., JMLR 2016, Section 5.2.2; ``γ = 10``, ``λ_max = 1`` there), so it is 0 at the start of training.

    Shapes: ``features_s (B_s, D)``, ``features_t (B_t, D)``; logits are not used. Loss: a scalar.
    Logs: ``domain_acc`` (the discriminator's accuracy on the step, %) and ``lambda``.

    Reference: Y. Ganin, E. Ustinova, H. Ajakan, P. Germain, H. Larochelle, F. Laviolette,
    M. Marchand, V. Lempitsky, "Domain-Adversarial Training of Neural Networks", JMLR 17(59), 2016.

    Args:
        features_dim: ``D``.
        num_classes: ``C`` (unused by DANN).
        hidden_dim: Hidden width of the discriminator (1024: the DANN task's; the paper's Office
            discriminator has two hidden layers of 1024, the task keeps one).
        dropout: Dropout of the discriminator's hidden layer (0.5, the paper's).
        lambda_gamma: ``γ`` of the ``λ_p`` schedule (10, the paper's).
        lambda_max: Final ``λ`` (1, the paper's).
    """

    uses_target_logits = False

    def __init__(self, features_dim: int, num_classes: int, *, hidden_dim: int = 1024, dropout: float = 0.5,
                 lambda_gamma: float = 10.0, lambda_max: float = 1.0) -> None:
        super().__init__(features_dim, num_classes)
        check_schedule(lambda_gamma, lambda_max)
        self.lambda_gamma = lambda_gamma
        self.lambda_max = lambda_max
        self.discriminator = mlp_head(features_dim, hidden_dim, 2, dropout)

    def current_lambda(self, progress: float) -> float:
        """``λ_p`` at training progress ``progress``."""
        return grl_lambda(progress, self.lambda_gamma, self.lambda_max)

    def forward(self, outputs: StepOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """The domain loss of one step (see the class docstring) and ``domain_acc``, ``lambda``."""
        lam = self.current_lambda(outputs.progress)
        features = torch.cat([outputs.features_s, outputs.features_t])
        domain_logits = self.discriminator(gradient_reversal(features, lam))
        labels = domain_labels(outputs.features_s.shape[0], outputs.features_t.shape[0], features.device)
        loss = F.cross_entropy(domain_logits, labels)
        accuracy = (domain_logits.detach().argmax(1) == labels).float().mean() * 100
        return loss, {"domain_acc": accuracy, "lambda": lam}
