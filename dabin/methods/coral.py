"""Deep CORAL for domain generalization, as DomainBed: match every pair of domains' feature means and covariances."""

from __future__ import annotations

from torch import Tensor

from dabin.errors import DabinError
from dabin.methods.generalization import FeatureMatchingLoss

__all__ = ["CORALLoss", "coral_distance"]


def coral_distance(x: Tensor, y: Tensor) -> Tensor:
    """DomainBed's ``mean_cov`` distance: squared differences of the means and of the covariances.

    With ``μ`` the feature mean and ``Σ = (f − μ)ᵀ(f − μ) / (n − 1)`` the unbiased covariance ``(D, D)``,

    .. math::

        d(x, y) = \\frac{1}{D}\\lVert μ_x − μ_y \\rVert^2 + \\frac{1}{D^2}\\lVert Σ_x − Σ_y \\rVert_F^2.

    Args:
        x: ``(n, D)`` features, ``n ≥ 2``.
        y: ``(m, D)`` features, ``m ≥ 2``.

    Returns:
        A scalar.

    Raises:
        DabinError: A domain with fewer than 2 rows (no unbiased covariance).
    """
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise DabinError(f"CORAL's covariance needs at least 2 samples per domain, got {x.shape[0]} and {y.shape[0]}")
    mean_x = x.mean(0, keepdim=True)
    mean_y = y.mean(0, keepdim=True)
    cent_x = x - mean_x
    cent_y = y - mean_y
    cova_x = cent_x.t() @ cent_x / (x.shape[0] - 1)
    cova_y = cent_y.t() @ cent_y / (y.shape[0] - 1)
    return (mean_x - mean_y).pow(2).mean() + (cova_x - cova_y).pow(2).mean()


class CORALLoss(FeatureMatchingLoss, name="coral"):
    """DomainBed's CORAL: mean cross-entropy plus ``γ`` times the mean pairwise :func:`coral_distance`.

    .. math::

        L = \\frac{1}{K}\\sum_k L_k + γ \\cdot \\frac{2}{K(K-1)} \\sum_{i<j}
            \\Big(\\frac{1}{D}\\lVert μ_i − μ_j \\rVert^2 + \\frac{1}{D^2}\\lVert Σ_i − Σ_j \\rVert_F^2\\Big),

    with ``L_k`` domain ``k``'s mean cross-entropy and ``μ_k``, ``Σ_k`` its features' mean and
    unbiased (``n − 1``) covariance (DomainBed's ``AbstractMMD`` with ``gaussian=False``:
    ``mmd``'s ``mean_cov`` branch, and ``update``).

    Against the paper: Deep CORAL's loss is ``(1 / 4D²) ‖Σ_s − Σ_t‖_F²`` between two domains,
    without the mean term; DomainBed (followed here) adds the means' squared difference over ``D``
    and divides the covariances' by ``D²`` instead of ``4D²`` (a factor 4 on the covariance term,
    taken up by ``γ``).

    Shapes: ``features`` ``(B_k, D)`` with ``B_k ≥ 2``, ``logits`` ``(B_k, C)``, ``labels``
    ``(B_k,)``. Objective: a scalar. Logs: ``penalty``.

    Reference: B. Sun, K. Saenko, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation",
    ECCV workshops 2016; DomainBed's ``CORAL``.

    Args:
        features_dim: ``D``.
        num_classes: ``C``.
        num_domains: ``K``.
        gamma: ``γ`` (1: DomainBed's ``mmd_gamma``).
    """

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """:func:`coral_distance`."""
        return coral_distance(x, y)
