"""TransNorm's arithmetic: per-domain statistics, the channel weight α and the closed-form backward.

The layer, its buffers and its context managers are :mod:`dabin.nn.transnorm`; this module holds
the tensor maths it runs (as :mod:`dabin.nn.functional` does for BIN). Under
:func:`~dabin.nn.convert_sync_norm` each domain's statistics pool every process's rows of that
domain (:func:`group_domain_stats`, :func:`dabin.nn.group.group_moments`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dabin.nn.group import group_moments
from dabin.nn.switchable import _grad_sums, _graph_grads, _scale_shift, _scale_shift_

def _alpha(mean_s: Tensor, var_s: Tensor, mean_t: Tensor, var_t: Tensor, eps: float) -> Tensor:
    """``α_c = C (1 + d_c)^{-1} / Σ_k (1 + d_k)^{-1}`` from both domains' means and variances."""
    distance = (mean_s * torch.rsqrt(var_s + eps) - mean_t * torch.rsqrt(var_t + eps)).abs()
    prob = (1.0 + distance).reciprocal()
    return prob * (prob.numel() / prob.sum())


def _domain_stats(moments: Tensor, n_source: int, per_row: int) -> tuple[Tensor, Tensor]:
    """Each domain's ``(2, C)`` mean and biased variance from the per-``(n, c)`` moments
    ``(μ, Σ(x − μ)², Σ(x − μ))`` (law of total variance, exact: no ``E[x²] − E[x]²``)."""
    means, variances = [], []
    for rows in (moments[:, :n_source], moments[:, n_source:]):
        mean = rows[0].mean(0)
        deviation = rows[0] - mean
        # Σ_D (x − μ_D)² = Σ_n [Σ(x − μ)² + 2(μ − μ_D)·Σ(x − μ) + HW·(μ − μ_D)²] over the domain's rows.
        within = torch.addcmul(rows[1], deviation, rows[2], value=2.0).sum(0).div_(rows.shape[1] * per_row)
        means.append(mean)
        variances.append(within + deviation.square().mean(0))
    return torch.stack(means), torch.stack(variances)


def _per_row(values: Tensor, n_source: int, batch: int) -> Tensor:
    """``(2, C)`` per-domain values as ``(N, C)``: row ``i`` gets the source's if ``i < n_source``."""
    return torch.cat([values[:1].expand(n_source, -1), values[1:].expand(batch - n_source, -1)])


def _domain_sums(rows: Tensor, n_source: int, divisors: tuple[int, int] = (1, 1)) -> Tensor:
    """``(N, C)`` per-row values summed over each domain's rows and divided by ``divisors``: ``(2, C)``."""
    return torch.stack([rows[:n_source].sum(0).div_(divisors[0]), rows[n_source:].sum(0).div_(divisors[1])])


def _coefficients(mean_in: Tensor, mean_d: Tensor, var_d: Tensor, weight: Tensor | None, bias: Tensor | None,
                  gain: Tensor, n_source: int, eps: float) -> tuple[Tensor, ...]:
    """``1/√(σ²_D + ε)``, ``a_D = (1 + α)γ/√(σ²_D + ε)`` ``(2, C)``; per row ``a``, ``μ_D`` and the shift.

    ``y = a·(x − μ_in) + shift`` with ``shift = a·(μ_in − μ_D) + (1 + α)β``: centred per row, so
    no cancellation when ``|μ| ≫ σ`` in float32.
    """
    batch = mean_in.shape[0]
    rstd = torch.rsqrt(var_d + eps)
    scale_d = rstd * gain if weight is None else rstd * (gain * weight)
    scale, centre = _per_row(scale_d, n_source, batch), _per_row(mean_d, n_source, batch)
    offset = mean_in - centre
    shift = offset * scale if bias is None else torch.addcmul(gain * bias, offset, scale)
    return rstd, scale_d, scale, centre, shift


def _composite(x: Tensor, weight: Tensor | None, bias: Tensor | None, gain: Tensor, n_source: int,
               eps: float, stats: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """The training output in differentiable tensor ops, for ``torch.compile``, double backward and DDP.

    Args:
        stats: Each domain's mean and biased variance ``(2, C)`` (:func:`group_domain_stats`);
            None: those of ``x``'s own rows.
    """
    if stats is None:
        var_s, mean_s = torch.var_mean(x[:n_source], dim=(0, 2, 3), correction=0)
        var_t, mean_t = torch.var_mean(x[n_source:], dim=(0, 2, 3), correction=0)
        stats = torch.stack([mean_s, mean_t]), torch.stack([var_s, var_t])
    means, variances = stats
    scale_d = torch.rsqrt(variances + eps) * (gain if weight is None else gain * weight)
    shift_d = -means * scale_d if bias is None else torch.addcmul(gain * bias, -means, scale_d)
    scale, shift = (_per_row(t, n_source, x.shape[0])[:, :, None, None] for t in (scale_d, shift_d))
    return torch.addcmul(shift, x, scale)


class _TransNormFunction(torch.autograd.Function):
    r"""Training TransNorm as ``a·(x − μ_in) + shift`` with BatchNorm's backward per domain, in closed form.

    For a domain ``D`` of ``M`` values per channel, ``a_D = (1 + α)γ/σ_D`` and ``x̂ = (x − μ_D)/σ_D``:

    .. math::

        \frac{\partial L}{\partial x} = a_D\Big(g - \frac{1}{M}\sum_D g
            - \hat x\,\frac{1}{M}\sum_D g\,\hat x\Big),

    an affine map of ``g`` and ``x`` per ``(n, c)`` from the sums ``Σ_s g``, ``Σ_s g·(x − μ_in)``; ``α``
    is a constant (detached). Under ``create_graph`` it differentiates :func:`_composite` instead.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, centered: Tensor, mean_in: Tensor, mean_d: Tensor, var_d: Tensor,
        weight: Tensor | None, bias: Tensor | None, gain: Tensor, n_source: int, eps: float,
    ) -> Tensor:
        rstd, scale_d, scale, centre, shift = _coefficients(mean_in, mean_d, var_d, weight, bias, gain, n_source, eps)
        # The backward reads x (held anyway) rather than x − μ_in, so the output can overwrite it.
        ctx.save_for_backward(x, centre, weight, bias, gain, rstd, scale_d, scale)
        ctx.n_source, ctx.eps = n_source, eps
        ctx.mark_dirty(centered)
        return _scale_shift_(centered, scale, shift)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, centre, weight, bias, gain, rstd, scale_d, scale = ctx.saved_tensors
        needs, n_source = ctx.needs_input_grad, ctx.n_source
        if torch.is_grad_enabled():  # create_graph: a differentiable gradient
            return _graph_grads(needs, {0: x, 5: weight, 6: bias}, grad_out,
                                lambda: _composite(x, weight, bias, gain, n_source, ctx.eps))
        grads: list[Tensor | None] = [None] * len(needs)
        batch, per_row = x.shape[0], x.shape[2] * x.shape[3]
        sum_g, sum_gx = _grad_sums(grad_out, x, centre)  # Σ_s g, Σ_s g·(x − μ_D)
        if needs[0]:
            counts = (n_source * per_row, (batch - n_source) * per_row)
            mean_g, mean_gx = _domain_sums(sum_g, n_source, counts), _domain_sums(sum_gx, n_source, counts)
            coef_x = _per_row(-scale_d * rstd.square() * mean_gx, n_source, batch)  # of x − μ_D
            coef_1 = _per_row(-scale_d * mean_g, n_source, batch)
            grad_x = _scale_shift(x, coef_x, torch.addcmul(coef_1, coef_x, centre, value=-1.0))  # as SwitchNorm2d's
            grads[0] = grad_x.addcmul_(grad_out, scale[:, :, None, None])
        if weight is not None and needs[5]:
            grads[5] = gain * (rstd * _domain_sums(sum_gx, n_source)).sum(0)
        if bias is not None and needs[6]:
            grads[6] = gain * sum_g.sum(0)
        return tuple(grads)


def group_domain_stats(x: Tensor, n_source: int, group: torch.distributed.ProcessGroup) -> tuple[Tensor, Tensor, Tensor]:
    """Each domain's mean and biased variance over every process's rows of it (law of total variance).

    Every process of ``group`` calls it together; each holds ``cat([source, target])`` with both
    parts non-empty (sizes may differ between processes).

    Args:
        x: ``(N, C, H, W)``, the local batch.
        n_source: Its source rows, at the head.
        group: The processes.

    Returns:
        Means and biased variances ``(2, C)`` (source, target), differentiable across the group,
        and each domain's value count per channel ``(2,)``.
    """
    var_in, mean_in = torch.var_mean(x, dim=(2, 3), correction=0)
    source = group_moments(mean_in[:n_source], var_in[:n_source], group)
    target = group_moments(mean_in[n_source:], var_in[n_source:], group)
    counts = torch.stack([source[2], target[2]]) * (x.shape[2] * x.shape[3])
    return torch.stack([source[0], target[0]]), torch.stack([source[1], target[1]]), counts
