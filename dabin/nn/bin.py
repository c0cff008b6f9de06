"""Batch-Instance Normalization layers (Nam & Kim, NeurIPS 2018, Section 3)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dabin.nn.functional import batch_instance_norm

__all__ = ["BatchInstanceNorm1d", "BatchInstanceNorm2d", "BatchInstanceNorm3d"]


class _BatchInstanceNorm(nn.modules.batchnorm._BatchNorm):
    """Shared body of the 1d/2d/3d layers; the subclasses only add the input-rank check.

    Subclassing BatchNorm keeps ``weight``, ``bias``, ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` under BatchNorm's names, so BatchNorm state dicts load as they are and
    code that looks for BatchNorm layers (``isinstance``) still finds these.
    """

    gate: Tensor

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        gate_init: float = 1.0,
        learn_gate: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        gate = torch.full((num_features,), float(gate_init), device=device, dtype=dtype)
        if learn_gate:
            self.gate = nn.Parameter(gate)
        else:
            # A fixed gate is part of the layer's definition (IN, BN+IN), not of its learned state:
            # keep it out of state dicts so loading a BIN checkpoint cannot move it.
            self.register_buffer("gate", gate, persistent=False)

    @property
    def learn_gate(self) -> bool:
        """Whether the gate ``ρ`` is a trainable parameter."""
        return isinstance(self.gate, nn.Parameter)

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
        # A plain BatchNorm state dict has no gate: keep the current one (ρ = 1 computes BN exactly).
        if self.learn_gate and prefix + "gate" not in state_dict:
            state_dict = dict(state_dict)
            state_dict[prefix + "gate"] = self.gate.detach().clone()
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, input: Tensor) -> Tensor:
        """Apply eq. (3): ``y = (ρ·x̂_B + (1 − ρ)·x̂_I)·γ + β``.

        Args:
            input: ``(N, C, *S)``; any memory format, any floating dtype (float32 statistics).

        Returns:
            The normalized tensor, same shape and dtype.
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
        return batch_instance_norm(
            input,
            self.running_mean if keep_running else None,
            self.running_var if keep_running else None,
            self.weight,
            self.bias,
            self.gate,
            use_batch_stats,
            momentum,
            self.eps,
            process_group=self._process_group(),
        )

    def _process_group(self) -> Any:
        """The processes whose batch statistics the BN branch shares (None: this process's batch only).

        The synchronized subclass (:class:`dabin.nn.SyncBatchInstanceNorm`) returns its group.
        """
        return None

    def extra_repr(self) -> str:
        gate = "learned" if self.learn_gate else f"fixed={self.gate[0].item():g}"
        return f"{super().extra_repr()}, gate={gate}"


class BatchInstanceNorm1d(_BatchInstanceNorm, nn.BatchNorm1d):
    """Batch-Instance Normalization over ``(N, C)`` or ``(N, C, L)`` input.

    With ``(N, C)`` input every instance has one value per channel, so the IN term is 0.

    Args:
        num_features: ``C``.
        eps: Added to both variances.
        momentum: Running-statistics factor (``None``: cumulative average), as in BatchNorm.
        affine: Learn ``γ`` and ``β``.
        track_running_stats: Keep running statistics for the BN branch in eval.
        gate_init: Initial ``ρ`` (1 reproduces BatchNorm exactly).
        learn_gate: ``ρ`` is a trainable parameter; otherwise a fixed buffer.
    """


class BatchInstanceNorm2d(_BatchInstanceNorm, nn.BatchNorm2d):
    """Batch-Instance Normalization over ``(N, C, H, W)`` input, eq. (3) of the paper.

    Args:
        num_features: ``C``.
        eps: Added to both variances.
        momentum: Running-statistics factor (``None``: cumulative average), as in BatchNorm.
        affine: Learn ``γ`` and ``β``.
        track_running_stats: Keep running statistics for the BN branch in eval.
        gate_init: Initial ``ρ`` (1 reproduces BatchNorm exactly).
        learn_gate: ``ρ`` is a trainable parameter; otherwise a fixed buffer.
    """


class BatchInstanceNorm3d(_BatchInstanceNorm, nn.BatchNorm3d):
    """Batch-Instance Normalization over ``(N, C, D, H, W)`` input.

    Args:
        num_features: ``C``.
        eps: Added to both variances.
        momentum: Running-statistics factor (``None``: cumulative average), as in BatchNorm.
        affine: Learn ``γ`` and ``β``.
        track_running_stats: Keep running statistics for the BN branch in eval.
        gate_init: Initial ``ρ`` (1 reproduces BatchNorm exactly).
        learn_gate: ``ρ`` is a trainable parameter; otherwise a fixed buffer.
    """
