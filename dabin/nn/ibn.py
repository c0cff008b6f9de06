"""Instance-Batch Normalization, IBN-Net-a's layer (Pan, Luo, Shi & Tang, ECCV 2018).

"Two at Once: Enhancing Learning and Generalization Capacities via IBN-Net", arXiv:1807.09441.
IBN-Net puts Instance Normalization (IN) beside Batch Normalization (BN) in the shallow part of a
network: IN removes per-image appearance (colour, style, contrast), BN keeps the content
information that tells classes apart. IBN-a's layer normalizes part of the channels of one
activation with IN and the rest with BN.

Layout, as the official code has it (github.com/XingangPan/IBN-Net at commit d167338,
``ibnnet/modules.py``, class ``IBN``): over ``C`` channels, ``half = int(C * ratio)`` (ratio 0.5,
rounded down) channels come **first** and are instance-normalized with a learned affine
(``InstanceNorm2d(half, affine=True)``: no running statistics, so instance statistics in eval
too); the remaining ``C - half`` channels are batch-normalized (``BatchNorm2d(C - half)``: running
statistics in eval). :class:`IBN` computes exactly that but holds BatchNorm's own parameters and
buffers over all ``C`` channels instead of two submodules, so a BatchNorm2d state dict of the same
layer loads into it strictly, which is what starting IBN-Net from published BN weights needs.
:func:`official_ibn_state_dict` converts the official checkpoints' ``IN.*``/``BN.*`` keys.
Where the network puts these layers: :class:`dabin.models.architecture.ResNet18` (``ibn="a"``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dabin.errors import DabinError
from dabin.nn.functional import batch_instance_norm
from dabin.nn.group import GroupSynced

__all__ = ["IBN", "official_ibn_state_dict"]

_IN_WEIGHT = "IN.weight"
_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class IBN(nn.BatchNorm2d, GroupSynced):
    """IBN-a's Instance-Batch Normalization over ``(N, C, H, W)``: IN on the first channels, BN on the rest.

    With ``half = int(num_features * ratio)``:

    * channels ``[0, half)``: instance normalization (statistics of each sample's ``H × W`` map,
      in train and eval mode alike) followed by the affine map ``weight[:half]``, ``bias[:half]``;
    * channels ``[half, C)``: batch normalization with ``weight[half:]``, ``bias[half:]`` and the
      running statistics ``running_mean[half:]``, ``running_var[half:]`` (batch statistics in
      training, running ones in eval, exactly as :class:`torch.nn.BatchNorm2d`, ``momentum=None``
      included).

    ``weight``, ``bias``, ``running_mean``, ``running_var`` and ``num_batches_tracked`` are
    BatchNorm's, over all ``C`` channels, so ``isinstance(layer, nn.BatchNorm2d)`` holds and a
    BatchNorm2d state dict of ``C`` channels loads strictly. The running statistics of the IN
    channels, ``running_mean[:half]`` and ``running_var[:half]``, are kept (at their initial or
    loaded values) but never read nor updated; ``num_batches_tracked`` counts the BN part's
    training steps. At construction ``weight`` is 1 and ``bias`` 0, as the official code sets them.

    Where this differs from the official ``IBN`` module (``ibnnet/modules.py``): the official one
    holds two submodules, ``IN`` (``half`` channels) and ``BN`` (``C - half``), hence other state
    dict keys (:func:`official_ibn_state_dict` maps them); and it splits with
    ``torch.split(x, half, 1)``, chunks of ``half`` channels, which only works when
    ``C - half <= half`` (an odd ``C`` at ratio 0.5 makes a third chunk and fails), where this
    layer splits at ``half`` for any ``C``.

    How it is computed: IBN is Batch-Instance Normalization (:func:`dabin.nn.batch_instance_norm`,
    eq. (3) of Nam & Kim) with the gate fixed at ``ρ = 0`` on the IN channels and ``ρ = 1`` on the
    BN channels, ``y = γ·(ρ·x̂_B + (1 − ρ)·x̂_I) + β``. That function gets every channel's instance
    statistics from one reading of ``x`` (a sum and a vector norm, ``σ²_I = E[x²] − E[x]²``), the
    BN channels' batch statistics from them by the law of total variance (no second pass)::

        μ_B[c] = mean_n μ_I[n, c],    σ²_B[c] = mean_n σ²_I[n, c] + mean_n (μ_I[n, c] − μ_B[c])²

    and writes ``y = a[n, c]·x + b[n, c]`` in one fused pass, with a closed-form backward (two
    per-``(n, c)`` sums, ``Σ g`` and ``Σ g·x``, then one pass for the input gradient); contiguous
    float32 CPU input runs it as ``torch.compile``-d kernels (:mod:`dabin.nn.compiled`). Training
    (forward and backward) costs 0.5–0.8× BatchNorm2d at the ResNet-18 shapes of
    ``experiments/bench_norms.py`` (one CPU thread), where normalizing each part and concatenating,
    with full-size copies, cost about 2×, and letting autograd differentiate the same fused
    forward through its small ``(N, C)`` statistics 1.3–1.9×: the closed-form backward is what
    gets it under BatchNorm. The numbers are those of ``F.instance_norm`` and
    ``F.batch_norm`` up to float32 rounding and the cancellation of ``E[x²] − E[x]²``: a relative
    error in the variance of up to about ``5·ε_float32·(1 + μ²/σ²)`` (1e-6 where the mean is about
    the spread, 7e-5 at 10× the spread), below ``eps`` for activations of unit scale; float64
    input agrees with the official code to 1e-12. Statistics are float32 for bf16/fp16
    input with float32 parameters (the running statistics stay float32); the running statistics
    are updated as BatchNorm does (the unbiased batch variance, ``N·H·W/(N·H·W − 1)`` times the
    biased one). ``ratio`` 0 and 1 run ``F.batch_norm`` and ``F.instance_norm`` themselves. The
    output keeps the input's memory format (e.g. channels_last).

    Args:
        num_features: ``C``.
        ratio: Fraction of the channels that are instance-normalized (0.5 in IBN-Net); the count
            is rounded down.
        eps: Added to both variances.
        momentum: The BN part's running-statistics factor (``None``: cumulative average).
        affine: Learn ``weight`` and ``bias`` (IBN-Net always does).
        track_running_stats: Keep running statistics for the BN part (otherwise batch statistics
            in eval too).
        device: Where to allocate the parameters and buffers.
        dtype: Their dtype.

    Attributes:
        ratio: As given.
        half: Number of instance-normalized channels, the first ones.

    Raises:
        DabinError: ``ratio`` outside ``[0, 1]``.
    """

    def __init__(
        self,
        num_features: int,
        ratio: float = 0.5,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise DabinError(f"IBN ratio must lie in [0, 1] (the fraction of channels under IN), got {ratio}")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.ratio = float(ratio)
        self.half = int(num_features * ratio)

    def forward(self, input: Tensor) -> Tensor:
        """Normalize the first ``half`` channels per instance and the others per batch.

        Args:
            input: ``(N, C, H, W)``; any floating dtype, any memory format.

        Returns:
            The normalized tensor, same shape, dtype and memory format.

        Raises:
            ValueError: As :func:`torch.nn.functional.instance_norm` and
                :func:`~torch.nn.functional.batch_norm` do: IN channels on ``1 × 1`` maps, or
                batch statistics of a single value per channel.
        """
        self._check_input_dim(input)
        # Running-statistics bookkeeping mirrors nn.modules.batchnorm._BatchNorm.forward.
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep_running = not self.training or self.track_running_stats
        running_mean = self.running_mean if keep_running else None
        running_var = self.running_var if keep_running else None
        half, channels = self.half, self.num_features
        # Synchronized (dabin.nn.convert_sync_norm, in a distributed run): the BN channels' batch
        # statistics over every process's batch, through BIN's synchronized kernel.
        group = self.batch_group() if use_batch_stats else None
        # ratio 0 and 1 are BatchNorm and InstanceNorm themselves: their own kernels, bit for bit.
        if half == 0 and group is None:
            return F.batch_norm(input, running_mean, running_var, self.weight, self.bias, use_batch_stats,
                                momentum, self.eps)
        if half == channels:
            return F.instance_norm(input, None, None, self.weight, self.bias, True, 0.0, self.eps)
        if half and input.shape[2] * input.shape[3] == 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input size {input.size()}")
        gate = _gate(channels, half, _stats_dtype(self.weight, input), input.device)
        if running_mean is None or running_var is None:
            return batch_instance_norm(input, None, None, self.weight, self.bias, gate, use_batch_stats,
                                       momentum, self.eps, process_group=group)
        # The IN channels' running statistics are never read nor updated: BIN is handed copies
        # whose IN part is BatchNorm's initial (0, 1) and only its BN part is written back, so
        # whatever those entries hold (a loaded checkpoint's, even inf or NaN) cannot leak in
        # through the ρ = 0 channels' 0·(1/σ_B) coefficients.
        mean_arg = torch.cat([running_mean.new_zeros(half), running_mean[half:]])
        var_arg = torch.cat([running_var.new_ones(half), running_var[half:]])
        out = batch_instance_norm(input, mean_arg, var_arg, self.weight, self.bias, gate, use_batch_stats,
                                  momentum, self.eps, process_group=group)
        if use_batch_stats:
            running_mean[half:].copy_(mean_arg[half:])
            running_var[half:].copy_(var_arg[half:])
        return out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ratio={self.ratio:g}, half={self.half}"


def _stats_dtype(weight: Tensor | None, input: Tensor) -> torch.dtype:
    """The dtype of BIN's gate: the parameters' (float32 statistics for half-precision input)."""
    return weight.dtype if weight is not None else torch.promote_types(input.dtype, torch.float32)


def _gate(channels: int, half: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """BIN's gate ``ρ`` that makes eq. (3) IBN: 0 (instance branch) on ``[0, half)``, 1 (batch branch) after.

    Eagerly a cached, read-only constant (building it costs as much per call as the small ops
    that use it); traced (``torch.compile``) it is built in the graph, which the tracer would do
    anyway, bypassing the cache.
    """
    if torch.compiler.is_compiling():
        return _make_gate(channels, half, dtype, device)
    return _cached_gate(channels, half, dtype, device)


def _make_gate(channels: int, half: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    gate = torch.ones(channels, dtype=dtype, device=device)
    gate[:half] = 0.0
    return gate


_cached_gate = functools.lru_cache(maxsize=64)(_make_gate)


def official_ibn_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Map a state dict with the official IBN-Net layout onto :class:`IBN`'s keys.

    The official ``IBN`` module (XingangPan/IBN-Net, ``ibnnet/modules.py``) stores
    ``P.IN.weight``, ``P.IN.bias`` (``half`` channels) and ``P.BN.weight``, ``P.BN.bias``,
    ``P.BN.running_mean``, ``P.BN.running_var``, ``P.BN.num_batches_tracked`` (``C - half``); they
    become ``P.weight`` and ``P.bias`` (IN's entries first, then BN's), ``P.running_mean`` and
    ``P.running_var`` (the IN channels get 0 and 1, BatchNorm's initial values, which IBN never
    reads) and ``P.num_batches_tracked`` (BN's), where ``P.IN.weight`` was. A prefix is converted
    only when it has both an ``IN.weight`` and ``BN.*`` keys, so IBN-b's post-addition
    ``layerX.Y.IN.*`` (a plain InstanceNorm2d, its keys already those of
    :class:`dabin.models.architecture.ResNet18`) and every other key pass through unchanged, in
    their order.

    The split point is read from the tensors (``IN.weight``'s length), which a state dict cannot
    tell the receiving layer: load the result into :class:`IBN` layers whose ``half`` is that
    length (ratio 0.5, as in every published IBN-Net model).

    Args:
        state_dict: E.g. ``torch.load("resnet18_ibn_a-2f571257.pth")``.

    Returns:
        A new dict (the tensors of unconverted keys are the same objects).

    Raises:
        DabinError: A converted prefix lacks one of ``IN.bias``, ``BN.weight``, ``BN.bias``,
            ``BN.running_mean`` or ``BN.running_var``.
    """
    prefixes = []
    for key in state_dict:
        if key == _IN_WEIGHT or key.endswith("." + _IN_WEIGHT):
            prefix = key[: -len(_IN_WEIGHT)]
            if any(f"{prefix}BN.{name}" in state_dict for name in _BN_KEYS):
                prefixes.append(prefix)
    needed = ("IN.bias", "BN.weight", "BN.bias", "BN.running_mean", "BN.running_var")
    lacking = [p + k for p in prefixes for k in needed if p + k not in state_dict]
    if lacking:
        raise DabinError(f"official IBN state dict lacks {', '.join(lacking[:3])}"
                         f"{' and more' if len(lacking) > 3 else ''}")
    converted = {f"{p}{part}.{name}" for p in prefixes for part in ("IN", "BN") for name in _BN_KEYS}
    starts = {p + _IN_WEIGHT: p for p in prefixes}
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key in starts:
            out.update(_merged(state_dict, starts[key]))
        elif key not in converted:
            out[key] = value
    return out


def _merged(state_dict: Mapping[str, Tensor], p: str) -> dict[str, Tensor]:
    """One official IBN's keys (prefix ``p``) as BatchNorm keys over all its channels."""
    in_weight, bn_mean = state_dict[p + "IN.weight"], state_dict[p + "BN.running_mean"]
    half = in_weight.shape[0]
    # An IN with running statistics is not IBN-Net's; if there are some they are kept (unread).
    in_mean = state_dict.get(p + "IN.running_mean", bn_mean.new_zeros(half))
    in_var = state_dict.get(p + "IN.running_var", bn_mean.new_ones(half))
    merged = {
        p + "weight": torch.cat([in_weight, state_dict[p + "BN.weight"].to(in_weight)]),
        p + "bias": torch.cat([state_dict[p + "IN.bias"], state_dict[p + "BN.bias"].to(in_weight)]),
        p + "running_mean": torch.cat([in_mean.to(bn_mean), bn_mean]),
        p + "running_var": torch.cat([in_var.to(bn_mean), state_dict[p + "BN.running_var"].to(bn_mean)]),
    }
    tracked = state_dict.get(p + "BN.num_batches_tracked")
    if tracked is not None:
        merged[p + "num_batches_tracked"] = tracked
    return merged
