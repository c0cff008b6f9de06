"""Batch statistics over the processes of a distributed run, for the lab's norm layers.

BIN and BatchNorm are synchronized by swapping in :class:`~dabin.nn.sync.SyncBatchInstanceNorm`.
The lab's layers that compute batch statistics of their own (IBN-a's BN channels, Switchable
Norm's BN statistics, TransNorm's per-domain statistics) keep their class instead and derive from
:class:`GroupSynced`: :func:`~dabin.nn.sync.convert_sync_norm` switches their synchronization on
(``synchronized``, ``sync_group``), and in training :meth:`GroupSynced.batch_group` hands them the
group whose batches they pool.

:func:`group_moments` pools per-row statistics over the group. Each row (a sample's map, or a
sample of one domain) contributes equally many values, so by the law of total variance the
group's mean and biased variance of a channel over ``R`` rows are

.. math::

    \\mu = \\frac{1}{R}\\sum_r \\mu_r, \\qquad
    \\sigma^2 = \\frac{1}{R}\\sum_r \\big(\\sigma_r^2 + (\\mu_r - \\mu)^2\\big),

two sums over every process's rows (two all-reduces: the second centres on the pooled mean, so
there is no ``E[x²] − E[x]²`` cancellation). The backward of each all-reduced sum all-reduces its
gradient: each process's input gradient then includes what its rows did to every other process's
output, as the single-process layer on the whole batch gives (``torch.distributed.nn``'s
differentiable all-reduce does the same, and is deprecated).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor

if TYPE_CHECKING or dist.is_available():  # at run time too, for tools that read the hints
    from torch.distributed import ProcessGroup

__all__ = ["GroupSynced", "group_moments"]


class GroupSynced:
    """A norm layer whose batch statistics :func:`~dabin.nn.sync.convert_sync_norm` can pool over processes.

    Attributes:
        synchronized: Pool the batch statistics in training (set by ``convert_sync_norm``,
            cleared by ``revert_sync_norm``); plain attributes, not in the state dict.
        sync_group: The processes to pool over; ``None``: all of them.
    """

    synchronized: bool = False
    sync_group: ProcessGroup | None = None
    training: bool

    def batch_group(self) -> ProcessGroup | None:
        """The group to pool this training step's statistics over; None outside a distributed run of several processes."""
        if not (self.synchronized and self.training and dist.is_available() and dist.is_initialized()):
            return None
        group = self.sync_group if self.sync_group is not None else dist.group.WORLD
        return group if dist.get_world_size(group) > 1 else None


def group_moments(mean: Tensor, var: Tensor, group: ProcessGroup) -> tuple[Tensor, Tensor, Tensor]:
    """The group's mean and variance per channel from every process's rows (module docstring).

    Every process of ``group`` must call it together (each with at least one row).

    Args:
        mean: ``(R_k, C)``, each local row's mean.
        var: ``(R_k, C)``, each local row's variance (biased, or whatever the layer pools).
        group: The processes.

    Returns:
        The pooled mean and variance ``(C,)``, differentiable in ``mean`` and ``var`` across the
        group, and the group's row count (a 0-d tensor).
    """
    rows = torch.tensor(float(mean.shape[0]), dtype=mean.dtype, device=mean.device)
    dist.all_reduce(rows, group=group)  # counts carry no gradient
    pooled_mean = _AllReduceSum.apply(mean.sum(0), group) / rows
    pooled_var = _AllReduceSum.apply((var + (mean - pooled_mean).square()).sum(0), group) / rows
    return pooled_mean, pooled_var, rows


class _AllReduceSum(torch.autograd.Function):
    """The sum over the group; its gradient is the sum of every process's gradient of that sum."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: ProcessGroup) -> Tensor:  # type: ignore[override]
        ctx.group = group
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return _AllReduceSum.apply(grad, ctx.group), None
