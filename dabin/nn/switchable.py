"""Switchable Normalization (Luo, Ren, Peng, Zhang & Li, ICLR 2019).

"Differentiable Learning-to-Normalize via Switchable Normalization", arXiv:1806.10779. SN
normalizes every ``(n, c)`` map with a learned convex combination of the statistics of three
normalizers, Instance (IN), Layer (LN) and Batch Normalization (BN):

.. math::

    \\hat h_{ncij} = \\gamma_c\\,\\frac{h_{ncij} - \\sum_{k} w_k\\,\\mu_k}
                     {\\sqrt{\\sum_{k} w'_k\\,\\sigma^2_k + \\epsilon}} + \\beta_c,
    \\qquad
    w_k = \\frac{e^{\\lambda_k}}{\\sum_{z} e^{\\lambda_z}},\\quad
    w'_k = \\frac{e^{\\lambda'_k}}{\\sum_{z} e^{\\lambda'_z}},\\quad k, z \\in \\{\\mathrm{in}, \\mathrm{ln}, \\mathrm{bn}\\},

with separate control parameters ``λ`` (``mean_weight``) and ``λ'`` (``var_weight``) for the
means and the variances. LN's and BN's statistics follow from IN's, so the IN moments of each
map (a mean and a centred sum of squares over the spatial axes) give all three:

.. math::

    \\mu_{\\mathrm{ln}} = \\frac1C \\sum_c \\mu_{\\mathrm{in}},\\quad
    \\sigma^2_{\\mathrm{ln}} = \\frac1C \\sum_c (\\sigma^2_{\\mathrm{in}} + \\mu^2_{\\mathrm{in}}) - \\mu^2_{\\mathrm{ln}},\\quad
    \\mu_{\\mathrm{bn}} = \\frac1N \\sum_n \\mu_{\\mathrm{in}},\\quad
    \\sigma^2_{\\mathrm{bn}} = \\frac1N \\sum_n (\\sigma^2_{\\mathrm{in}} + \\mu^2_{\\mathrm{in}}) - \\mu^2_{\\mathrm{bn}}.

This module follows the authors' code, ``devkit/ops/switchable_norm.py`` (``SwitchNorm2d``) of
github.com/switchablenorms/Switchable-Normalization at commit 5472286, where it differs from the
paper; :class:`SwitchNorm2d` lists the differences.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from dabin.nn.functional import _affine, _sum_of_products, _zeros_ones
from dabin.nn.group import GroupSynced, group_moments

__all__ = ["SWITCH_ORDER", "SwitchNorm2d"]

#: The normalizer each entry of ``mean_weight`` / ``var_weight`` weighs (the official index order).
SWITCH_ORDER: tuple[str, str, str] = ("in", "ln", "bn")

_LOW_PRECISION = (torch.float16, torch.bfloat16)
# Up to this many values per map a multiply then an add beat BatchNorm's kernel (CPU, measured at 7x7-28x28).
_SMALL_MAP = 256
# Official (1, C, 1, 1) parameters and (1, C, 1) buffers, loaded into BatchNorm's (C,) ones.
_OFFICIAL_SHAPED = ("weight", "bias", "running_mean", "running_var")


class SwitchNorm2d(nn.BatchNorm2d, GroupSynced):
    """Switchable Normalization over ``(N, C, H, W)`` input, as the authors' ``SwitchNorm2d``.

    .. math::

        y = \\gamma\\,\\frac{x - \\sum_k w_k \\mu_k}{\\sqrt{\\sum_k w'_k \\sigma^2_k + \\epsilon}} + \\beta,
        \\qquad w = \\mathrm{softmax}(\\lambda),\\ w' = \\mathrm{softmax}(\\lambda'),
        \\qquad k \\in (\\mathrm{in}, \\mathrm{ln}, \\mathrm{bn}).

    ``mean_weight`` (``λ``) and ``var_weight`` (``λ'``) have shape ``(3,)`` in the official order
    IN, LN, BN (:data:`SWITCH_ORDER`) and start at 1 (equal weights 1/3), as in the official code.
    Subclassing BatchNorm keeps ``weight``, ``bias``, ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` under BatchNorm's names and shapes: a BatchNorm2d state dict loads
    with ``strict=True`` (the switch keeps its current values), and code that looks for
    BatchNorm layers (``isinstance``, AdaBN recalibration) finds this one. The running buffers
    belong to the BN branch only; IN and LN statistics come from the input in train and eval mode,
    so an eval-mode batch of one image is normalized as in training apart from the BN branch.

    Statistics, as the official ``forward`` computes them:

    * IN: ``μ_in, σ²_in`` per ``(n, c)`` over ``H·W`` values, with the **unbiased** variance
      (``x.var(-1)``, divisor ``H·W − 1``). The paper writes the biased one (divisor ``H·W``).
    * LN and BN: from the IN statistics by the equations of the module docstring, with the
      unbiased ``σ²_in`` inside. So ``σ²_ln`` and ``σ²_bn`` are neither the biased nor the
      unbiased variance over their sets: each is the biased one plus the mean over its set of
      ``σ²_in,biased / (H·W − 1)``. (The sums are evaluated here as ``mean(σ²_in) + mean((μ_in −
      μ_k)²)``, the same quantity without the cancellation of ``E[·²] − E[·]²`` in float32.)
    * ``H·W = 1``: the official unbiased variance is 0/0 and its output NaN; here the IN variance
      of a single value is 0 (divisor 1), the one place where this layer's output departs from
      the official one.

    Running statistics (BN branch, updated in train mode when ``track_running_stats``): the batch
    ``μ_bn`` and the ``σ²_bn`` above, **without** BatchNorm's ``n/(n − 1)`` correction, as the
    official code stores them.

    * ``using_moving_average=True`` (the official default, and what every official config at commit
      5472286 trains with, though the paper's inference uses the batch average below): an
      exponential average. ``momentum`` has PyTorch's meaning, the weight of the *new* value
      (``None``: cumulative average, as
      BatchNorm): ``running = (1 − momentum)·running + momentum·batch``. The official
      ``momentum`` is the weight of the *old* value, ``official = 1 − momentum``. The default 0.1
      equals the official ``SwitchNorm2d`` default 0.9 at commit 5472286 (and PyTorch's, so
      BatchNorm fine-tuning recipes carry over); the 2018 code (``models/switchable_norm.py`` up
      to commit 56ea8a3) and the official ``SwitchNorm1d``/``SwitchNorm3d`` use 0.997, i.e.
      ``momentum=0.003`` here.
    * ``using_moving_average=False``: the paper's *batch average* (its inference procedure: freeze
      the network, feed training batches, average their statistics). The official layer then adds
      ``μ_bn`` and ``μ²_bn + σ²_bn`` to the buffers, and ``sn_helper`` in ``main.py`` (commit
      56ea8a3; gone from later commits) zeroes them, runs 200 batches in train mode under
      ``no_grad`` and finalizes ``mean = Σμ/K``, ``var = Σ(μ² + σ²)/K − mean²``: the pooled
      variance, within-batch plus between-batch-means. Here the buffers hold that finalized
      average at every step (an online update with ``K = num_batches_tracked``, no cancellation),
      so eval mode needs no helper (the official buffers hold raw sums until it has run); the
      equivalent of ``sn_helper`` is ``reset_running_stats()`` followed by ``K`` train-mode
      forward passes under ``torch.no_grad()``. ``momentum`` is unused.

    Other official differences: the official buffers start at ``running_var = 0``, here at 1
    (BatchNorm's init: the BN branch of a layer never trained contributes variance 1 in eval
    mode, not 0); its options ``using_bn=False`` (a 2-way IN/LN switch) and ``last_gamma``
    (``γ = 0`` init in the last norm of a residual block) are not offered. Official checkpoints
    (``(1, C, 1, 1)`` parameters, ``(1, C, 1)`` buffers, no ``num_batches_tracked``) load as they
    are. Under :func:`~dabin.nn.convert_sync_norm` (DDP) the BN statistics pool every process's
    batch (:mod:`dabin.nn.group`; the plain-ops path); IN and LN are per sample.

    Computation: the IN mean and the sum of squares of ``x − μ_in`` per map (two passes, no
    ``E[x²] − E[x]²`` cancellation), the switch on ``(N, C)`` tensors, and the output as one
    multiply-add per ``(n, c)``, ``y = a·(x − μ_in) + b``; the backward is closed-form from the
    per-map sums ``Σ g`` and ``Σ g·(x − μ_in)`` (:class:`_SwitchNormFunction`). Traced by
    ``torch.compile`` or under ``torch.func``, the same formulas run as plain tensor ops (IN
    moments from ``torch.var_mean``), which autograd, Inductor and the transforms handle.

    Any floating dtype: half and bfloat16 input are normalized with float32 statistics and
    arithmetic, the output cast back to the input's dtype (autocast is off inside). Any memory
    format: channels-last input gives channels-last output. ``forward`` has no data-dependent
    Python control flow, so ``torch.compile(fullgraph=True)`` traces it.

    Args:
        num_features: ``C``.
        eps: Added to the mixed variance inside the square root (official default 1e-5).
        momentum: Weight of the new batch statistics in the running average (PyTorch's
            convention, ``None``: cumulative average); ``1 − momentum`` is the official value.
        affine: Learn ``γ`` (``weight``) and ``β`` (``bias``).
        track_running_stats: Keep running statistics for the BN branch; without them the BN
            branch uses batch statistics in eval mode too, as BatchNorm does.
        using_moving_average: Running statistics as an exponential (or, ``momentum=None``,
            cumulative) average of the batch statistics; ``False``: the official batch average.
        device: Device of the parameters and buffers.
        dtype: Dtype of the parameters and buffers.
    """

    mean_weight: nn.Parameter
    var_weight: nn.Parameter

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        using_moving_average: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.using_moving_average = using_moving_average
        self.mean_weight = nn.Parameter(torch.ones(len(SWITCH_ORDER), device=device, dtype=dtype))
        self.var_weight = nn.Parameter(torch.ones(len(SWITCH_ORDER), device=device, dtype=dtype))

    def reset_parameters(self) -> None:
        """BatchNorm's reset (statistics, ``γ = 1``, ``β = 0``) and the official switch init ``λ = λ' = 1``."""
        super().reset_parameters()
        # BatchNorm.__init__ calls this before the switch parameters exist.
        if "mean_weight" in self._parameters:
            with torch.no_grad():
                self.mean_weight.fill_(1.0)
                self.var_weight.fill_(1.0)

    def switch_weights(self) -> tuple[Tensor, Tensor]:
        """The current softmaxed weights ``(w, w')`` of the means and variances, order IN, LN, BN."""
        with torch.no_grad():
            return self.mean_weight.float().softmax(0), self.var_weight.float().softmax(0)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any],
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        patched: dict[str, Tensor] = {}
        # A BatchNorm state dict has no switch: keep the current one rather than report it missing.
        for name in ("mean_weight", "var_weight"):
            if prefix + name not in state_dict:
                patched[prefix + name] = getattr(self, name).detach().clone()
        # Official checkpoints keep (1, C, 1, 1) / (1, C, 1) shapes for BatchNorm's (C,) tensors.
        for name in _OFFICIAL_SHAPED:
            value = state_dict.get(prefix + name)
            if (isinstance(value, Tensor) and value.dim() > 1 and value.shape[1] == self.num_features
                    and value.numel() == self.num_features):
                patched[prefix + name] = value.reshape(self.num_features)
        if patched:
            state_dict = {**state_dict, **patched}
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, input: Tensor) -> Tensor:
        """Normalize ``input`` with the switched statistics (class docstring).

        Args:
            input: ``(N, C, H, W)``; any floating dtype, any memory format.

        Returns:
            The normalized tensor, same shape, dtype and memory format.
        """
        self._check_input_dim(input)
        if torch.is_autocast_enabled(input.device.type):
            # Statistics are computed in float32 (or float64) inside; autocast must not recast them.
            with torch.autocast(device_type=input.device.type, enabled=False):
                return self._switch_norm(input)
        return self._switch_norm(input)

    def _switch_norm(self, input: Tensor) -> Tensor:
        # Running-statistics bookkeeping mirrors nn.modules.batchnorm._BatchNorm.forward.
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)

        compute = torch.float32 if input.dtype in _LOW_PRECISION else input.dtype
        x = input.to(compute)
        weight = None if self.weight is None else self.weight.to(compute)
        bias = None if self.bias is None else self.bias.to(compute)
        mean_w = self.mean_weight.to(compute).softmax(0)
        var_w = self.var_weight.to(compute).softmax(0)
        running: Tensor | None = None
        if not use_batch_stats:
            assert self.running_mean is not None and self.running_var is not None
            running = torch.stack([self.running_mean, self.running_var]).to(compute)[:, None]  # (2, 1, C)
        # Eagerly, the fused passes and closed-form backward; traced by torch.compile (Inductor fuses
        # plain ops, a custom Function breaks the graph), under torch.func (vmap, grad) or pooling BN's
        # statistics over processes (convert_sync_norm; the all-reduces differentiate), the ops.
        group = self.batch_group() if use_batch_stats else None
        if group is not None or torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
            y, bn = _composite(x, weight, bias, mean_w, var_w, running, self.eps, group)
        else:
            y, bn = _fused(x, weight, bias, mean_w, var_w, running, self.eps)
        if self.training and self.track_running_stats:
            self._update_running_stats(bn[0].detach().reshape(-1), bn[1].detach().reshape(-1))
        return y.to(input.dtype)

    def _update_running_stats(self, mean_b: Tensor, var_b: Tensor) -> None:
        """Fold the batch's BN statistics ``(C,)`` into the running buffers (class docstring)."""
        running_mean, running_var = self.running_mean, self.running_var
        if running_mean is None or running_var is None:
            return
        mean_b = mean_b.to(running_mean.dtype)
        var_b = var_b.to(running_var.dtype)
        if self.using_moving_average and self.momentum is not None:
            running_mean.lerp_(mean_b, self.momentum)
            running_var.lerp_(var_b, self.momentum)
            return
        assert self.num_batches_tracked is not None
        # 1/K as a tensor: no .item() on the step count, so torch.compile needs no graph break.
        factor = self.num_batches_tracked.to(running_mean.dtype).reciprocal()
        delta = mean_b - running_mean
        running_mean.add_(delta * factor)
        if self.using_moving_average:
            # momentum=None: BatchNorm's cumulative average, the mean of the batch variances.
            running_var.add_((var_b - running_var) * factor)
        else:
            # Batch average: pooled variance of K equal batches, (K−1)/K·old + new/K + (K−1)/K²·δ².
            running_var.mul_(1 - factor).add_(factor * var_b + factor * (1 - factor) * delta.square())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, switch=(IN, LN, BN), using_moving_average={self.using_moving_average}"


def _centered_moments(x: Tensor, residual: bool = False) -> tuple[Tensor, Tensor]:
    """Per ``(n, c)`` map of ``(N, C, H, W)`` input: ``(μ, Σ(x − μ)²[, Σ(x − μ)])`` stacked, and ``x − μ``.

    Two passes, the mean and then the sum of squares of the materialized ``x − μ``: as accurate in
    float32 as ``torch.var_mean`` when ``|μ| ≫ σ`` (``E[x²] − E[x]²`` would cancel) and 10–30×
    faster on CPU than its Welford loop. The output is affine in ``x − μ``. With ``residual``,
    ``Σ(x − μ)`` (not 0 for the rounded ``μ``) too: it keeps a variance pooled over maps exact.
    """
    n, c = x.shape[:2]
    # Reducing the last axis of an (N, C, H·W) view is a faster kernel than two axes at once.
    flat = x.is_contiguous()
    dims = -1 if flat else (2, 3)
    mean = torch.sum(x.view(n, c, -1) if flat else x, dim=dims).div_(x.shape[2] * x.shape[3])
    centered = x - mean.view(n, c, 1, 1)
    if residual:
        sum_c, sum_sq = _grad_sums(centered, centered, _zeros_ones(n * c, x.dtype, x.device)[0])
        return torch.stack([mean, sum_sq, sum_c]), centered
    sum_sq = torch.linalg.vector_norm(centered.view(n, c, -1) if flat else centered, dim=dims).square_()
    return torch.stack([mean, sum_sq]), centered


def _scale_shift(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """``x·scale + shift`` with ``(N, C)`` coefficients, in x's memory format, as a new tensor."""
    if x.is_contiguous() and x.shape[2] * x.shape[3] > _SMALL_MAP:
        return _affine(x, scale, shift)
    # Small maps: BatchNorm's kernel (in _affine) spends more per (n, c) than a multiply and an
    # in-place add with broadcast coefficients spend on the two passes (and addcmul is slower).
    return (x * scale.view(*scale.shape, 1, 1)).add_(shift.view(*shift.shape, 1, 1))


def _scale_shift_(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """:func:`_scale_shift` in place: no allocation (a fresh buffer costs page faults on CPU)."""
    return x.mul_(scale.view(*scale.shape, 1, 1)).add_(shift.view(*shift.shape, 1, 1))


def _grad_sums(grad: Tensor, x: Tensor, mean: Tensor) -> tuple[Tensor, Tensor]:
    """``Σ_s g`` and ``Σ_s g·(x − μ)`` of each ``(n, c)`` map, ``μ`` the maps' ``(N, C)`` means."""
    n, c = x.shape[:2]
    if not (grad.is_contiguous() and x.is_contiguous()):
        return grad.sum(dim=(2, 3)), _sum_of_products(grad, x - mean.view(n, c, 1, 1))
    # BatchNorm's backward on the (1, N·C, H·W) view, with mean μ and inverse std 1, returns both
    # as its bias and weight gradients, reading each map of g and x once (while cached), and
    # centres x element by element (no cancellation when |μ| ≫ σ): faster than two reductions.
    _, ones = _zeros_ones(n * c, x.dtype, x.device)
    flat = (1, n * c, -1)
    _, sum_gx, sum_g = torch.ops.aten.native_batch_norm_backward(
        grad.reshape(flat), x.reshape(flat), None, None, None, mean.reshape(-1), ones, True, 0.0, [False, True, True])
    return sum_g.view(n, c), sum_gx.view(n, c)


def _graph_grads(needs: tuple[bool, ...], inputs: dict[int, Tensor | None], grad_out: Tensor,
                 recompute: Callable[[], Tensor]) -> tuple[Tensor | None, ...]:
    """A custom Function's input gradients under ``create_graph``: autograd through ``recompute()``.

    ``inputs`` maps the Function's argument positions to its differentiable inputs; the
    closed-form backward is not itself differentiable, the recomputed tensor ops are.
    """
    grads: list[Tensor | None] = [None] * len(needs)
    wanted = [i for i, t in inputs.items() if t is not None and needs[i]]
    with torch.enable_grad():
        y = recompute()
    found = torch.autograd.grad(y, [inputs[i] for i in wanted], grad_out, create_graph=True, allow_unused=True)
    for i, grad in zip(wanted, found):
        grads[i] = grad
    return tuple(grads)


def _pooled(stats: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """LN's (``dim=1``, over C) or BN's (``dim=0``, over N) mean and variance from the IN ones.

    Args:
        stats: ``(2, N, C)``, the IN means and variances stacked.
        dim: The axis of an ``(N, C)`` tensor to pool over.

    Returns:
        The pooled mean and variance stacked, ``(2, N, 1)`` or ``(2, 1, C)``, and ``μ_in`` minus
        the pooled mean ``(N, C)``. The variance is ``mean(σ²_in) + mean((μ_in − μ)²)``: the
        official ``mean(σ²_in + μ²_in) − μ²`` without its cancellation in float32.
    """
    mean = stats[0].mean(dim, keepdim=True)
    deviation = stats[0] - mean
    var = stats[1].mean(dim, keepdim=True) + deviation.square().mean(dim, keepdim=True)
    return torch.stack([mean, var]), deviation


def _mix(stats: Tensor, ln: Tensor, bn: Tensor, weight: Tensor | None, bias: Tensor | None, mean_w: Tensor,
         var_w: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The switched statistics and the output's coefficients per ``(n, c)``.

    Args:
        stats: IN means and variances stacked, ``(2, N, C)``.
        ln: LN's, ``(2, N, 1)``.
        bn: BN's, ``(2, 1, C)`` (batch or running statistics).
        weight: ``γ`` (None: 1).
        bias: ``β`` (None: 0).
        mean_w: ``w``, the softmaxed ``mean_weight`` (order IN, LN, BN).
        var_w: ``w'``, the softmaxed ``var_weight``.
        eps: Added to the switched variance.

    Returns:
        ``r = 1/√(σ² + ε)``, the scale ``a = γ·r``, the offset ``μ_in − μ`` and the shift
        ``a·(μ_in − μ) + β``, each ``(N, C)``: ``y = a·(x − μ_in) + shift``.
    """
    w = torch.stack([mean_w, var_w], 1).view(3, 2, 1, 1)  # k, (mean, var)
    mixed = torch.addcmul(torch.addcmul(w[0] * stats, w[1], ln), w[2], bn)  # (2, N, C): μ, σ²
    rstd = torch.rsqrt(mixed[1] + eps)
    scale = rstd if weight is None else rstd * weight
    # Centred on μ_in, not x·a + (β − a·μ): no cancellation when |μ| ≫ σ in float32.
    offset = stats[0] - mixed[0]
    shift = offset * scale if bias is None else torch.addcmul(bias, offset, scale)
    return rstd, scale, offset, shift


def _composite(x: Tensor, weight: Tensor | None, bias: Tensor | None, mean_w: Tensor, var_w: Tensor,
               running: Tensor | None, eps: float, group: torch.distributed.ProcessGroup | None = None
               ) -> tuple[Tensor, Tensor]:
    """The layer in differentiable tensor ops, for ``torch.compile``, double backward and ``group``.

    Returns:
        The output and BN's mean and variance ``(2, 1, C)`` (``running`` if given, else the batch's:
        over every process of ``group`` if given, :func:`dabin.nn.group.group_moments`).
    """
    spatial = x.shape[2] * x.shape[3]
    # Official: x.var(-1), the unbiased variance. One value has none (0/0); 0 keeps it finite.
    var_in, mean_in = torch.var_mean(x, dim=(2, 3), correction=1 if spatial > 1 else 0)  # (N, C)
    stats = torch.stack([mean_in, var_in])
    bn = running if running is not None else _pooled(stats, 0)[0] if group is None else \
        torch.stack(group_moments(mean_in, var_in, group)[:2])[:, None]
    _, scale, _, shift = _mix(stats, _pooled(stats, 1)[0], bn, weight, bias, mean_w, var_w, eps)
    y = torch.addcmul(shift[:, :, None, None], x - mean_in[:, :, None, None], scale[:, :, None, None])
    return y, bn


def _fused(x: Tensor, weight: Tensor | None, bias: Tensor | None, mean_w: Tensor, var_w: Tensor,
           running: Tensor | None, eps: float) -> tuple[Tensor, Tensor]:
    """:func:`_composite` in four passes (mean, centring, sum of squares, the output over the centred
    copy); :class:`_SwitchNormFunction` gives the gradient when one is needed."""
    spatial = x.shape[2] * x.shape[3]
    with torch.no_grad():
        stats, centered = _centered_moments(x)
        stats[1].div_(spatial - 1 if spatial > 1 else 1)  # unbiased, as the official x.var(-1)
        ln, dev_ln = _pooled(stats, 1)
        bn, dev_bn = _pooled(stats, 0) if running is None else (running, None)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias, mean_w, var_w)):
        y = _SwitchNormFunction.apply(x, centered, stats, ln, bn, dev_ln, dev_bn, weight, bias, mean_w, var_w, eps)
    else:
        _, scale, _, shift = _mix(stats, ln, bn, weight, bias, mean_w, var_w, eps)
        y = _scale_shift_(centered, scale, shift)
    return y, bn


class _SwitchNormFunction(torch.autograd.Function):
    """The output ``a·(x − μ_in) + shift`` with a closed-form backward over per-``(n, c)`` sums.

    Every statistic is a function of the per-``(n, c)`` moments ``μ_in``, ``σ²_in``, so with
    ``G_μ = ∂L/∂μ_in`` and ``G_σ = ∂L/∂σ²_in`` (chain rule through the switch on ``(N, C)``
    tensors, from ``Σ_s g`` and ``Σ_s g·(x − μ_in)``) the input gradient is one affine map
    per ``(n, c)``, with ``HW − 1`` the official variance's divisor (1 for a single value):

    .. math::

        \\frac{\\partial L}{\\partial x} = a\\,g + \\frac{2\\,G_\\sigma}{HW - 1}\\,(x - \\mu_{\\mathrm{in}})
            + \\frac{G_\\mu}{HW}.

    Under ``create_graph`` the backward differentiates :func:`_composite` instead, so double
    backward works as for plain tensor ops.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, centered: Tensor, stats: Tensor, ln: Tensor, bn: Tensor, dev_ln: Tensor,
        dev_bn: Tensor | None, weight: Tensor | None, bias: Tensor | None, mean_w: Tensor, var_w: Tensor, eps: float,
    ) -> Tensor:
        rstd, scale, offset, shift = _mix(stats, ln, bn, weight, bias, mean_w, var_w, eps)
        # The backward reads x (held anyway) rather than x − μ_in, so the output can overwrite it.
        ctx.save_for_backward(x, stats, ln, bn, dev_ln, dev_bn, weight, bias, mean_w, var_w, rstd, scale, offset)
        ctx.eps = eps
        ctx.mark_dirty(centered)
        return _scale_shift_(centered, scale, shift)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, stats, ln, bn, dev_ln, dev_bn, weight, bias, mean_w, var_w, rstd, scale, offset = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph: a differentiable gradient
            running = None if dev_bn is not None else bn
            return _graph_grads(needs, {0: x, 7: weight, 8: bias, 9: mean_w, 10: var_w}, grad_out,
                                lambda: _composite(x, weight, bias, mean_w, var_w, running, ctx.eps)[0])
        grads: list[Tensor | None] = [None] * len(needs)
        n, c = x.shape[:2]
        spatial = x.shape[2] * x.shape[3]
        divisor = spatial - 1 if spatial > 1 else 1
        sum_g, sum_gx = _grad_sums(grad_out, x, stats[0])
        sum_gx = torch.addcmul(sum_gx, offset, sum_g)  # Σ_s g·(x − μ)
        # grad = (a·Σg, a·r²·Σg(x − μ)) = −(∂L/∂μ, 2·∂L/∂σ²) per (n, c), μ and σ² the switched
        # statistics; its sums over C (over N) are the same for μ_ln, σ²_ln (μ_bn, σ²_bn), up to w_j, w'_j.
        grad = torch.stack([sum_g, sum_gx]).mul_(torch.stack([scale, scale * rstd.square()]))
        grad_ln, grad_bn = grad.sum(2, keepdim=True), grad.sum(1, keepdim=True)
        if needs[0]:
            # ∂L/∂x = a·g + ∂L/∂μ_in / HW + 2·∂L/∂σ²_in·(x − μ_in) / (HW − 1), the statistics j = IN,
            # LN, BN entering ∂L/∂μ_in and ∂L/∂σ²_in with w_j, w'_j and ∂μ_j/∂μ_in = ∂σ²_j/∂σ²_in = 1, 1/C,
            # 1/N: k[j] holds (w_j, w'_j)/(1, C, N)[j] times (−1/HW, −1/(HW − 1)), grad's signs and scales.
            k = torch.stack([mean_w, var_w], 1)
            k[1].div_(c)
            k[2].div_(n)
            k[:, 0].mul_(-1.0 / spatial)
            k[:, 1].mul_(-1.0 / divisor)
            k = k.view(3, 2, 1, 1)
            coef = torch.addcmul(k[0] * grad, k[1], grad_ln)  # (2, N, C): of 1, of x − μ_in
            if dev_bn is not None:  # batch statistics: BN's depend on x too
                coef.addcmul_(k[2], grad_bn)
            # σ²_ln also depends on μ_in, through (μ_in − μ_ln)²: ∂σ²_ln/∂μ_in = 2(μ_in − μ_ln)/C; BN alike.
            coef[0].addcmul_(grad_ln[1] * dev_ln, k[1, 1], value=divisor / spatial)
            if dev_bn is not None:
                coef[0].addcmul_(grad_bn[1] * dev_bn, k[2, 1], value=divisor / spatial)
            # coef[1]·(x − μ_in) + coef[0] as x·coef[1] + (coef[0] − coef[1]·μ_in): the cancellation
            # costs ~eps·|μ_in|/σ of that term only, against a fresh x − μ_in (memory, a pass).
            grad_x = _scale_shift(x, coef[1], torch.addcmul(coef[0], coef[1], stats[0], value=-1.0))
            grads[0] = grad_x.addcmul_(grad_out, scale.view(n, c, 1, 1))
        if weight is not None and needs[7]:
            grads[7] = (rstd * sum_gx).sum(0)
        if bias is not None and needs[8]:
            grads[8] = sum_g.sum(0)
        if needs[9] or needs[10]:
            # ∂L/∂w_j = Σ ∂L/∂μ·μ_j, ∂L/∂w'_j = Σ ∂L/∂σ²·σ²_j over (n, c), j = IN, LN, BN.
            mixing = torch.stack([(grad * stats).sum((1, 2)), (grad_ln * ln).sum((1, 2)), (grad_bn * bn).sum((1, 2))])
            grads[9], grads[10] = mixing[:, 0].neg(), mixing[:, 1] * -0.5
        return tuple(grads)
