"""Batch-Instance Normalization with batch statistics shared across processes (DDP).

:class:`torch.nn.SyncBatchNorm` is BatchNorm only: ``convert_sync_batchnorm`` would turn every BIN
layer (a BatchNorm subclass) into it, dropping the gates, so a BIN run silently became a BN run;
and it runs on GPUs only. :class:`SyncBatchInstanceNorm` shares what BIN's BN branch needs and
nothing else: per channel, the batch mean and variance over all processes (pooled from each
process's ``(count, mean, variance)``, so local batches may differ in size) and, in the backward,
the two batch sums of the input gradient (:mod:`dabin.nn.functional`). The IN branch is per sample
and needs no communication. With ``torch.distributed`` on gloo it works on CPU as well as on CUDA
(NCCL), also for plain BatchNorm layers: BIN with a fixed gate ``ρ = 1`` computes

.. math::

    y = \\gamma\\,\\frac{x - \\mu^B}{\\sqrt{\\sigma^{B\\,2} + \\epsilon}} + \\beta ,

BatchNorm exactly, so :func:`convert_sync_norm` gives them the same synchronization.

:func:`convert_sync_norm` / :func:`revert_sync_norm` swap the layers in place and back, reusing the
very Parameter and buffer objects (as ``convert_sync_batchnorm`` does), and :class:`SyncNorm` is the
Lightning plugin that does so for ``Trainer(sync_batchnorm=True)``. The normalization lab's IBN,
Switchable Norm and TransNorm layers compute their batch statistics themselves; they keep their
class, and the same functions switch their pooling on and off (:mod:`dabin.nn.group`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from pytorch_lightning.plugins.layer_sync import TorchSyncBatchNorm
from torch import Tensor, nn

from dabin.nn.bin import BatchInstanceNorm1d, BatchInstanceNorm2d, BatchInstanceNorm3d, _BatchInstanceNorm
from dabin.nn.group import GroupSynced

if TYPE_CHECKING or dist.is_available():  # at run time too, for tools that read the hints
    from torch.distributed import ProcessGroup

__all__ = ["SyncBatchInstanceNorm", "SyncNorm", "convert_sync_norm", "revert_sync_norm"]

#: Layers :func:`convert_sync_norm` replaces: exactly these classes. Other BatchNorm subclasses
#: (e.g. a norm fused with its activation) may compute more than a normalization and are left alone.
_BATCH_NORMS: tuple[type[nn.modules.batchnorm._BatchNorm], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_BINS: tuple[type[_BatchInstanceNorm], ...] = (BatchInstanceNorm1d, BatchInstanceNorm2d, BatchInstanceNorm3d)


class SyncBatchInstanceNorm(_BatchInstanceNorm):
    """Batch-Instance Normalization, eq. (3), whose BN branch uses the batch of all processes.

    .. math::

        y = \\gamma\\,\\big(\\rho\\,\\hat x^{(B)} + (1-\\rho)\\,\\hat x^{(I)}\\big) + \\beta,

    with ``x̂^(B)`` normalized by the mean and variance of each channel over the union of the
    local batches of ``process_group`` while training, and ``x̂^(I)`` by each sample's own. One
    class serves every rank, like :class:`torch.nn.SyncBatchNorm`. Outside a distributed run
    (``torch.distributed`` not initialized, or one process) and in eval mode it computes exactly
    what the unsynchronized BIN layer does. The state dict is that of a BIN layer (a fixed gate is
    not in it), so checkpoints move freely between the two.

    Args:
        num_features: ``C``.
        eps: Added to both variances.
        momentum: Running-statistics factor (``None``: cumulative average), as in BatchNorm.
        affine: Learn ``γ`` and ``β``.
        track_running_stats: Keep running statistics for the BN branch in eval.
        gate_init: Initial ``ρ`` (1 reproduces BatchNorm exactly).
        learn_gate: ``ρ`` is a trainable parameter; otherwise a fixed buffer.
        process_group: The processes whose batches are pooled; ``None``: all of them (the
            default group).
        device: Device of the parameters and buffers.
        dtype: Their dtype.
    """

    process_group: ProcessGroup | None
    #: The class :func:`convert_sync_norm` replaced by this layer (restored by :func:`revert_sync_norm`).
    replaced_class: type[nn.modules.batchnorm._BatchNorm] | None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        gate_init: float = 1.0,
        learn_gate: bool = True,
        process_group: ProcessGroup | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, gate_init, learn_gate,
                         device, dtype)
        self.process_group = process_group
        self.replaced_class = None

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def _process_group(self) -> ProcessGroup | None:
        """Pool the BN branch's statistics over ``process_group`` (the world by default) in training.

        Every process of the group must call the layer in training mode together (each with a
        non-empty batch); in eval mode nothing is exchanged, so processes may run different
        numbers of evaluation batches, as with :class:`torch.nn.SyncBatchNorm`.
        """
        if self.training and dist.is_available() and dist.is_initialized():
            return self.process_group if self.process_group is not None else dist.group.WORLD
        return None


def convert_sync_norm(module: nn.Module, process_group: ProcessGroup | None = None) -> nn.Module:
    """Replace every BIN and BatchNorm1d/2d/3d layer of ``module`` by a :class:`SyncBatchInstanceNorm`.

    In place, walking the module tree as :func:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`
    does. Each new layer holds the old layer's own Parameter and buffer objects (not copies), so
    references kept elsewhere stay valid and the output is unchanged outside a distributed run.
    A BIN layer keeps its gate (learned or fixed); a BatchNorm layer gets a fixed gate ``ρ = 1``
    (BatchNorm exactly) as a non-persistent buffer, so its state dict keeps BatchNorm's keys.
    Train/eval mode is kept. The lab's layers that pool their own statistics
    (:class:`~dabin.nn.group.GroupSynced`: IBN, Switchable Norm) keep their class and have their
    synchronization switched on. Layers already synchronized, :class:`torch.nn.SyncBatchNorm` and
    other BatchNorm subclasses are left as they are.

    Args:
        module: The model (or a single norm layer).
        process_group: The processes to pool batches over; ``None``: all of them.

    Returns:
        ``module``, or the new layer when ``module`` itself is one to convert.
    """
    if _convertible(module):
        return _to_sync(module, process_group)  # type: ignore[arg-type]
    if isinstance(module, GroupSynced):
        module.synchronized, module.sync_group = True, process_group
    for name, child in module.named_children():
        module.add_module(name, convert_sync_norm(child, process_group))
    return module


def revert_sync_norm(module: nn.Module) -> nn.Module:
    """Undo :func:`convert_sync_norm`: every :class:`SyncBatchInstanceNorm` becomes the class it replaced.

    The restored layers hold the same Parameter and buffer objects and train/eval mode.
    Synchronized layers that :func:`convert_sync_norm` did not make are left as they are.

    Args:
        module: The model (or a single synchronized layer).

    Returns:
        ``module``, or the restored layer when ``module`` itself was synchronized.
    """
    if isinstance(module, SyncBatchInstanceNorm) and module.replaced_class is not None:
        return _from_sync(module)
    if isinstance(module, GroupSynced):
        module.synchronized, module.sync_group = False, None
    for name, child in module.named_children():
        module.add_module(name, revert_sync_norm(child))
    return module


class SyncNorm(TorchSyncBatchNorm):
    """Lightning plugin: ``Trainer(sync_batchnorm=True)`` through :func:`convert_sync_norm`.

    Lightning's own :class:`~pytorch_lightning.plugins.layer_sync.TorchSyncBatchNorm` turns BIN
    layers into :class:`torch.nn.SyncBatchNorm` (dropping the gates; GPUs only). This subclass (a
    subclass so that Lightning accepts it together with ``sync_batchnorm=True``) keeps every BIN
    layer BIN and synchronizes BatchNorm layers too, on CPU (gloo) and CUDA (NCCL)::

        Trainer(strategy="ddp", devices=2, sync_batchnorm=True, plugins=[SyncNorm()])

    Args:
        process_group: The processes to pool batches over; ``None``: all of them.
    """

    def __init__(self, process_group: ProcessGroup | None = None) -> None:
        super().__init__()
        self.process_group = process_group

    def apply(self, model: nn.Module) -> nn.Module:
        """Synchronize every BIN and BatchNorm layer of ``model`` (see :func:`convert_sync_norm`).

        The lab's IBN and Switchable Norm pool their batch statistics themselves
        (:class:`~dabin.nn.group.GroupSynced`). Other BatchNorm subclasses are not synchronized:
        one warning names them, since their batch statistics stay each process's own.

        Warns:
            UserWarning: Naming the layer classes left unsynchronized.
        """
        model = convert_sync_norm(model, self.process_group)
        left = sorted({type(m).__name__ for m in model.modules()
                       if isinstance(m, nn.modules.batchnorm._BatchNorm)
                       and not isinstance(m, (nn.SyncBatchNorm, SyncBatchInstanceNorm, GroupSynced))})
        if left:
            warnings.warn(f"sync_batchnorm: {', '.join(left)} layers are not synchronized; each process "
                          "normalizes them with its own batch's statistics", UserWarning, stacklevel=2)
        return model

    def revert(self, model: nn.Module) -> nn.Module:
        """Restore the layers :meth:`apply` replaced (see :func:`revert_sync_norm`)."""
        return revert_sync_norm(model)


def _convertible(module: nn.Module) -> bool:
    return type(module) in _BATCH_NORMS or type(module) in _BINS


def _to_sync(layer: nn.modules.batchnorm._BatchNorm, process_group: ProcessGroup | None) -> SyncBatchInstanceNorm:
    is_bin = isinstance(layer, _BatchInstanceNorm)
    learn_gate = is_bin and layer.learn_gate
    sync = SyncBatchInstanceNorm(
        layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats,
        learn_gate=learn_gate, process_group=process_group, **_factory(layer),
    )
    _share_state(layer, sync)
    if is_bin:
        # A Parameter stays a Parameter, a (non-persistent) buffer a buffer: the new layer was
        # built with the same kind of gate, and assignment keeps the registration.
        sync.gate = layer.gate
    sync.replaced_class = type(layer)
    return sync


def _from_sync(sync: SyncBatchInstanceNorm) -> nn.Module:
    cls = sync.replaced_class
    assert cls is not None
    common = (sync.num_features, sync.eps, sync.momentum, sync.affine, sync.track_running_stats)
    layer: nn.Module
    if issubclass(cls, _BatchInstanceNorm):
        layer = cls(*common, learn_gate=sync.learn_gate, **_factory(sync))
        layer.gate = sync.gate
    else:
        layer = cls(*common, **_factory(sync))
    _share_state(sync, layer)
    return layer


def _share_state(source: nn.modules.batchnorm._BatchNorm, target: nn.Module) -> None:
    """Make ``target`` hold ``source``'s own parameters and running statistics; copy its mode."""
    if source.affine:
        target.weight = source.weight
        target.bias = source.bias
    if source.track_running_stats:
        target.running_mean = source.running_mean
        target.running_var = source.running_var
        target.num_batches_tracked = source.num_batches_tracked
    # Buffers added beside BatchNorm's own (e.g. per-domain statistics, dabin.nn.domain_stats)
    # travel too, with their persistence.
    for name, buffer in source._buffers.items():
        if name not in target._buffers and name != "gate" and buffer is not None:
            target.register_buffer(name, buffer, persistent=name not in source._non_persistent_buffers_set)
    # Likewise parameters added beside them (a domain-specific BIN layer's target gate).
    for name, parameter in source._parameters.items():
        if name not in target._parameters and parameter is not None:
            target.register_parameter(name, parameter)
    if hasattr(source, "qconfig"):
        target.qconfig = source.qconfig
    target.train(source.training)


def _factory(layer: nn.Module) -> dict[str, Any]:
    """Device and dtype for a layer's replacement (its gate is the one new tensor it may need)."""
    tensor = next(iter(layer.parameters()), None)
    if tensor is None:
        tensor = getattr(layer, "running_mean", None)
    return {} if tensor is None else {"device": tensor.device, "dtype": tensor.dtype}
