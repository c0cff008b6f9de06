"""CDAN and CDAN+E (Long et al., NeurIPS 2018): a domain discriminator conditioned on the predictions."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from dabin.errors import DabinError
from dabin.methods.adversarial import check_schedule, domain_labels, grl_lambda, mlp_head
from dabin.methods.base import AdaptationLoss, StepOutputs
from dabin.nn.grl import gradient_reversal

__all__ = ["CDANELoss", "CDANLoss", "entropy_weights"]


def entropy_weights(probs: Tensor) -> Tensor:
    """CDAN+E's certainty weights ``w_i = 1 + exp(−H(p_i))``, ``H(p) = −Σ_c p_c log p_c``.

    Args:
        probs: ``(B, C)`` class probabilities (rows summing to 1).

    Returns:
        ``(B,)`` weights in ``[1 + 1/C, 2]``: 2 for a one-hot prediction, ``1 + 1/C`` for a uniform one.
    """
    return 1.0 + torch.exp(-torch.special.entr(probs).sum(1))


class CDANLoss(AdaptationLoss, name="cdan"):
    """Conditional domain-adversarial loss (CDAN; with ``entropy=True``, CDAN+E).

    The discriminator ``h`` (``in → hidden → 2``, ReLU and dropout between: the DANN task's domain
    classifier, so results stay comparable with DANN) sees the features conditioned on the
    predictions ``p = softmax(g)``:

    .. math::

        T(f, p) = \\begin{cases} f \\otimes p = \\mathrm{vec}(p f^\\top) \\in \\mathbb{R}^{C D}
                  & \\text{if } D \\cdot C \\le \\text{threshold}, \\\\
                  \\frac{1}{\\sqrt{d}} (f R_f) \\odot (p R_g) \\in \\mathbb{R}^{d} & \\text{otherwise,}
                  \\end{cases}

        L_{\\text{adapt}} = \\frac{1}{B_s + B_t}\\sum_{i \\in S \\cup T}
            w_i \\, \\mathrm{CE}\\big(d_i, h(R_{λ_p}(T(f_i, p_i)))\\big),

    with ``d_i`` the domain label (0 source, 1 target) and ``R`` the gradient reversal layer
    (identity forward, ``−λ_p`` times the gradient backward, ``λ_p`` from the training progress as
    in DANN). ``R_f (D, d)`` and ``R_g (C, d)`` are fixed standard-normal matrices drawn once from
    ``seed`` (buffers: saved in checkpoints, moved with the module; the paper's randomized
    multilinear map). The reversal sits after the map, as in the authors' and the
    Transfer-Learning-Library's code; with ``p`` fixed the map is linear in ``f``, so the features'
    gradient is the reversed one either way.

    ``p`` is detached, as in the authors' code (``softmax_output = input_list[1].detach()``) and the
    Transfer-Learning-Library: the discriminator's gradient reaches the features, not the classifier.

    Weights: ``w_i = 1`` for CDAN. For CDAN+E, ``w_i = 1 + exp(−H(p_i))`` (the paper's entropy
    conditioning), normalized within each domain to sum to that domain's batch size,
    ``w̃_i = B_s w_i / Σ_{j ∈ S} w_j`` on the source and likewise on the target. With ``B_s = B_t``
    this is exactly the authors' loss, which normalizes each domain's weights to sum to 1 and divides
    the weighted sum by the total weight 2 (``CDAN`` in ``thuml/CDAN``, ``pytorch/loss.py``); with
    unequal batches each domain counts in proportion to its batch, as in DANN's mean, so CDAN+E
    with equal weights is CDAN. (The Transfer-Learning-Library instead normalizes over both domains
    together.) The weights are computed from the detached ``p`` and carry no gradient; the authors'
    code also sends a reversed gradient through the entropy into the classifier, which this does not.

    Shapes: ``features_* (B_*, D)``, ``logits_* (B_*, C)``. Loss: a scalar. Logs: ``domain_acc`` (%),
    ``lambda``.

    Reference: M. Long, Z. Cao, J. Wang, M. I. Jordan, "Conditional Adversarial Domain Adaptation",
    NeurIPS 2018.

    Args:
        features_dim: ``D``.
        num_classes: ``C``.
        hidden_dim: Hidden width of the discriminator (1024, as the paper's and DANN's).
        dropout: Dropout of the discriminator's hidden layer (0.5).
        lambda_gamma: ``γ`` of ``λ_p = λ_max (2 / (1 + exp(−γ p)) − 1)`` (10: the authors' ``calc_coeff``
            with ``alpha=10``, the DANN schedule).
        lambda_max: Final ``λ`` (1, the authors').
        entropy: Entropy conditioning (CDAN+E).
        randomized_dim_threshold: Use the randomized map when ``D · C`` exceeds this (4096: the
            paper uses the multilinear map when ``d_f × d_g ≤ 4096``).
        randomized_dim: ``d``, the randomized map's width (1024, the paper's).
        seed: Seed of ``R_f`` and ``R_g`` (the same seed gives the same matrices).
    """

    random_f: Tensor
    random_g: Tensor

    def __init__(self, features_dim: int, num_classes: int, *, hidden_dim: int = 1024, dropout: float = 0.5,
                 lambda_gamma: float = 10.0, lambda_max: float = 1.0, entropy: bool = False,
                 randomized_dim_threshold: int = 4096, randomized_dim: int = 1024, seed: int = 0) -> None:
        super().__init__(features_dim, num_classes)
        check_schedule(lambda_gamma, lambda_max)
        if randomized_dim < 1:
            raise DabinError(f"randomized_dim must be positive, got {randomized_dim}")
        self.lambda_gamma = lambda_gamma
        self.lambda_max = lambda_max
        self.entropy = entropy
        self.randomized = features_dim * num_classes > randomized_dim_threshold
        if self.randomized:
            generator = torch.Generator().manual_seed(seed)
            self.register_buffer("random_f", torch.randn(features_dim, randomized_dim, generator=generator))
            self.register_buffer("random_g", torch.randn(num_classes, randomized_dim, generator=generator))
            map_dim = randomized_dim
        else:
            map_dim = features_dim * num_classes
        self.discriminator = mlp_head(map_dim, hidden_dim, 2, dropout)

    def current_lambda(self, progress: float) -> float:
        """``λ_p`` at training progress ``progress``."""
        return grl_lambda(progress, self.lambda_gamma, self.lambda_max)

    def conditioning_map(self, features: Tensor, probs: Tensor) -> Tensor:
        """``T(f, p)``: ``(B, D), (B, C) → (B, C·D)`` (entry ``c·D + k`` is ``p_c f_k``) or ``(B, d)``."""
        if self.randomized:
            projected_f = features @ self.random_f.to(features.dtype)
            projected_p = probs @ self.random_g.to(probs.dtype)
            return projected_f * projected_p / math.sqrt(self.random_f.shape[1])
        return (probs.unsqueeze(2) * features.unsqueeze(1)).flatten(1)

    @property
    def method_name(self) -> str:
        """``cdan_e`` with entropy conditioning (whichever class was built), else ``cdan``."""
        return "cdan_e" if self.entropy else "cdan"

    def forward(self, outputs: StepOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """The conditional domain loss of one step (see the class docstring), ``domain_acc`` and ``lambda``."""
        lam = self.current_lambda(outputs.progress)
        n_source, n_target = outputs.features_s.shape[0], outputs.features_t.shape[0]
        features = torch.cat([outputs.features_s, outputs.features_t])
        probs = F.softmax(torch.cat([outputs.logits_s, outputs.logits_t]), dim=1).detach()
        domain_logits = self.discriminator(gradient_reversal(self.conditioning_map(features, probs), lam))
        labels = domain_labels(n_source, n_target, features.device)
        if self.entropy:
            weights = entropy_weights(probs.float())
            w_s, w_t = weights[:n_source], weights[n_source:]
            weights = torch.cat([w_s * (n_source / w_s.sum()), w_t * (n_target / w_t.sum())])
            per_sample = F.cross_entropy(domain_logits, labels, reduction="none")
            loss = (weights.to(per_sample.dtype) * per_sample).sum() / (n_source + n_target)
        else:
            loss = F.cross_entropy(domain_logits, labels)
        accuracy = (domain_logits.detach().argmax(1) == labels).float().mean() * 100
        return loss, {"domain_acc": accuracy, "lambda": lam}


class CDANELoss(CDANLoss, name="cdan_e"):
    """CDAN+E: :class:`CDANLoss` with entropy conditioning on by default (see there for the maths).

    Args:
        features_dim: ``D``.
        num_classes: ``C``.
        hidden_dim: Hidden width of the discriminator (1024).
        dropout: Dropout of the discriminator's hidden layer (0.5).
        lambda_gamma: ``γ`` of the ``λ_p`` schedule (10).
        lambda_max: Final ``λ`` (1).
        entropy: Entropy conditioning (True: this is CDAN+E).
        randomized_dim_threshold: Randomized map above this ``D · C`` (4096, the paper's).
        randomized_dim: Width of the randomized map (1024, the paper's).
        seed: Seed of the randomized map's matrices.
    """

    def __init__(self, features_dim: int, num_classes: int, *, hidden_dim: int = 1024, dropout: float = 0.5,
                 lambda_gamma: float = 10.0, lambda_max: float = 1.0, entropy: bool = True,
                 randomized_dim_threshold: int = 4096, randomized_dim: int = 1024, seed: int = 0) -> None:
        super().__init__(features_dim, num_classes, hidden_dim=hidden_dim, dropout=dropout,
                         lambda_gamma=lambda_gamma, lambda_max=lambda_max, entropy=entropy,
                         randomized_dim_threshold=randomized_dim_threshold, randomized_dim=randomized_dim,
                         seed=seed)
