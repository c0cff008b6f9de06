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

Across processes (``process_group``, :class:`dabin.nn.SyncBatchInstanceNorm`) only the BN branch
is shared: instance statistics belong to one sample by definition. Each process reduces its batch
to a count ``c_k``, mean ``μ_k`` and variance ``σ²_k`` as above, one ``all_gather`` exchanges
these triples, and they are pooled by the same law of total variance, now over processes:

.. math::

    \\mu^B_c = \\frac{\\sum_k c_k\\,\\mu_{kc}}{\\sum_k c_k}, \\qquad
    \\sigma^{B\\,2}_c = \\frac{\\sum_k c_k\\,\\big(\\sigma^2_{kc} + (\\mu_{kc} - \\mu^B_c)^2\\big)}{\\sum_k c_k},

which never subtracts two large sums (pooling ``Σx`` and ``Σx²`` would) and lets every process
hold a different number of samples. In the backward the input gradient of the BN branch depends
on the whole batch through ``μ^B`` and ``σ^B``, by two per-channel sums only:

.. math::

    \\frac{\\partial L}{\\partial x}\\Big|_B = \\frac{\\gamma\\rho}{\\sigma^B}\\Big(g
        - \\frac{1}{M}\\sum g - \\hat x^B\\,\\frac{1}{M}\\sum g\\,\\hat x^B\\Big),

sums over the ``M`` values of the channel on all processes: one ``all_reduce`` makes ``Σ g`` and
``Σ g·x̂_B`` global. The gradients of ``γ``, ``β`` and ``ρ`` stay sums over the local batch, which
DDP reduces with every other parameter gradient. The synchronized path is eager only.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd.function import once_differentiable

from dabin.nn import compiled

if TYPE_CHECKING or dist.is_available():  # at run time too, for tools that read the hints
    from torch.distributed import ProcessGroup

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
                          count: int | Tensor, momentum: float) -> None:
    """BatchNorm's running-statistics update: an exponential average of the batch mean and of the
    unbiased batch variance (``count`` values per channel, a 0-d tensor when synchronized)."""
    if running_mean is not None and running_var is not None:
        running_mean.lerp_(mean_b.to(running_mean.dtype), momentum)
        running_var.lerp_((var_b * (count / (count - 1))).to(running_var.dtype), momentum)


def _sync_group(process_group: ProcessGroup | None) -> ProcessGroup | None:
    """``process_group`` if statistics must be exchanged over it (more than one process), else None."""
    if process_group is None or not (dist.is_available() and dist.is_initialized()):
        return None
    return process_group if dist.get_world_size(process_group) > 1 else None


def _global_batch_stats(mean_b: Tensor, var_b: Tensor, count: int,
                        group: ProcessGroup) -> tuple[Tensor, Tensor, Tensor]:
    """Pool every process's ``(count, mean, variance)`` per channel (module docstring).

    Returns:
        The group's batch mean and biased variance ``(C,)`` and its value count (0-d tensor).
    """
    channels = mean_b.numel()
    # One collective for all three: (1 + 2C) values per process. The count travels in the
    # statistics' dtype; float32 holds counts exactly up to 2^24, and beyond that its relative
    # error (6e-8) only touches the pooling weights.
    local = torch.cat([mean_b.new_full((1,), float(count)), mean_b, var_b])
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(gathered, local, group=group)
    stats = torch.stack(gathered)  # (K, 1 + 2C)
    counts, means, variances = stats[:, :1], stats[:, 1:1 + channels], stats[:, 1 + channels:]
    total = counts.sum()
    weights = counts / total
    mean = (weights * means).sum(0)
    var = (weights * (variances + (means - mean).square())).sum(0)
    return mean, var, total


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
    group: ProcessGroup | None = None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Eq. (3) as one affine map per ``(n, c)``; returns ``y`` and what the backward needs.

    With ``group`` (batch statistics only) the BN branch uses the statistics of the whole group,
    and the group's value count is appended to the returned statistics for the backward.
    """
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

    count: int | Tensor = n * spatial
    if use_batch_stats:
        # Synchronized, the group holds at least one value per process, so more than one in all.
        if count <= (1 if group is None else 0):
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
        # Law of total variance: batch statistics follow from the instance ones, no second pass.
        mean_b = mean_i.mean(0)
        var_b = var_i.mean(0).add_((mean_i - mean_b).square_().mean(0))
        if group is not None:
            mean_b, var_b, count = _global_batch_stats(mean_b, var_b, n * spatial, group)
        _update_running_stats(running_mean, running_var, mean_b, var_b, count, momentum)
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
    if group is not None:
        assert isinstance(count, Tensor)
        return y, (mean_i, rstd_i, mean_b, rstd_b, count)
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
        return (*_backward(ctx, grad_out, x, weight, gate, mean_i, rstd_i, mean_b, rstd_b),
                None, None, None, None, None)


class _SyncBatchInstanceNorm(torch.autograd.Function):
    """:class:`_BatchInstanceNorm` in training mode with the BN branch's statistics shared by ``group``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        weight: Tensor | None,
        bias: Tensor | None,
        gate: Tensor,
        running_mean: Tensor | None,
        running_var: Tensor | None,
        momentum: float,
        eps: float,
        group: ProcessGroup,
    ) -> Tensor:
        y, stats = _forward(x, weight, bias, gate, running_mean, running_var, True, momentum, eps, group)
        ctx.save_for_backward(x, weight, gate, *stats)
        ctx.use_batch_stats = True
        ctx.has_bias = bias is not None
        ctx.group = group
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, weight, gate, mean_i, rstd_i, mean_b, rstd_b, count = ctx.saved_tensors
        return (*_backward(ctx, grad_out, x, weight, gate, mean_i, rstd_i, mean_b, rstd_b, ctx.group, count),
                None, None, None, None, None, None)


def _backward(
    ctx: Any,
    grad_out: Tensor,
    x: Tensor,
    weight: Tensor | None,
    gate: Tensor,
    mean_i: Tensor,
    rstd_i: Tensor,
    mean_b: Tensor,
    rstd_b: Tensor,
    group: ProcessGroup | None = None,
    count: Tensor | None = None,
) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """The eager analytic backward: gradients of ``x``, ``γ``, ``β`` and ``ρ``.

    With ``group`` the BN branch's two batch sums are reduced over it and ``count`` is the
    group's value count; the parameter gradients stay local (module docstring).
    """
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
            sum_g, sum_gx_b = s1.sum(0), t_b.sum(0)  # Σ g, Σ g·x̂_B over the batch
            if group is not None:
                # μ^B and σ^B tie every value of the group's batch to every other: the two
                # sums must cover all of it. One collective carries both.
                sums = torch.stack([sum_g, sum_gx_b])
                dist.all_reduce(sums, group=group)
                sum_g, sum_gx_b = sums[0], sums[1]
            batch_count = n * spatial if count is None else count
            c_b = k_b * rstd_b.square() * sum_gx_b / batch_count
            q = q - c_b
            r = r + c_b * mean_b - k_b * rstd_b * sum_g / batch_count
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
    return grad_x, grad_weight, grad_bias, grad_gate


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
    process_group: ProcessGroup | None = None,
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
        process_group: Share the BN branch's batch statistics (and its gradient's batch sums)
            over this ``torch.distributed`` group, as :class:`torch.nn.SyncBatchNorm` does; the
            IN branch stays per sample. ``None``: no synchronization. Used only with
            ``use_batch_stats`` while ``torch.distributed`` is initialized and the group has more
            than one process; every process of the group must then call the layer, in the same
            order (each with a non-empty batch of any size).

    Returns:
        ``y`` with the shape, dtype and memory format of ``x``.
    """
    group = _sync_group(process_group) if process_group is not None and use_batch_stats else None
    if group is not None:
        return _synced(x, weight, bias, gate, running_mean, running_var, momentum, eps, group)
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


def _synced(x: Tensor, weight: Tensor | None, bias: Tensor | None, gate: Tensor, running_mean: Tensor | None,
            running_var: Tensor | None, momentum: float, eps: float, group: ProcessGroup) -> Tensor:
    """:func:`batch_instance_norm` with batch statistics shared over ``group`` (eager path)."""
    if torch.is_autocast_enabled(x.device.type):
        # Statistics are computed in float32 inside; autocast must not recast them.
        with torch.autocast(device_type=x.device.type, enabled=False):
            return _synced(x, weight, bias, gate, running_mean, running_var, momentum, eps, group)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias, gate)):
        return _SyncBatchInstanceNorm.apply(x, weight, bias, gate, running_mean, running_var, momentum, eps, group)
    return _forward(x, weight, bias, gate, running_mean, running_var, True, momentum, eps, group)[0]
