"""DAN (Long et al., ICML 2015): multi-kernel maximum mean discrepancy between the domains' features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dabin.errors import DabinError
from dabin.methods.base import AdaptationLoss, StepOutputs

__all__ = ["DANLoss"]


class DANLoss(AdaptationLoss, name="dan"):
    """Multi-kernel MMD² between source and target features (no parameters, no gradient reversal).

    With ``X = [f_s; f_t]`` the ``(n, D)`` features (``n = B_s + B_t``), ``δ_ij = ‖x_i − x_j‖²``,
    the bandwidth ``σ² = (1/n²) Σ_ij δ_ij`` (a constant: detached, the mean over all pairs including
    the diagonal, as the Transfer-Learning-Library's ``GaussianKernel``) and the kernel

    .. math::

        k(x_i, x_j) = \\sum_u \\exp\\Big(-\\frac{δ_{ij}}{2 α_u σ^2}\\Big),
        \\qquad α_u \\in \\{2^{-3}, …, 2^{1}\\},

    the loss is ``trade_off`` times the unbiased quadratic-time estimate of MMD² (Gretton et al.,
    "A Kernel Two-Sample Test", JMLR 2012):

    .. math::

        \\widehat{\\mathrm{MMD}}^2_u = \\frac{1}{B_s(B_s-1)}\\sum_{i \\ne i' \\in S} k(s_i, s_{i'})
            + \\frac{1}{B_t(B_t-1)}\\sum_{j \\ne j' \\in T} k(t_j, t_{j'})
            - \\frac{2}{B_s B_t}\\sum_{i \\in S}\\sum_{j \\in T} k(s_i, t_j).

    Estimator: DAN proposes the linear-time unbiased estimate, the
    Transfer-Learning-Library's default. At a few dozen samples per domain the quadratic estimate
    costs nothing, uses every pair (lower variance for the same expectation) and allows
    ``B_s ≠ B_t``. Being unbiased, it can be slightly negative when the domains match; the library's
    quadratic variant adds a constant ``2/(n−1)`` to hide that, which changes no gradient and is
    left out here.

    Kernel weights: the kernels are summed (``β_u = 1``), as the Transfer-Learning-Library does
    with ``trade_off = 1``; DAN constrains ``Σ β_u = 1`` and learns ``β`` by a quadratic program,
    not done here (uniform ``β_u = 1/5`` is this loss divided by 5).

    Shapes: ``features_s (B_s, D)``, ``features_t (B_t, D)`` with ``B_s, B_t ≥ 2``. Loss: a scalar.
    Logs: ``mmd`` (the estimate, without ``trade_off``).

    Reference: M. Long, Y. Cao, J. Wang, M. I. Jordan, "Learning Transferable Features with Deep
    Adaptation Networks", ICML 2015.

    Args:
        features_dim: ``D``.
        num_classes: ``C`` (unused).
        kernel_mults: ``α_u``, bandwidth multipliers of ``σ²`` (``2^k``, ``k = −3 … 1``: the
            Transfer-Learning-Library's DAN example).
        trade_off: Weight of the loss (1, the library's default).
    """

    uses_target_logits = False

    def __init__(self, features_dim: int, num_classes: int, *,
                 kernel_mults: Sequence[float] = (0.125, 0.25, 0.5, 1.0, 2.0), trade_off: float = 1.0) -> None:
        super().__init__(features_dim, num_classes)
        if not kernel_mults or any(m <= 0 for m in kernel_mults):
            raise DabinError(f"kernel_mults must be positive numbers, got {tuple(kernel_mults)}")
        self.kernel_mults = tuple(float(m) for m in kernel_mults)
        self.trade_off = trade_off

    def forward(self, outputs: StepOutputs) -> tuple[Tensor, dict[str, Tensor | float]]:
        """``trade_off`` times the multi-kernel MMD² estimate (see the class docstring) and ``mmd``."""
        n_source, n_target = outputs.features_s.shape[0], outputs.features_t.shape[0]
        if n_source < 2 or n_target < 2:
            raise DabinError(f"DAN's unbiased MMD needs at least 2 samples per domain, got {n_source} and {n_target}")
        features = torch.cat([outputs.features_s, outputs.features_t]).float()
        sq_dist = (features.unsqueeze(0) - features.unsqueeze(1)).pow(2).sum(2)
        bandwidth = sq_dist.detach().mean().clamp_min(1e-12)
        kernel = sum(torch.exp(-sq_dist / (2.0 * mult * bandwidth)) for mult in self.kernel_mults)
        assert isinstance(kernel, Tensor)
        k_ss = kernel[:n_source, :n_source]
        k_tt = kernel[n_source:, n_source:]
        k_st = kernel[:n_source, n_source:]
        mmd = ((k_ss.sum() - k_ss.diagonal().sum()) / (n_source * (n_source - 1))
               + (k_tt.sum() - k_tt.diagonal().sum()) / (n_target * (n_target - 1))
               - 2.0 * k_st.sum() / (n_source * n_target))
        return self.trade_off * mmd, {"mmd": mmd.detach()}
