"""DANN (Ganin et al., JMLR 2016) as an adaptation loss: a domain discriminator behind gradient reversal.

Also home of the two pieces the adversarial methods share: the two-layer head of the DANN task
(:func:`mlp_head`) and the reversal coefficient ``λ_p`` as a function of the training progress
(:func:`grl_lambda`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dabin.errors import DabinError
from dabin.methods.base import AdaptationLoss, StepOutputs
from dabin.nn.grl import gradient_reversal

__all__ = ["DANNLoss", "grl_lambda", "mlp_head"]


def mlp_head(in_features: int, hidden: int, out_features: int, dropout: float) -> nn.Sequential:
    """``Linear(in, hidden) → ReLU → Dropout → Linear(hidden, out)``.

    The architecture of the label predictor and the domain classifier of :class:`dabin.modules.TransferModule`
    (its ``_mlp``), so the methods' heads match the task's and results stay comparable.

    Args:
        in_features: Input width.
        hidden: Hidden width.
        out_features: Output width (2 for a domain discriminator, ``C`` for a classifier head).
        dropout: Dropout probability of the hidden layer, in [0, 1).

    Returns:
        The head, mapping ``(B, in_features)`` to ``(B, out_features)``.
    """
    if not 0.0 <= dropout < 1.0:
        raise DabinError(f"dropout must be in [0, 1), got {dropout}")
    if hidden < 1:
        raise DabinError(f"hidden width must be positive, got {hidden}")
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(hidden, out_features))


def grl_lambda(progress: float, gamma: float, max_value: float) -> float:
    """Reversal coefficient ``λ_p = max_value · (2 / (1 + exp(−γ p)) − 1)`` at training progress ``p``.

    :func:`dabin.modules.schedules.dann_lambda`, imported when first called: ``dabin.modules`` imports
    the Lightning tasks on package import, and a task that imports ``dabin.methods`` must not find
    this package half-initialized.

    Args:
        progress: ``p`` in [0, 1] (:attr:`StepOutputs.progress`).
        gamma: ``γ`` of the schedule.
        max_value: Final value of ``λ``.

    Returns:
        ``λ_p`` (0 at ``p = 0``).
    """
    from dabin.modules.schedules import dann_lambda

    return dann_lambda(progress, gamma, max_value)


def _check_schedule(lambda_gamma: float, lambda_max: float) -> None:
    if lambda_gamma < 0:
        raise DabinError(f"lambda_gamma must be non-negative, got {lambda_gamma}")
    if lambda_max < 0:
        raise DabinError(f"lambda_max must be non-negative, got {lambda_max}")


def domain_labels(n_source: int, n_target: int, device: torch.device) -> Tensor:
    """``(n_source + n_target,)`` domain labels: 0 for source, 1 for target (the DANN task's)."""
    return torch.cat([torch.zeros(n_source, dtype=torch.long, device=device),
                      torch.ones(n_target, dtype=torch.long, device=device)])


class DANNLoss(AdaptationLoss):
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
        _check_schedule(lambda_gamma, lambda_max)
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
