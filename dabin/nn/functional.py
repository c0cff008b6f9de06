"""Batch-Instance Normalization as one fused autograd function.

The authors' formulation runs two full normalizations (a batch norm over ``(N, *S)`` and an
instance norm over ``S``) and mixes them, which reads and writes the activation several times.
Here both sets of statistics come from one reduction pass, because the batch statistics of a
channel follow from its instance statistics (law of total variance):

.. math::

    \\mu^B_c = \\frac{1}{N}\\sum_n \\mu^I_{nc}, \\qquad
    \\sigma^{B\\,2}_c = \\frac{1}{N}\\sum_n \\sigma^{I\\,2}_{nc}
                     + \\frac{1}{N}\\sum_n (\\mu^I_{nc} - \\mu^B_c)^2 ,

and eq. (3) of Nam & Kim (2018) is then an affine map per ``(n, c)``:

.. math::

    y = \\gamma\\,(\\rho\\,\\hat x^B + (1-\\rho)\\,\\hat x^I) + \\beta = a_{nc}\\,x + b_{nc}.

The backward pass is analytic too: two per-``(n, c)`` sums, ``Σ g`` and ``Σ g·x``, give every
parameter gradient (the gate's is eq. (5)) and the input gradient ``dx = g·p + x·q + r`` with
per-``(n, c)`` coefficients. Statistics are accumulated in float32 whatever the input dtype, so
the layer is safe under autocast (bf16/fp16).

The instance variance is computed as ``E[x²] − E[x]²`` from a sum and a vector norm: each
streams ``x`` once at memory speed, where ``torch.var_mean``'s Welford loop is 10–30× slower on
CPU. The cancellation this form risks costs about ``eps_float32 · (1 + μ²/σ²)`` relative error in
σ², far below the layer's ``eps`` for activations of a network; the variance is clipped at 0 so
rounding cannot make a constant map's variance negative.

For contiguous float32 CPU input the same arithmetic runs as three ``torch.compile``-d kernels
(:mod:`dabin.nn.compiled`), which fuse the dozens of small per-``(n, c)`` operations around the
memory passes; this module's eager code is the path for every other input and the fallback.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from dabin.nn import compiled

__all__ = ["batch_instance_norm"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _compute(t: Tensor) -> Tensor:
    """``t`` in the dtype arithmetic happens in: float32 for half types, else unchanged."""
    return t.float() if t.dtype in _LOW_PRECISION else t


def _per_instance(t: Tensor, ndim: int) -> Tensor:
    """View an ``(N, C)`` tensor so that it broadcasts against an ``(N, C, *S)`` input."""
    return t.reshape(t.shape + (1,) * (ndim - 2))


def _sum_of_products(g: Tensor, x: Tensor) -> Tensor:
    """``Σ_s g·x`` per ``(n, c)`` without materialising ``g·x`` when the layout allows it."""
    n, c = x.shape[:2]
    if not (x.is_contiguous() and g.is_contiguous()):
        return (g * x).sum(dim=tuple(range(2, x.dim())))
    spatial = x[0, 0].numel()
    # (1×L)·(L×1) with the right operand a transposed row: BLAS streams both without a copy. It
    # beats linalg.vecdot (a multiply then a sum) at every ResNet shape measured, 2×2 to 56×56.
    rows = (n * c, 1, spatial)
    return torch.bmm(g.reshape(rows), x.reshape(rows).transpose(1, 2)).reshape(n, c)


@functools.lru_cache(maxsize=64)
def _zeros_ones(size: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    # Read-only constants for _affine; cached because allocating them costs as much as using them.
    return torch.zeros(size, dtype=dtype, device=device), torch.ones(size, dtype=dtype, device=device)


def _affine(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """``x·scale + shift`` with per-``(n, c)`` coefficients of shape ``(N, C)``.

    For contiguous input this runs BatchNorm's eval kernel on the ``(1, N·C, *S)`` view with
    zero mean, unit variance and ``eps = 0`` (so its ``1/sqrt(var + eps)`` is exactly 1): that
    kernel is the fastest fused multiply-add PyTorch has for per-channel coefficients.
    """
    n, c = x.shape[:2]
    if x.is_contiguous() and x.dim() > 2:
        zeros, ones = _zeros_ones(n * c, x.dtype, x.device)
        out = torch.batch_norm(
            x.reshape(1, n * c, -1), scale.reshape(-1), shift.reshape(-1), zeros, ones, False, 0.0, 0.0, False
        )
        # detach(): a plain tensor rather than a view of the flat one, so autograd lets callers
        # modify the layer's output in place (e.g. ReLU(inplace=True)).
        return out.reshape(x.shape).detach()
    nd = x.dim()
    return torch.addcmul(_per_instance(shift, nd), x, _per_instance(scale, nd))


def _update_running_stats(running_mean: Tensor | None, running_var: Tensor | None, mean_b: Tensor, var_b: Tensor,
                          count: int, momentum: float) -> None:
    """BatchNorm's running-statistics update: an exponential average of the batch mean and of the
    unbiased batch variance (``count`` values per channel)."""
    if running_mean is not None and running_var is not None:
        running_mean.lerp_(mean_b.to(running_mean.dtype), momentum)
        running_var.lerp_((var_b * (count / (count - 1))).to(running_var.dtype), momentum)


def _forward(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    gate: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    use_batch_stats: bool,
    momentum: float,
    eps: float,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Eq. (3) as one affine map per ``(n, c)``; returns ``y`` and what the backward needs."""
    xf = _compute(x)
    n, spatial = xf.shape[0], math.prod(xf.shape[2:])
    dims = tuple(range(2, xf.dim()))
    # Instance statistics: var = E[x²] − E[x]², from a sum and a vector norm (see module doc).
    if spatial == 1:
        mean_i = xf.reshape(xf.shape[:2])
        var_i = rstd_i = torch.zeros_like(mean_i)  # eq. (3)'s IN term is 0 on a 1x1 map
    else:
        mean_i = xf.sum(dim=dims).mul_(1.0 / spatial)
        var_i = torch.linalg.vector_norm(xf, dim=dims).square_().mul_(1.0 / spatial)
        var_i = var_i.addcmul_(mean_i, mean_i, value=-1.0).clamp_min_(0.0)
        rstd_i = var_i.add(eps).rsqrt_()

    if use_batch_stats:
        if n * spatial <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
        # Law of total variance: batch statistics follow from the instance ones, no second pass.
        mean_b = mean_i.mean(0)
        var_b = var_i.mean(0).add_((mean_i - mean_b).square_().mean(0))
        _update_running_stats(running_mean, running_var, mean_b, var_b, n * spatial, momentum)
    else:
        assert running_mean is not None and running_var is not None
        mean_b, var_b = _compute(running_mean), _compute(running_var)
    rstd_b = var_b.add(eps).rsqrt_()

    # y = x·(a_c + t_nc) + (β_c − a_c·μ^B_c − t_nc·μ^I_nc),  a = γρ/σ^B,  t = γ(1−ρ)/σ^I
    rho = _compute(gate)
    a = rho * rstd_b
    k_i = 1.0 - rho
    if weight is not None:
        gamma = _compute(weight)
        a.mul_(gamma)
        k_i.mul_(gamma)
    t = rstd_i * k_i
    b0 = a * mean_b
    b0 = _compute(bias) - b0 if bias is not None else b0.neg_()
    y = _affine(xf, t + a, torch.addcmul(b0, t, mean_i, value=-1.0))
    if x.dtype in _LOW_PRECISION:
        y = y.to(x.dtype)
    return y, (mean_i, rstd_i, mean_b, rstd_b)


def _forward_compiled(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    gate: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    use_batch_stats: bool,
    momentum: float,
    eps: float,
) -> tuple[Tensor, tuple[Tensor, ...]] | None:
    """:func:`_forward` through the compiled kernels (:mod:`dabin.nn.compiled`); None if unavailable."""
    if not (compiled.eligible(x) and gate.dtype == torch.float32) or (not use_batch_stats and running_mean is None):
        return None
    channels = x.shape[1]
    gamma = weight if weight is not None else torch.ones(channels, device=x.device)
    beta = bias if bias is not None else torch.zeros(channels, device=x.device)
    if not use_batch_stats:
        assert running_mean is not None and running_var is not None
        mean_b = running_mean.float()
        out = compiled.kernel("eval", x, gamma, beta, gate, mean_b, running_var.float(), eps)
        if out is None:
            return None
        y, mean_i, rstd_i, rstd_b = out
        return y.detach(), (mean_i, rstd_i, mean_b, rstd_b)
    out = compiled.kernel("train", x, gamma, beta, gate, eps)
    if out is None:
        return None
    y, mean_i, rstd_i, mean_b, rstd_b, var_b = out
    _update_running_stats(running_mean, running_var, mean_b, var_b, x.shape[0] * x[0, 0].numel(), momentum)
    # detach(): the kernel's output is a reshaped view; a plain tensor lets callers modify the
    # layer's output in place (ReLU(inplace=True)), as with the eager path.
    return y.detach(), (mean_i, rstd_i, mean_b, rstd_b)


def _forward_fastest(*args: Any) -> tuple[Tensor, tuple[Tensor, ...], bool]:
    """The compiled forward where it applies, else the eager one; the flag says which ran."""
    result = _forward_compiled(*args)
    if result is not None:
        return result[0], result[1], True
    y, stats = _forward(*args)
    return y, stats, False


class _BatchInstanceNorm(torch.autograd.Function):
    """Fused eq. (3) with its analytic gradient; see the module docstring."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        gate: Tensor,
        running_mean: Tensor | None,
        running_var: Tensor | None,
        use_batch_stats: bool,
        momentum: float,
        eps: float,
    ) -> Tensor:
        y, stats, was_compiled = _forward_fastest(x, weight, bias, gate, running_mean, running_var,
                                                  use_batch_stats, momentum, eps)
        ctx.save_for_backward(x, weight, gate, *stats)
        ctx.use_batch_stats = use_batch_stats
        # The compiled backward covers training mode (batch statistics), the common case.
        ctx.compiled = was_compiled and use_batch_stats
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, weight, gate, mean_i, rstd_i, mean_b, rstd_b = ctx.saved_tensors
        if ctx.compiled and compiled.compiled_enabled():
            gamma_c = weight if weight is not None else torch.ones_like(rstd_b)
            grads = compiled.kernel("backward", x, grad_out.contiguous(), gamma_c, gate, mean_i, rstd_i, mean_b, rstd_b)
            if grads is not None:
                grad_x, grad_weight, grad_bias, grad_gate = grads
                needs = ctx.needs_input_grad
                return (grad_x if needs[0] else None, grad_weight if weight is not None and needs[1] else None,
                        grad_bias if ctx.has_bias and needs[2] else None, grad_gate if needs[3] else None,
                        None, None, None, None, None)
        dtype = x.dtype
        xf = _compute(x)
        g = _compute(grad_out)
        n = xf.shape[0]
        spatial = math.prod(xf.shape[2:])
        dims = tuple(range(2, xf.dim()))

        s1 = g.sum(dim=dims) if dims else g  # Σ_s g           (N, C)
        s2 = _sum_of_products(g, xf) if dims else g * xf  # Σ_s g·x
        t_i = rstd_i * (s2 - mean_i * s1)  # Σ_s g·x̂_I
        t_b = rstd_b * (s2 - mean_b * s1)  # Σ_s g·x̂_B

        gamma = _compute(weight) if weight is not None else torch.ones_like(rstd_b)
        rho = _compute(gate)
        k_b, k_i = gamma * rho, gamma * (1.0 - rho)

        grad_x = grad_weight = grad_bias = grad_gate = None
        if ctx.needs_input_grad[0]:
            p = k_b * rstd_b + k_i * rstd_i
            c_i = k_i * rstd_i.square() * t_i / spatial
            q = -c_i
            r = c_i * mean_i - k_i * rstd_i * s1 / spatial
            if ctx.use_batch_stats:
                count = n * spatial
                c_b = k_b * rstd_b.square() * t_b.sum(0) / count
                q = q - c_b
                r = r + c_b * mean_b - k_b * rstd_b * s1.sum(0) / count
            grad_x = _affine(xf, q, r)
            grad_x.addcmul_(g, _per_instance(p, xf.dim()))
            grad_x = grad_x.to(dtype) if dtype in _LOW_PRECISION else grad_x
        if weight is not None and ctx.needs_input_grad[1]:
            grad_weight = (rho * t_b + (1.0 - rho) * t_i).sum(0).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = s1.sum(0).to(weight.dtype if weight is not None else s1.dtype)
        if ctx.needs_input_grad[3]:
            # eq. (5): dL/dρ_c = γ_c Σ_{n,s} (x̂_B − x̂_I) dL/dy
            grad_gate = (gamma * (t_b - t_i).sum(0)).to(gate.dtype)
        return grad_x, grad_weight, grad_bias, grad_gate, None, None, None, None, None


def batch_instance_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    gate: Tensor,
    use_batch_stats: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch-Instance Normalization, eq. (3) of Nam & Kim (2018).

    .. math::

        y = \\left(\\rho\\,\\hat x^{(B)} + (1-\\rho)\\,\\hat x^{(I)}\\right)\\gamma + \\beta

    Args:
        x: Input of shape ``(N, C, *S)`` (``S`` may be empty).
        running_mean: Running mean ``(C,)``, updated in place when ``use_batch_stats`` and given.
        running_var: Running (unbiased) variance ``(C,)``, likewise.
        weight: ``γ`` of shape ``(C,)`` or ``None`` (1).
        bias: ``β`` of shape ``(C,)`` or ``None`` (0).
        gate: ``ρ`` of shape ``(C,)``; values outside [0, 1] are used as given (clamping is the
            optimizer step's job, eq. (4)).
        use_batch_stats: Normalize the BN branch with batch statistics (training) rather than
            the running ones. The IN branch always uses per-instance statistics.
        momentum: Running-statistics update factor, as in :class:`torch.nn.BatchNorm2d`.
        eps: Added to both variances inside the square root.

    Returns:
        ``y`` with the shape, dtype and memory format of ``x``.
    """
    args = (x, weight, bias, gate, running_mean, running_var, use_batch_stats, momentum, eps)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, bias, gate)
    )
    if torch.is_autocast_enabled(x.device.type):
        # Statistics are computed in float32 inside; autocast must not recast them.
        with torch.autocast(device_type=x.device.type, enabled=False):
            return _BatchInstanceNorm.apply(*args) if needs_grad else _forward_fastest(*args)[0]
    # Inference skips autograd's bookkeeping: it costs as much as the arithmetic on small maps.
    return _BatchInstanceNorm.apply(*args) if needs_grad else _forward_fastest(*args)[0]
