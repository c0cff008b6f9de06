"""MMD for domain generalization, as DomainBed: a Gaussian-kernel MMD between every pair of domains' features.

Not DAN's estimator (:class:`dabin.methods.dan.DANLoss`: unbiased, bandwidths relative to the
batch's mean distance); this is DomainBed's, with fixed kernel precisions and the biased estimate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dabin.errors import DabinError
from dabin.methods.generalization import FeatureMatchingLoss

__all__ = ["DOMAINBED_GAMMAS", "MMDLoss", "gaussian_mmd", "squared_distances"]

#: DomainBed's kernel precisions ``g`` (``AbstractMMD.gaussian_kernel``'s ``gamma``).
DOMAINBED_GAMMAS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """``‖x_i − y_j‖²`` by DomainBed's ``my_cdist``: ``‖x_i‖² + ‖y_j‖² − 2 x_i·y_j``, clamped below at 1e-30.

    The clamp keeps the rounding error of the expansion (slightly negative values where
    ``x_i = y_j``) out of the kernel.

    Args:
        x: ``(n, D)``.
        y: ``(m, D)``.

    Returns:
        ``(n, m)``.
    """
    x_norm = x.pow(2).sum(-1, keepdim=True)
    y_norm = y.pow(2).sum(-1, keepdim=True)
    return torch.addmm(y_norm.t(), x, y.t(), alpha=-2).add(x_norm).clamp_min(1e-30)


def gaussian_mmd(x: Tensor, y: Tensor, gammas: Sequence[float] = DOMAINBED_GAMMAS) -> Tensor:
    """DomainBed's ``mmd`` with ``kernel_type="gaussian"``: the biased MMD² estimate.

    .. math::

        k(a, b) = \\sum_g \\exp(-g \\lVert a - b \\rVert^2), \\qquad
        d(x, y) = \\overline{k(x, x)} + \\overline{k(y, y)} - 2\\,\\overline{k(x, y)},

    the bars being means over all ``n²``, ``m²`` and ``nm`` pairs (the diagonals included: the
    V-statistic, never negative).

    Args:
        x: ``(n, D)`` features.
        y: ``(m, D)`` features.
        gammas: The kernel precisions ``g``.

    Returns:
        A scalar.
    """
    def kernel_mean(a: Tensor, b: Tensor) -> Tensor:
        dist = squared_distances(a, b)
        return sum((torch.exp(-g * dist) for g in gammas), torch.zeros_like(dist)).mean()

    return kernel_mean(x, x) + kernel_mean(y, y) - 2 * kernel_mean(x, y)


class MMDLoss(FeatureMatchingLoss, name="mmd"):
    """DomainBed's MMD: mean cross-entropy plus ``γ`` times the mean pairwise :func:`gaussian_mmd`.

    .. math::

        L = \\frac{1}{K}\\sum_k L_k + γ \\cdot \\frac{2}{K(K-1)} \\sum_{i<j} \\widehat{\\mathrm{MMD}}^2_b(f_i, f_j),

    with ``L_k`` domain ``k``'s mean cross-entropy and the kernel ``Σ_g exp(−g ‖a − b‖²)``,
    ``g ∈ {10⁻³, …, 10³}`` (DomainBed's ``AbstractMMD`` with ``gaussian=True``). The paper it
    cites (Li et al., MMD-AAE, CVPR 2018) adds an adversarial autoencoder; DomainBed keeps only
    the MMD penalty, and so does this loss.

    Shapes: ``features`` ``(B_k, D)``, ``logits`` ``(B_k, C)``, ``labels`` ``(B_k,)``. Objective:
    a scalar. Logs: ``penalty``.

    Reference: H. Li, S. J. Pan, S. Wang, A. C. Kot, "Domain Generalization with Adversarial
    Feature Learning", CVPR 2018; DomainBed's ``MMD``.

    Args:
        features_dim: ``D``.
        num_classes: ``C``.
        num_domains: ``K``.
        gamma: ``γ``, the penalty's weight (1: DomainBed's ``mmd_gamma``).
        kernel_gammas: The kernel precisions ``g`` (DomainBed's).
    """

    def __init__(self, features_dim: int, num_classes: int, num_domains: int, *, gamma: float = 1.0,
                 kernel_gammas: Sequence[float] = DOMAINBED_GAMMAS) -> None:
        super().__init__(features_dim, num_classes, num_domains, gamma=gamma)
        if not kernel_gammas or any(g <= 0 for g in kernel_gammas):
            raise DabinError(f"kernel_gammas must be positive numbers, got {tuple(kernel_gammas)}")
        self.kernel_gammas = tuple(float(g) for g in kernel_gammas)

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """:func:`gaussian_mmd` with :attr:`kernel_gammas`."""
        return gaussian_mmd(x, y, self.kernel_gammas)
