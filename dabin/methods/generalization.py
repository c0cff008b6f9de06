"""What a domain-generalization method is: the whole training objective over K labelled domains.

Domain generalization (DG) trains on the labelled minibatches of ``K`` training domains at once
and tests on a domain never seen. A method sees, per training domain ``k``, the features
``f_k (B_k, D)`` the classifier reads, its logits ``g_k (B_k, C)`` and the labels ``y_k (B_k,)``
(:class:`DomainOutputs`), and returns the whole objective, classification included: unlike an
:class:`~dabin.methods.base.AdaptationLoss`, whose term is added to a fixed source cross-entropy,
a DG method may weigh the domains' classification losses itself (GroupDRO) or average them
otherwise than over the concatenated batch (CORAL, MMD). The methods follow DomainBed
(Gulrajani & Lopez-Paz, "In Search of Lost Domain Generalization", ICLR 2021; repository
facebookresearch/DomainBed, ``domainbed/algorithms.py``):

* ``erm`` (:class:`ERMLoss`): cross-entropy over the concatenated minibatches.
* ``coral`` (:class:`~dabin.methods.coral.CORALLoss`), ``mmd``
  (:class:`~dabin.methods.domain_mmd.MMDLoss`): the domains' mean cross-entropy plus a penalty on
  the distance between every pair of domains' features (:class:`FeatureMatchingLoss`, DomainBed's
  ``AbstractMMD``).
* ``group_dro`` (:class:`~dabin.methods.group_dro.GroupDROLoss`): the domains' cross-entropies
  weighted by an exponentiated-gradient distribution over the domains.
* ``dg_dann`` (:class:`~dabin.methods.dg_dann.DomainAdversarialLoss`): ERM plus a ``K``-way
  domain classifier behind gradient reversal.

How the task computes ``f_k`` and ``g_k`` (one network pass over the concatenated batch, or one
per domain: DomainBed's ERM and DANN do the first, its CORAL, MMD and GroupDRO the second, which
changes the batch-norm statistics) each loss declares as DomainBed does it
(:attr:`GeneralizationLoss.domain_passes`); the task follows it unless told otherwise.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dabin.errors import DabinError
from dabin.methods.base import NamedMethod

__all__ = ["DomainOutputs", "ERMLoss", "FeatureMatchingLoss", "GeneralizationLoss", "domain_cross_entropies",
           "full_precision"]


@dataclasses.dataclass(frozen=True)
class DomainOutputs:
    """One DG training step's outputs, one entry per training domain ``k = 0 … K−1``.

    Attributes:
        features: ``f_k (B_k, D)``: the features the classifier reads.
        logits: ``g_k (B_k, C)``: the class logits.
        labels: ``y_k (B_k,)``: the class labels (long).
        progress: Training progress ``p`` in [0, 1] (from the trainer's step counter).

    Raises:
        DabinError: No domain, the three tuples of different lengths, or a domain whose features,
            logits and labels have different numbers of rows.
    """

    features: tuple[Tensor, ...]
    logits: tuple[Tensor, ...]
    labels: tuple[Tensor, ...]
    progress: float

    def __post_init__(self) -> None:
        # Lists are accepted and stored as tuples, so the outputs stay immutable.
        for field in ("features", "logits", "labels"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        lengths = (len(self.features), len(self.logits), len(self.labels))
        if not lengths[0] or len(set(lengths)) != 1:
            raise DabinError(f"DomainOutputs needs features, logits and labels for the same domains (at least one), "
                             f"got {lengths[0]}, {lengths[1]} and {lengths[2]}")
        for k, (f, g, y) in enumerate(zip(self.features, self.logits, self.labels)):
            if not f.shape[0] == g.shape[0] == y.shape[0]:
                raise DabinError(f"domain {k}: features, logits and labels have {f.shape[0]}, {g.shape[0]} and "
                                 f"{y.shape[0]} rows")

    @property
    def num_domains(self) -> int:
        """``K``."""
        return len(self.features)


def domain_cross_entropies(outputs: DomainOutputs) -> Tensor:
    """The mean cross-entropy of each domain's minibatch.

    Args:
        outputs: The step's outputs.

    Returns:
        ``(K,)``: ``L_k = (1/B_k) Σ_{i ∈ k} CE(y_i, g_i)``.
    """
    return torch.stack([F.cross_entropy(g, y) for g, y in zip(outputs.logits, outputs.labels)])


def full_precision(x: Tensor) -> Tensor:
    """``x`` in float32 if it is in half precision (float16, bfloat16), else ``x`` (float64 stays)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class GeneralizationLoss(NamedMethod, nn.Module):
    """Base of the DG methods: ``forward(outputs) -> (objective, logs)``.

    Subclasses implement :meth:`forward`; its docstring gives the method's equation, the shapes and
    the defaults (DomainBed's ``hparams_registry.py``). The objective is the whole training loss,
    classification included; ``logs`` are scalars worth plotting (a penalty, a weight), logged
    under ``train/<name>``. A subclass names itself in :data:`dabin.methods.GENERALIZATION` with
    ``name=`` (:class:`~dabin.methods.base.NamedMethod`).

    Args:
        features_dim: ``D``, the width of the features.
        num_classes: ``C``.
        num_domains: ``K``, the number of training domains every step has.

    Raises:
        DabinError: ``num_domains`` below 1.
    """

    #: How DomainBed's implementation passes a step through the network: ``joint`` (the concatenated
    #: minibatches at once: normalization statistics over every domain) or ``separate`` (one pass
    #: per domain: each normalized by its own batch statistics).
    domain_passes: ClassVar[Literal["joint", "separate"]] = "joint"

    def __init__(self, features_dim: int, num_classes: int, num_domains: int) -> None:
        super().__init__()
        if num_domains < 1:
            raise DabinError(f"num_domains must be at least 1, got {num_domains}")
        self.features_dim = features_dim
        self.num_classes = num_classes
        self.num_domains = num_domains

    def check_domains(self, outputs: DomainOutputs) -> None:
        """Check that the step has the ``K`` domains the method was built for.

        Raises:
            DabinError: Another number of domains (a GroupDRO weight or a discriminator output per
                domain would then be misassigned).
        """
        if outputs.num_domains != self.num_domains:
            raise DabinError(f"{self.method_name} was built for {self.num_domains} training domains, "
                             f"the step has {outputs.num_domains}")

    def forward(self, outputs: DomainOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """The objective of one step and what to log."""
        raise NotImplementedError


class ERMLoss(GeneralizationLoss, name="erm"):
    """Empirical risk minimization: cross-entropy over all domains' minibatches, concatenated.

    .. math::

        L = \\frac{1}{\\sum_k B_k}\\sum_k \\sum_{i \\in k} \\mathrm{CE}(y_i, g_i),

    as DomainBed's ``ERM.update`` (``F.cross_entropy`` of ``torch.cat`` of the minibatches). With
    equal ``B_k`` this is the mean of the domains' mean losses; with unequal ones a larger
    minibatch weighs more (unlike :class:`FeatureMatchingLoss`'s mean over domains).

    Shapes: ``logits`` ``(B_k, C)``, ``labels`` ``(B_k,)``; features are not used. Objective: a
    scalar. Logs: none.

    Reference: V. Vapnik, "Statistical Learning Theory", 1998; DomainBed's ``ERM``.

    Args:
        features_dim: ``D`` (unused).
        num_classes: ``C``.
        num_domains: ``K``.
    """

    def forward(self, outputs: DomainOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """The cross-entropy over the concatenated minibatches (see the class docstring)."""
        self.check_domains(outputs)
        return F.cross_entropy(torch.cat(outputs.logits), torch.cat(outputs.labels)), {}


class FeatureMatchingLoss(GeneralizationLoss):
    """The domains' mean cross-entropy plus ``γ`` times the mean distance between domain pairs.

    DomainBed's ``AbstractMMD.update``: with ``L_k`` the mean cross-entropy of domain ``k``
    (:func:`domain_cross_entropies`) and ``d`` the subclass's :meth:`distance`,

    .. math::

        L = \\frac{1}{K}\\sum_k L_k + γ \\cdot \\frac{2}{K(K-1)} \\sum_{i<j} d(f_i, f_j),

    the penalty being 0 for ``K = 1``. Note the mean over domains, not over the concatenated batch
    (:class:`ERMLoss`): they differ when the ``B_k`` differ. The penalty is computed in at least
    float32 and outside autocast (distances of half-precision features lose the small differences
    the narrow kernels see).

    Logs: ``penalty`` (the mean pairwise distance, without ``γ``).

    Args:
        features_dim: ``D``.
        num_classes: ``C``.
        num_domains: ``K``.
        gamma: ``γ``, the penalty's weight (1: DomainBed's ``mmd_gamma``).

    Raises:
        DabinError: A negative ``gamma``.
    """

    #: DomainBed passes each domain's minibatch through the network on its own.
    domain_passes = "separate"

    def __init__(self, features_dim: int, num_classes: int, num_domains: int, *, gamma: float = 1.0) -> None:
        super().__init__(features_dim, num_classes, num_domains)
        if gamma < 0:
            raise DabinError(f"gamma must be non-negative, got {gamma}")
        self.gamma = gamma

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """``d(x, y)`` between two domains' features ``(n, D)`` and ``(m, D)``: a scalar."""
        raise NotImplementedError

    def penalty(self, features: tuple[Tensor, ...]) -> Tensor:
        """The mean of :meth:`distance` over the domain pairs ``i < j`` (0 for one domain).

        Args:
            features: ``f_k (B_k, D)`` per domain.

        Returns:
            A scalar, in at least float32.
        """
        device = features[0].device
        if torch.is_autocast_enabled(device.type):
            with torch.autocast(device_type=device.type, enabled=False):
                return self.penalty(features)
        features = tuple(full_precision(f) for f in features)
        distances = [self.distance(features[i], features[j])
                     for i in range(len(features)) for j in range(i + 1, len(features))]
        if not distances:
            return features[0].new_zeros(())
        return torch.stack(distances).mean()

    def forward(self, outputs: DomainOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """The mean cross-entropy plus ``γ`` times the penalty (see the class docstring), and ``penalty``."""
        self.check_domains(outputs)
        classification = domain_cross_entropies(outputs).mean()
        penalty = self.penalty(outputs.features)
        return classification + self.gamma * penalty, {"penalty": penalty.detach()}

    def extra_repr(self) -> str:
        """The options, for ``print(module)``."""
        return f"num_domains={self.num_domains}, gamma={self.gamma}"
