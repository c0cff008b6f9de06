"""One ``norm`` switch for every model: BN, IN, BN+IN or BIN (the paper's Figure 1 baselines)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import nn

from dabin.errors import DabinError
from dabin.nn.bin import (
    BatchInstanceNorm1d,
    BatchInstanceNorm2d,
    BatchInstanceNorm3d,
    _BatchInstanceNorm,
)

__all__ = ["NORMS", "NormName", "check_norm", "convert_layer", "convert_norm", "norm_layer"]

NormName = Literal["bn", "in", "bnin", "bin"]
#: ``bn``: BatchNorm (ρ = 1); ``in``: ρ fixed 0; ``bnin``: ρ fixed 0.5; ``bin``: ρ learned.
NORMS: tuple[str, ...] = get_args(NormName)

_FIXED_GATES: dict[str, float] = {"in": 0.0, "bnin": 0.5}
_BY_RANK: tuple[tuple[type[nn.modules.batchnorm._BatchNorm], type[nn.Module], type[_BatchInstanceNorm]], ...] = (
    (nn.BatchNorm1d, nn.BatchNorm1d, BatchInstanceNorm1d),
    (nn.BatchNorm2d, nn.BatchNorm2d, BatchInstanceNorm2d),
    (nn.BatchNorm3d, nn.BatchNorm3d, BatchInstanceNorm3d),
)


def check_norm(norm: str) -> NormName:
    """Return ``norm`` if it is a known name, else raise a one-line :class:`DabinError`."""
    if norm not in NORMS:
        raise DabinError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
    return norm  # type: ignore[return-value]


def norm_layer(norm: NormName, dim: int = 2) -> Callable[[int], nn.Module]:
    """A ``norm_layer(num_features)`` factory for models that take one (e.g. torchvision's ResNet).

    Args:
        norm: ``bn``, ``in``, ``bnin`` or ``bin``.
        dim: 1, 2 or 3, the BatchNorm rank to build.

    Returns:
        A callable building one normalization layer.
    """
    check_norm(norm)
    if dim not in (1, 2, 3):
        raise DabinError(f"unknown norm dimension {dim!r}; expected 1, 2 or 3")
    _, bn_class, bin_class = _BY_RANK[dim - 1]
    if norm == "bn":
        return bn_class
    if norm == "bin":
        return bin_class
    return functools.partial(bin_class, gate_init=_FIXED_GATES[norm], learn_gate=False)


def convert_layer(layer: nn.Module, norm: NormName) -> nn.Module:
    """Build the ``norm`` counterpart of one BatchNorm (or BIN) layer, computing the same thing.

    Affine weights, running statistics and ``num_batches_tracked`` are copied; a learned gate is
    copied when converting BIN to BIN; device, dtype, train/eval mode and ``requires_grad`` are
    kept. With ``norm="bin"`` the new gate is 1, so the output is exactly the old one.

    Args:
        layer: An ``nn.BatchNorm1d/2d/3d`` (or a BIN layer).
        norm: Target normalization.

    Returns:
        The new layer (``layer`` itself is left untouched).

    Raises:
        DabinError: ``layer`` is not a BatchNorm layer, or ``norm`` is unknown.
    """
    check_norm(norm)
    for bn_rank_class, bn_class, bin_class in _BY_RANK:
        if isinstance(layer, bn_rank_class):
            break
    else:
        raise DabinError(
            f"expected a BatchNorm1d/2d/3d layer to convert, got {type(layer).__name__}"
        )
    common = dict(
        num_features=layer.num_features,
        eps=layer.eps,
        momentum=layer.momentum,
        affine=layer.affine,
        track_running_stats=layer.track_running_stats,
    )
    factory = {"device": _device_of(layer), "dtype": _dtype_of(layer)}
    if norm == "bn":
        new: nn.Module = bn_class(**common, **factory)
    else:
        gate_init = _FIXED_GATES.get(norm, 1.0)
        new = bin_class(**common, gate_init=gate_init, learn_gate=norm == "bin", **factory)
    with torch.no_grad():
        if layer.affine:
            new.weight.copy_(layer.weight)
            new.bias.copy_(layer.bias)
            new.weight.requires_grad_(layer.weight.requires_grad)
            new.bias.requires_grad_(layer.bias.requires_grad)
        if layer.track_running_stats:
            new.running_mean.copy_(layer.running_mean)
            new.running_var.copy_(layer.running_var)
            new.num_batches_tracked.copy_(layer.num_batches_tracked)
        if norm == "bin" and isinstance(layer, _BatchInstanceNorm) and layer.learn_gate:
            new.gate.copy_(layer.gate)
            new.gate.requires_grad_(layer.gate.requires_grad)
    new.train(layer.training)
    return new


def convert_norm(module: nn.Module, norm: NormName) -> nn.Module:
    """Replace every BatchNorm1d/2d/3d (or BIN) layer of ``module`` by its ``norm`` counterpart.

    Works on any model (ResNet, ResNeXt, VGG-BN, DenseNet, ...): it walks the module tree the way
    ``timm.layers.convert_sync_batchnorm`` does, in place, and returns the module (or the new
    layer when ``module`` itself is a norm layer). ``norm="bin"`` keeps the model's output exactly
    (every gate starts at 1); ``"in"``/``"bnin"`` change it by design.

    Args:
        module: The model.
        norm: ``bn``, ``in``, ``bnin`` or ``bin``.

    Returns:
        The converted model.

    Raises:
        DabinError: unknown ``norm``, or the model has no BatchNorm layer to convert.
    """
    check_norm(norm)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        return convert_layer(module, norm)
    count = _convert_children(module, norm)
    if count == 0:
        raise DabinError(
            f"no BatchNorm1d/2d/3d layer found in {type(module).__name__} to convert to {norm!r}"
        )
    return module


def _convert_children(module: nn.Module, norm: NormName) -> int:
    count = 0
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            setattr(module, name, convert_layer(child, norm))
            count += 1
        else:
            count += _convert_children(child, norm)
    return count


def _device_of(layer: nn.Module) -> torch.device | None:
    tensor = next(iter(layer.parameters()), None)
    if tensor is None:
        tensor = next(iter(layer.buffers()), None)
    return None if tensor is None else tensor.device


def _dtype_of(layer: nn.Module) -> torch.dtype | None:
    tensor = next(iter(layer.parameters()), None)
    if tensor is None:
        tensor = getattr(layer, "running_mean", None)
    return None if tensor is None else tensor.dtype
