"""GroupDRO (Sagawa et al., ICLR 2020) with the training domains as groups, as DomainBed."""

from __future__ import annotations

import torch
from torch import Tensor

from dabin.errors import DabinError
from dabin.methods.generalization import DomainOutputs, GeneralizationLoss, domain_cross_entropies

__all__ = ["GroupDROLoss"]


class GroupDROLoss(GeneralizationLoss, name="group_dro"):
    """The domains' cross-entropies weighted by an exponentiated-gradient distribution ``q`` over them.

    With ``L_k`` domain ``k``'s mean cross-entropy, each training step first updates ``q`` and then
    uses it (DomainBed's ``GroupDRO.update``, the order of Sagawa et al.'s Algorithm 1):

    .. math::

        q_k \\leftarrow q_k \\exp(η\\, L_k), \\qquad q \\leftarrow q / \\textstyle\\sum_k q_k, \\qquad
        L = \\sum_k q_k L_k,

    ``L_k`` entering the update as a constant (``losses[m].data``) and ``q`` being no function of the
    parameters, so the gradient is ``Σ_k q_k ∇L_k``: the worst domains weigh most. ``q`` starts at
    ones (DomainBed's: the first normalization makes it a distribution) and is a buffer, so a
    checkpoint keeps it and a resumed run continues it.

    Only in training mode is ``q`` updated (a DomainBed ``update`` is always a training step); in
    evaluation mode the objective uses the current ``q`` unchanged, so a validation pass does not
    move it. With several processes each keeps its own ``q`` from its own minibatches (DomainBed
    trains on one); they are not synchronized.

    Against the paper: Sagawa et al.'s groups are (class, attribute) pairs with a minibatch drawn
    over all groups and ``L_k`` the group's loss within it; DomainBed (followed here) takes the
    training domains as the groups, one minibatch each. Sagawa et al. also add group adjustments
    and strong ℓ2 regularization, neither here.

    Shapes: ``logits`` ``(B_k, C)``, ``labels`` ``(B_k,)``; features are not used. Objective: a
    scalar. Logs: ``q_k``, the weight of domain ``k`` after this step's update, for each ``k``.

    Reference: S. Sagawa, P. W. Koh, T. B. Hashimoto, P. Liang, "Distributionally Robust Neural
    Networks for Group Shifts: On the Importance of Regularization for Worst-Case Generalization",
    ICLR 2020; DomainBed's ``GroupDRO``.

    Args:
        features_dim: ``D`` (unused).
        num_classes: ``C``.
        num_domains: ``K``, the length of ``q``.
        eta: ``η``, the step size of the update (1e-2: DomainBed's ``groupdro_eta``).

    Raises:
        DabinError: A negative ``eta``.
    """

    #: DomainBed passes each domain's minibatch through the network on its own.
    domain_passes = "separate"

    q: Tensor

    def __init__(self, features_dim: int, num_classes: int, num_domains: int, *, eta: float = 1e-2) -> None:
        super().__init__(features_dim, num_classes, num_domains)
        if eta < 0:
            raise DabinError(f"eta must be non-negative, got {eta}")
        self.eta = eta
        self.register_buffer("q", torch.ones(num_domains))

    def forward(self, outputs: DomainOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """``Σ_k q_k L_k`` after the update of ``q`` (see the class docstring), and ``q_k``."""
        self.check_domains(outputs)
        losses = domain_cross_entropies(outputs)
        if self.training:
            with torch.no_grad():
                self.q.mul_(torch.exp(self.eta * losses.detach().to(self.q.dtype)))
                self.q.div_(self.q.sum())
        # A copy: the graph keeps these weights even if q is updated again before backward.
        weights = self.q.detach().clone()
        objective = (losses * weights.to(losses.dtype)).sum()
        return objective, {f"q_{k}": weights[k] for k in range(self.num_domains)}

    def extra_repr(self) -> str:
        """The options, for ``print(module)``."""
        return f"num_domains={self.num_domains}, eta={self.eta}"
