r"""Transferable Normalization, TransNorm (Wang, Jin, Long, Wang & Jordan, NeurIPS 2019, Section 3).

TransNorm replaces BatchNorm in a network trained on a labelled source and an unlabelled target
domain at once. Per channel ``c`` it keeps

* domain-specific statistics: each domain's half of the batch is normalized with its own mean and
  variance, and each domain has its own running estimates for inference;
* domain-shared affine parameters ``γ``, ``β``;
* a domain-adaptive channel weight ``α``: channels whose normalized means agree across domains
  (more transferable) are amplified, the others damped.

With ``x̂_s``, ``x̂_t`` the source and target rows normalized by their own statistics,

.. math::

    z = \gamma\,\hat x + \beta, \qquad
    d_c = \Big|\frac{\mu_{s,c}}{\sqrt{\sigma^2_{s,c} + \epsilon}}
              - \frac{\mu_{t,c}}{\sqrt{\sigma^2_{t,c} + \epsilon}}\Big|, \qquad
    \alpha_c = \frac{C\,(1 + d_c)^{-1}}{\sum_{k=1}^{C} (1 + d_k)^{-1}}, \qquad
    y = (1 + \alpha)\,z .

``α`` averages 1 over the channels (``Σ_c α_c = C``); identical domains give ``α = 1`` and
``y = 2z``. This module follows the official code (``github.com/thuml/TransNorm``,
``src/trans_norm.py``, ``_TransNorm.forward``) and differs from it only where stated in
:class:`TransNorm2d`.

Which rows are source: the training batch is ``cat([source, target])``; the split size is the
layer's :attr:`TransNorm2d.source_size`, set for a block by :func:`domain_split` (``None``: equal
halves, as the official code). Inference normalizes with the target's running statistics unless
:func:`eval_statistics` (or :attr:`TransNorm2d.eval_domain`) asks for the source's.

The buffers carry dabin's names for per-domain statistics (:mod:`dabin.nn.domain_stats`):
``running_mean``, ``running_var``, ``num_batches_tracked`` are the source's and
``target_running_mean``, ``target_running_var``, ``target_num_batches_tracked`` the target's.
TransNorm selects them itself, so a model with TransNorm layers must not be put under
:func:`dabin.nn.domain_stats.target_stats` for training or inference: the exchange would give each
domain's rows the other's statistics. The one use of that exchange is recalibration (see
:func:`eval_statistics`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dabin.nn.group import GroupSynced
from dabin.nn.switchable import _centered_moments, _scale_shift_
from dabin.nn.transnorm_functional import (_alpha, _coefficients, _composite, _domain_stats, _TransNormFunction,
                                           group_domain_stats)

__all__ = ["Domain", "TransNorm2d", "domain_split", "eval_statistics"]

#: The domain whose running statistics normalize a batch in eval mode.
Domain = Literal["source", "target"]
_DOMAINS: tuple[str, ...] = get_args(Domain)

_STATS = ("running_mean", "running_var", "num_batches_tracked")
_PREFIX = "target_"


class TransNorm2d(nn.BatchNorm2d, GroupSynced):
    r"""Transferable Normalization over ``(N, C, H, W)`` input (Wang et al., NeurIPS 2019, Sec. 3).

    Training (or any mode with ``track_running_stats=False``): rows ``[:n_s]`` are source, rows
    ``[n_s:]`` target, ``n_s`` = :attr:`source_size` (``None``: ``N / 2``; an odd ``N`` is an
    error). Each part is normalized with its own batch mean and biased variance, as BatchNorm
    does, and ``α`` comes from the two parts' batch means and *unbiased* variances (the official
    code's ``torch.var``):

    .. math::

        y_i = (1 + \alpha)\Big(\gamma\,\frac{x_i - \mu_{D(i)}}{\sqrt{\sigma^2_{D(i)} + \epsilon}}
              + \beta\Big), \qquad D(i) = \text{source if } i < n_s \text{ else target}.

    Each domain's running statistics are updated from its own rows with PyTorch's convention,
    ``r ← (1 − m)·r + m·b`` (``b``: the batch mean, or the unbiased batch variance), and
    ``momentum=None`` is the cumulative average ``m = 1 / n_batches`` counted per domain. The
    official code passes its ``momentum`` to ``F.batch_norm``, i.e. the same convention (its
    default 0.1 is BatchNorm's), but never counts batches, so it has no cumulative mode.

    Eval (with ``track_running_stats``): every row is normalized with the running statistics of
    :attr:`eval_domain` (default ``"target"``, the official code's choice: it tests on the target)
    and ``α`` comes from the running statistics of both domains, so it is the same for either
    ``eval_domain``:

    .. math::

        y = (1 + \alpha)\Big(\gamma\,\frac{x - \hat\mu_D}{\sqrt{\hat\sigma^2_D + \epsilon}}
            + \beta\Big), \qquad \alpha = \alpha(\hat\mu_s, \hat\sigma^2_s, \hat\mu_t, \hat\sigma^2_t).

    Where this follows the official code rather than the paper's text, or departs from both:

    * ``α`` is detached (``alpha.detach()`` in the code): no gradient flows through the
      statistics that form it; the paper's equations state no such stop-gradient.
    * In training ``α`` uses the unbiased variances of the two parts while the normalization uses
      the biased ones (the paper writes one ``σ²`` for both); at test time ``α`` uses the running
      variances (unbiased estimates) and normalization uses the target's running statistics.
    * Departures from the code: an odd batch without :attr:`source_size` raises instead of giving
      the target ``N // 2 + 1`` rows; ``track_running_stats=False`` uses batch statistics in eval
      too (the code fails there); ``momentum=None`` works (see above); ``γ`` starts at 1 as in
      BatchNorm (the code's ``reset_parameters`` draws it uniformly, like PyTorch 0.4's
      BatchNorm, but its networks load ImageNet BatchNorm weights anyway); ``eval_domain`` is a
      dabin addition for evaluating source data.

    Statistics are computed in float32 (float64 for float64 input) whatever the input dtype, and
    the output has the input's dtype and memory format (channels_last stays channels_last). Training
    pools each map's mean and centred sums (no cancellation) per domain, the output is a multiply-add
    per ``(row, channel)``, the backward BatchNorm's per domain in closed form; eval is BatchNorm's kernel.

    A BatchNorm2d state dict loads strictly: the target's statistics, absent from it, start as
    copies of the loaded source statistics (as :func:`dabin.nn.domain_stats.add_domain_stats`
    initializes them from the current ones, and as the official loader fills both from one
    pretrained BatchNorm).

    Args:
        num_features: ``C``.
        eps: Added to every variance, in the normalization and in ``d``.
        momentum: Running-statistics factor, PyTorch's convention (``None``: cumulative average).
        affine: Learn ``γ`` and ``β``.
        track_running_stats: Keep running statistics for both domains and use them in eval.
        device: Where to create parameters and buffers.
        dtype: Their dtype.

    Attributes:
        source_size: Rows of the training batch that are source (``None``: half the batch). Set
            it for a block with :func:`domain_split`.
        eval_domain: ``"target"`` or ``"source"``: whose running statistics normalize in eval.
    """

    target_running_mean: Tensor | None
    target_running_var: Tensor | None
    target_num_batches_tracked: Tensor | None
    source_size: int | None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        for name in _STATS:
            source = self._buffers[name]
            # None when not tracking, as BatchNorm registers its own statistics.
            self.register_buffer(_PREFIX + name, None if source is None else source.detach().clone())
        self.source_size = None
        self._eval_domain: Domain = "target"

    @property
    def eval_domain(self) -> Domain:
        """Whose running statistics normalize a batch in eval mode (``α`` uses both domains')."""
        return self._eval_domain

    @eval_domain.setter
    def eval_domain(self, domain: Domain) -> None:
        if domain not in _DOMAINS:
            raise ValueError(f"eval_domain must be one of {', '.join(_DOMAINS)}, got {domain!r}")
        self._eval_domain = domain

    def reset_running_stats(self) -> None:
        super().reset_running_stats()
        # BatchNorm's __init__ calls this before the target's buffers exist.
        if self._buffers.get(_PREFIX + "running_mean") is not None:
            assert self.target_running_mean is not None and self.target_running_var is not None
            assert self.target_num_batches_tracked is not None
            self.target_running_mean.zero_()
            self.target_running_var.fill_(1)
            self.target_num_batches_tracked.zero_()

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
        if self.track_running_stats:
            state_dict = dict(state_dict)  # never add keys to the caller's dict
            for name in _STATS:
                if prefix + _PREFIX + name in state_dict:
                    continue
                if prefix + name in state_dict:
                    # A BatchNorm (or source-only) checkpoint: the target starts from the source,
                    # so an untrained-on-target model computes what the BatchNorm did (times 1 + α).
                    state_dict[prefix + _PREFIX + name] = state_dict[prefix + name]
                elif name == "num_batches_tracked" and (local_metadata.get("version") or 0) < 2:
                    # Pre-1.0 BatchNorm checkpoints have no batch count; BatchNorm keeps its own.
                    state_dict[prefix + _PREFIX + name] = self._buffers[_PREFIX + name]
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, input: Tensor) -> Tensor:
        """Normalize ``input`` per domain and weight the channels by ``1 + α`` (class docstring).

        Args:
            input: ``(N, C, H, W)``, any floating dtype and memory format. In training the first
                :attr:`source_size` rows (default ``N / 2``) are source, the rest target.

        Returns:
            The normalized tensor, same shape, dtype and memory format.

        Raises:
            ValueError: Not 4-d; in training, a split with an empty domain or a domain with a
                single value per channel, or an odd batch without :attr:`source_size`.
        """
        self._check_input_dim(input)
        # float32 statistics for half/bfloat16 input; float64 input keeps float64.
        dtype = torch.promote_types(input.dtype, torch.float32)
        x = input.to(dtype)
        if self.training or not self.track_running_stats:
            return self._batch_norm(x).to(input.dtype)
        return self._running_norm(x).to(input.dtype)

    def _split(self, batch: int) -> int:
        n_source = batch // 2 if self.source_size is None else self.source_size
        if self.source_size is None and batch % 2:
            raise ValueError(f"TransNorm2d got an odd batch of {batch} rows and no source_size; the batch must be "
                             f"cat([source, target]) of equal halves, or set the split with domain_split()")
        if not 0 < n_source < batch:
            raise ValueError(f"TransNorm2d source_size={n_source} leaves a domain empty in a batch of {batch} rows")
        return n_source

    def _batch_norm(self, x: Tensor) -> Tensor:
        """Each domain's rows normalized with its batch statistics, times ``1 + α`` from them."""
        batch, per_row = x.shape[0], x.shape[2] * x.shape[3]
        n_source = self._split(batch)
        counts = (n_source * per_row, (batch - n_source) * per_row)
        if min(counts) < 2:
            raise ValueError(f"TransNorm2d needs more than one value per channel in each domain when training, "
                             f"got {counts[0]} (source) and {counts[1]} (target)")
        weight = None if self.weight is None else self.weight.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        group = self.batch_group()
        if group is not None:  # convert_sync_norm under DDP: each domain's rows of every process
            return self._synced_norm(x, weight, bias, n_source, group)
        with torch.no_grad():
            moments, centered = _centered_moments(x, residual=True)
            mean_in, (mean_d, var_d) = moments[0], _domain_stats(moments, n_source, per_row)
            # The official code takes α's variances from torch.var: the unbiased estimates.
            unbiased_s = var_d[0] * (counts[0] / (counts[0] - 1))
            unbiased_t = var_d[1] * (counts[1] / (counts[1] - 1))
            alpha = _alpha(mean_d[0], unbiased_s, mean_d[1], unbiased_t, self.eps)
            if self.training and self.track_running_stats:
                self._update("", mean_d[0], unbiased_s)
                self._update(_PREFIX, mean_d[1], unbiased_t)
        gain = 1.0 + alpha  # detached: no gradient through α, as in the official code
        if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():  # as SwitchNorm2d
            return _composite(x, weight, bias, gain, n_source, self.eps)
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
            return _TransNormFunction.apply(x, centered, mean_in, mean_d, var_d, weight, bias, gain, n_source, self.eps)
        *_, scale, _, shift = _coefficients(mean_in, mean_d, var_d, weight, bias, gain, n_source, self.eps)
        return _scale_shift_(centered, scale, shift)

    def _synced_norm(self, x: Tensor, weight: Tensor | None, bias: Tensor | None, n_source: int,
                     group: torch.distributed.ProcessGroup) -> Tensor:
        """:meth:`_batch_norm` with each domain's statistics over every process's rows (plain ops)."""
        mean_d, var_d, counts = group_domain_stats(x, n_source, group)
        with torch.no_grad():
            unbiased = var_d * (counts / (counts - 1))[:, None]  # α and the running variances, as above
            alpha = _alpha(mean_d[0], unbiased[0], mean_d[1], unbiased[1], self.eps)
            if self.track_running_stats:
                self._update("", mean_d[0], unbiased[0])
                self._update(_PREFIX, mean_d[1], unbiased[1])
        return _composite(x, weight, bias, 1.0 + alpha, n_source, self.eps, (mean_d, var_d))

    def _running_norm(self, x: Tensor) -> Tensor:
        """Eval: :attr:`eval_domain`'s running statistics, ``α`` from both domains' (class docstring)."""
        assert self.running_mean is not None and self.running_var is not None
        assert self.target_running_mean is not None and self.target_running_var is not None
        gain = 1.0 + self._running_alpha(x.dtype)
        source = self._eval_domain == "source"
        mean = (self.running_mean if source else self.target_running_mean).to(x.dtype)
        var = (self.running_var if source else self.target_running_var).to(x.dtype)
        weight = gain if self.weight is None else gain * self.weight.to(x.dtype)
        bias = None if self.bias is None else gain * self.bias.to(x.dtype)
        # BatchNorm's eval kernel with (1 + α)γ and (1 + α)β: one fused pass, any memory format.
        return F.batch_norm(x, mean, var, weight, bias, False, 0.0, self.eps)

    def running_alpha(self) -> Tensor:
        """The eval-mode ``α`` per channel, from both domains' running statistics (for logging, too).

        Returns:
            ``(C,)``, detached, in the statistics' dtype; its mean over the channels is 1.

        Raises:
            RuntimeError: The layer keeps no running statistics.
        """
        if not self.track_running_stats:
            raise RuntimeError("TransNorm2d(track_running_stats=False) has no running statistics")
        assert self.running_mean is not None
        return self._running_alpha(torch.promote_types(self.running_mean.dtype, torch.float32))

    def _running_alpha(self, dtype: torch.dtype) -> Tensor:
        assert self.running_mean is not None and self.running_var is not None
        assert self.target_running_mean is not None and self.target_running_var is not None
        with torch.no_grad():
            return _alpha(self.running_mean.to(dtype), self.running_var.to(dtype),
                          self.target_running_mean.to(dtype), self.target_running_var.to(dtype), self.eps)

    def _update(self, prefix: str, mean: Tensor, unbiased_var: Tensor) -> None:
        """One domain's running update: ``r ← (1 − m)·r + m·b``; ``m = 1/count`` for momentum None."""
        running_mean, running_var = self._buffers[prefix + "running_mean"], self._buffers[prefix + "running_var"]
        count = self._buffers[prefix + "num_batches_tracked"]
        assert running_mean is not None and running_var is not None and count is not None
        count.add_(1)
        factor: float | Tensor
        if self.momentum is None:
            factor = count.to(running_mean.dtype).reciprocal()  # a tensor: no host synchronization
        else:
            factor = self.momentum
        running_mean.lerp_(mean.to(running_mean.dtype), factor)
        running_var.lerp_(unbiased_var.to(running_var.dtype), factor)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eval_domain={self._eval_domain}"


def _transnorms(model: nn.Module) -> list[TransNorm2d]:
    return [m for m in model.modules() if isinstance(m, TransNorm2d)]


@contextlib.contextmanager
def domain_split(model: nn.Module, n_source: int | None) -> Iterator[int]:
    """Within the block every :class:`TransNorm2d` of ``model`` takes ``n_source`` rows as source.

    For a joint batch ``cat([source, target])`` pass ``len(source)``; ``None`` means equal halves.
    Each layer's previous value comes back on leaving, also after an exception, so blocks nest.

    Args:
        model: The network (or one layer).
        n_source: Source rows at the head of every training batch, at least 1.

    Yields:
        The number of TransNorm2d layers set (0: the model has none).

    Raises:
        TypeError: ``n_source`` is not an int or None.
        ValueError: ``n_source`` < 1.
    """
    if n_source is not None:
        if isinstance(n_source, bool) or not isinstance(n_source, int):
            raise TypeError(f"n_source must be an int or None, got {type(n_source).__name__}")
        if n_source < 1:
            raise ValueError(f"n_source must be at least 1, got {n_source}")
    layers = _transnorms(model)
    previous = [layer.source_size for layer in layers]
    try:
        for layer in layers:
            layer.source_size = n_source
        yield len(layers)
    finally:
        for layer, value in zip(layers, previous):
            layer.source_size = value


@contextlib.contextmanager
def eval_statistics(model: nn.Module, domain: Domain) -> Iterator[int]:
    """Within the block every :class:`TransNorm2d` of ``model`` normalizes with ``domain``'s statistics in eval.

    The default is the target's (the official code's test setting); use ``"source"`` to evaluate
    source data. ``α`` uses both domains' statistics either way. Previous values come back on
    leaving, also after an exception.

    AdaBN-style recalibration (:func:`dabin.nn.recalibrate.recalibrate_norm_stats`, population
    estimate) writes ``running_mean``/``running_var`` and runs the model in eval mode, so for
    target batches exchange the buffers and normalize with what is then in the source slots::

        with target_stats(model), eval_statistics(model, "source"):
            recalibrate_norm_stats(model, target_batches)

    (for source batches: ``with eval_statistics(model, "source")`` alone). The train-mode
    ``shuffled_batch_average`` estimate does not fit TransNorm: in train mode the layer splits
    each batch into two domains.

    Args:
        model: The network (or one layer).
        domain: ``"target"`` or ``"source"``.

    Yields:
        The number of TransNorm2d layers set.

    Raises:
        ValueError: Unknown ``domain``.
    """
    if domain not in _DOMAINS:
        raise ValueError(f"domain must be one of {', '.join(_DOMAINS)}, got {domain!r}")
    layers = _transnorms(model)
    previous = [layer.eval_domain for layer in layers]
    try:
        for layer in layers:
            layer.eval_domain = domain
        yield len(layers)
    finally:
        for layer, value in zip(layers, previous):
            layer.eval_domain = value
