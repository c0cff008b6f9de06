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
means and the variances. LN's and BN's statistics follow from IN's, so one reduction over the
spatial axes gives all three:

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

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["SWITCH_ORDER", "SwitchNorm2d"]

#: The normalizer each entry of ``mean_weight`` / ``var_weight`` weighs (the official index order).
SWITCH_ORDER: tuple[str, str, str] = ("in", "ln", "bn")

_LOW_PRECISION = (torch.float16, torch.bfloat16)
# Official (1, C, 1, 1) parameters and (1, C, 1) buffers, loaded into BatchNorm's (C,) ones.
_OFFICIAL_SHAPED = ("weight", "bias", "running_mean", "running_var")


class SwitchNorm2d(nn.BatchNorm2d):
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
      exponential average. ``momentum`` has
      PyTorch's meaning, the weight of the *new* value (``None``: cumulative average, as
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
    mode, not 0); its options
    ``using_bn=False`` (a 2-way IN/LN switch) and ``last_gamma`` (``γ = 0`` init in the last norm of
    a residual block, a model-construction choice) are not offered. Official checkpoints (``(1, C,
    1, 1)`` parameters, ``(1, C, 1)`` buffers, no ``num_batches_tracked``) load as they are.

    Any floating dtype: half and bfloat16 input are normalized with float32 statistics and
    arithmetic, the output cast back to the input's dtype; autocast is switched off inside, so
    its casts cannot touch the statistics. Any memory format: channels-last input gives
    channels-last output. ``forward`` has no data-dependent Python control flow (the cumulative
    factor ``1/num_batches_tracked`` stays a tensor), so ``torch.compile(fullgraph=True)`` traces it.

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

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
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
        spatial = x.shape[2] * x.shape[3]
        # Official: x.var(-1), the unbiased variance. One value has none (0/0); 0 keeps it finite.
        var_in, mean_in = torch.var_mean(x, dim=(2, 3), correction=1 if spatial > 1 else 0)  # (N, C)

        mean_ln = mean_in.mean(1, keepdim=True)  # (N, 1)
        # (1/C)·Σ_c(σ²_in + μ²_in) − μ²_ln, written as a sum of non-negative terms.
        var_ln = var_in.mean(1, keepdim=True) + (mean_in - mean_ln).square().mean(1, keepdim=True)

        if use_batch_stats:
            mean_bn = mean_in.mean(0, keepdim=True)  # (1, C)
            var_bn = var_in.mean(0, keepdim=True) + (mean_in - mean_bn).square().mean(0, keepdim=True)
            if self.training and self.track_running_stats:
                self._update_running_stats(mean_bn.detach().reshape(-1), var_bn.detach().reshape(-1))
        else:
            assert self.running_mean is not None and self.running_var is not None
            mean_bn = self.running_mean.to(compute).reshape(1, -1)
            var_bn = self.running_var.to(compute).reshape(1, -1)

        mean_w = self.mean_weight.to(compute).softmax(0)
        var_w = self.var_weight.to(compute).softmax(0)
        mean = mean_w[0] * mean_in + mean_w[1] * mean_ln + mean_w[2] * mean_bn  # (N, C)
        var = var_w[0] * var_in + var_w[1] * var_ln + var_w[2] * var_bn

        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight.to(compute)
        # (x − μ)·scale rather than x·scale + shift: no cancellation when |μ| ≫ σ in float32.
        centered = x - mean[:, :, None, None]
        if self.bias is None:
            return (centered * scale[:, :, None, None]).to(input.dtype)
        return torch.addcmul(self.bias.to(compute)[:, None, None], centered, scale[:, :, None, None]).to(input.dtype)

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
