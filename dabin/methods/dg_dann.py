"""DANN for domain generalization: ERM plus a K-way domain classifier behind gradient reversal."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dabin.methods.adversarial import check_schedule, grl_lambda, mlp_head
from dabin.methods.generalization import DomainOutputs, GeneralizationLoss
from dabin.nn.grl import gradient_reversal

__all__ = ["DomainAdversarialLoss"]


class DomainAdversarialLoss(GeneralizationLoss, name="dg_dann"):
    """ERM's cross-entropy plus a domain classifier over the ``K`` training domains on reversed features.

    With ``f`` the concatenated features ``(Σ_k B_k, D)``, ``d_i ∈ {0 … K−1}`` each row's domain,
    ``h`` the discriminator (``D → hidden → K``, ReLU and dropout between: the layout of
    :class:`dabin.methods.dann.DANNLoss`'s, with ``K`` outputs) and ``R_λ`` the gradient reversal
    layer (identity forward, gradient times ``−λ`` backward),

    .. math::

        L = \\frac{1}{\\sum_k B_k}\\sum_i \\mathrm{CE}(y_i, g_i)
          + \\frac{1}{\\sum_k B_k}\\sum_i \\mathrm{CE}\\big(d_i, h(R_{λ_p}(f_i))\\big),
        \\qquad λ_p = λ_{\\max}\\Big(\\frac{2}{1 + \\exp(−γ p)} − 1\\Big).

    One backward pass trains the discriminator to tell the domains apart and, through ``R``, the
    features to confuse it (scaled by ``λ_p``); the classification term is :class:`~dabin.methods.generalization.ERMLoss`'s.

    How this differs from DomainBed's ``DANN`` (``AbstractDANN`` with ``conditional=False``):
    DomainBed has no gradient reversal. It keeps two Adam optimizers (discriminator at ``lr_d``,
    featurizer and classifier at ``lr_g``, ``betas=(0.5, 0.9)``) and alternates: with
    ``d_steps_per_g_step = 1`` one step trains the discriminator alone on the domain loss plus a
    gradient penalty on its input (weight ``grad_penalty``, 0 by default), the next trains the
    featurizer and classifier alone on ``CE − λ·(domain loss + penalty)`` with a constant ``λ = 1``.
    Its discriminator is an MLP of width 256 and depth 3 (``Linear → Dropout → ReLU`` twice, then
    the output; dropout 0). dabin trains with one optimizer under Lightning's automatic
    optimization, so it cannot alternate optimizers; it does both updates in every step, as
    Ganin's gradient reversal does (for a constant ``λ_p`` the features' gradient is the one of
    DomainBed's generator step, ``−λ ∇_f`` of the domain loss), with no gradient penalty, the
    discriminator at the heads' learning rate, and the DANN task's discriminator and ``λ_p`` schedule.

    How it differs from Ganin et al. and the Transfer-Learning-Library's DANN: those adapt between
    two domains, an unlabelled target among them (a binary discriminator; tllib's with
    batch norm and a sigmoid), and classify the source only; here all ``K`` domains are labelled
    training domains, each in the classification term, and the discriminator is ``K``-way.

    Shapes: ``features`` ``(B_k, D)``, ``logits`` ``(B_k, C)``, ``labels`` ``(B_k,)``. Objective:
    a scalar. Logs: ``domain_acc`` (the discriminator's accuracy on the step, %), ``lambda`` and
    ``domain_loss`` (the discriminator's cross-entropy).

    Reference: Y. Ganin, E. Ustinova, H. Ajakan, P. Germain, H. Larochelle, F. Laviolette,
    M. Marchand, V. Lempitsky, "Domain-Adversarial Training of Neural Networks", JMLR 17(59), 2016;
    DomainBed's ``DANN``.

    Args:
        features_dim: ``D``.
        num_classes: ``C``.
        num_domains: ``K``, the discriminator's outputs.
        hidden_dim: Hidden width of the discriminator (1024, as :class:`~dabin.methods.dann.DANNLoss`).
        dropout: Dropout of its hidden layer (0.5, as :class:`~dabin.methods.dann.DANNLoss`).
        lambda_gamma: ``γ`` of the ``λ_p`` schedule (10, Ganin et al.'s).
        lambda_max: Final ``λ`` (1, Ganin et al.'s; DomainBed's constant ``lambda`` is 1 too).
    """

    def __init__(self, features_dim: int, num_classes: int, num_domains: int, *, hidden_dim: int = 1024,
                 dropout: float = 0.5, lambda_gamma: float = 10.0, lambda_max: float = 1.0) -> None:
        super().__init__(features_dim, num_classes, num_domains)
        check_schedule(lambda_gamma, lambda_max)
        self.lambda_gamma = lambda_gamma
        self.lambda_max = lambda_max
        self.discriminator = mlp_head(features_dim, hidden_dim, num_domains, dropout)

    def current_lambda(self, progress: float) -> float:
        """``λ_p`` at training progress ``progress``."""
        return grl_lambda(progress, self.lambda_gamma, self.lambda_max)

    def forward(self, outputs: DomainOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """The cross-entropy plus the domain loss (see the class docstring), and ``domain_acc``, ``lambda``."""
        self.check_domains(outputs)
        lam = self.current_lambda(outputs.progress)
        classification = F.cross_entropy(torch.cat(outputs.logits), torch.cat(outputs.labels))
        features = torch.cat(outputs.features)
        domains = torch.cat([torch.full((f.shape[0],), k, dtype=torch.long, device=features.device)
                             for k, f in enumerate(outputs.features)])
        # λ as a float64 tensor for float64 features: a float becomes a float32 one, rounding their gradient.
        coeff = torch.tensor(lam, dtype=torch.float64 if features.dtype == torch.float64 else torch.float32)
        domain_logits = self.discriminator(gradient_reversal(features, coeff))
        domain_loss = F.cross_entropy(domain_logits, domains)
        accuracy = (domain_logits.detach().argmax(1) == domains).float().mean() * 100
        logs: dict[str, Tensor | float] = {"domain_acc": accuracy, "lambda": lam, "domain_loss": domain_loss.detach()}
        return classification + domain_loss, logs
