"""One ``norm`` switch for every model: BN, IN, BN+IN, BIN and the normalizations proposed for domain shift since.

Each name is a :class:`NormSpec` (:data:`NORM_SPECS`): what every BatchNorm becomes, whether the
name also lays out the network (IBN-Net) or inserts MixStyle, and what it needs of the training
(per-domain passes, or source-then-target batches). The layers:

- ``bn``, ``in`` (ρ = 0), ``bnin`` (ρ = 0.5), ``bin`` (ρ learned): Nam & Kim (2018), eq. (3).
- ``dsbin``: BIN with per-domain statistics and gates (:mod:`dabin.nn.domain_stats`).
- ``switchable``: Switchable Normalization (:class:`~dabin.nn.switchable.SwitchNorm2d`).
- ``transnorm``: Transferable Normalization (:class:`~dabin.nn.transnorm.TransNorm2d`).
- ``ibn_a``, ``ibn_b``: IBN-Net's layouts on ResNet (:mod:`dabin.nn.ibn`); BN elsewhere.
- ``mixstyle``: BN, with MixStyle after layer1–3 (:mod:`dabin.nn.mixstyle`), which also composes
  with any other norm.
"""

from __future__ import annotations

import dataclasses
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
from dabin.nn.ibn import IBN
from dabin.nn.switchable import SwitchNorm2d
from dabin.nn.transnorm import TransNorm2d

__all__ = ["NORMS", "NORM_SPECS", "DomainNeed", "NormName", "NormSpec", "check_norm", "convert_layer", "convert_norm",
           "filled_by_layers", "norm_layer"]

NormName = Literal["bn", "in", "bnin", "bin", "dsbin", "switchable", "transnorm", "ibn_a", "ibn_b", "mixstyle"]
#: ``bn``: BatchNorm (ρ = 1); ``in``: ρ fixed 0; ``bnin``: ρ fixed 0.5; ``bin``: ρ learned; then the lab's.
NORMS: tuple[str, ...] = get_args(NormName)
#: What a norm asks of the training: nothing, a pass per domain with per-domain statistics
#: (``domain_specific``), or one batch whose first rows are the source's (``source_then_target``).
DomainNeed = Literal["domain_specific", "source_then_target"]


@dataclasses.dataclass(frozen=True)
class NormSpec:
    """What a ``norm`` name builds and needs.

    Attributes:
        label: The name tables print (``BIN``, ``IBN-a``, ``Switchable Norm``).
        layer: What every BatchNorm2d becomes: ``bn``, ``bin`` (BIN, ``gate`` fixed or learned),
            ``switchable`` or ``transnorm``.
        gate: A fixed BIN gate (``in``: 0, ``bnin``: 0.5); None: learned (``bin``, ``dsbin``).
        layout: IBN-Net's layout of a ResNet (``ibn_a``, ``ibn_b``), else None.
        mixstyle: Whether the name inserts MixStyle after layer1–3 (``mixstyle``).
        domains: What the training must provide (see :data:`DomainNeed`), else None.
    """

    label: str
    layer: Literal["bn", "bin", "switchable", "transnorm"]
    gate: float | None = None
    layout: Literal["ibn_a", "ibn_b"] | None = None
    mixstyle: bool = False
    domains: DomainNeed | None = None


#: The lab's own layer classes, by :attr:`NormSpec.layer`.
_LAB_LAYERS: dict[str, type[nn.BatchNorm2d]] = {"switchable": SwitchNorm2d, "transnorm": TransNorm2d}
#: Layers a conversion leaves as they are.
_LAB_CLASSES: tuple[type[nn.Module], ...] = (SwitchNorm2d, TransNorm2d, IBN)

NORM_SPECS: dict[str, NormSpec] = {
    "bn": NormSpec("BN", "bn"),
    "in": NormSpec("IN", "bin", gate=0.0),
    "bnin": NormSpec("BNIN", "bin", gate=0.5),
    "bin": NormSpec("BIN", "bin"),
    "dsbin": NormSpec("DS-BIN", "bin", domains="domain_specific"),
    "switchable": NormSpec("Switchable Norm", "switchable"),
    "transnorm": NormSpec("TransNorm", "transnorm", domains="source_then_target"),
    "ibn_a": NormSpec("IBN-a", "bn", layout="ibn_a"),
    "ibn_b": NormSpec("IBN-b", "bn", layout="ibn_b"),
    "mixstyle": NormSpec("MixStyle", "bn", mixstyle=True),
}

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

    For ``ibn_a``, ``ibn_b`` and ``mixstyle`` this is BatchNorm: their layout and insertion are
    the builder's (:func:`dabin.models.resnet18`, :func:`dabin.models.build_backbone`).

    Args:
        norm: A name of :data:`NORMS`.
        dim: 1, 2 or 3, the BatchNorm rank to build (``switchable`` and ``transnorm``: 2 only).

    Returns:
        A callable building one normalization layer.
    """
    spec = NORM_SPECS[check_norm(norm)]
    if dim not in (1, 2, 3):
        raise DabinError(f"unknown norm dimension {dim!r}; expected 1, 2 or 3")
    _, bn_class, bin_class = _BY_RANK[dim - 1]
    if spec.layer == "bn":
        return bn_class
    if spec.layer == "bin":
        return bin_class if spec.gate is None else functools.partial(bin_class, gate_init=spec.gate, learn_gate=False)
    if dim != 2:
        raise DabinError(f"norm {norm!r} has a 2d layer only (got dim={dim})")
    return _LAB_LAYERS[spec.layer]


def _lab_layer(layer: nn.modules.batchnorm._BatchNorm, cls: type[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    """A lab layer (``cls``) holding ``layer``'s BatchNorm state, as its own loader takes it."""
    new = cls(layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
              track_running_stats=layer.track_running_stats, device=_device_of(layer), dtype=_dtype_of(layer))
    state = {name: value for name, value in layer.state_dict().items() if name in _BN_STATE}
    # strict=False: what BatchNorm lacks (a switch, the target's statistics) the layer's loader fills.
    new.load_state_dict(state, strict=False)
    if layer.affine:
        new.weight.requires_grad_(layer.weight.requires_grad)
        new.bias.requires_grad_(layer.bias.requires_grad)
    return new


def convert_layer(layer: nn.Module, norm: NormName) -> nn.Module:
    """Build the ``norm`` counterpart of one BatchNorm (or BIN) layer, starting from its state.

    Affine weights, running statistics and ``num_batches_tracked`` are copied; a learned gate is
    copied when converting BIN to BIN; device, dtype, train/eval mode and ``requires_grad`` are
    kept. With ``norm="bin"`` the new gate is 1, so the output is exactly the old one; Switchable
    Norm starts from equal weights of IN, LN and BN (not BN's output), TransNorm from both domains
    holding the layer's statistics. For ``ibn_a``, ``ibn_b`` and ``mixstyle`` a single layer
    becomes BatchNorm (their layout is the network's: :func:`convert_norm`).

    Args:
        layer: An ``nn.BatchNorm1d/2d/3d`` (or a BIN layer).
        norm: Target normalization.

    Returns:
        The new layer (``layer`` itself is left untouched).

    Raises:
        DabinError: ``layer`` is not a BatchNorm or BIN layer (a lab layer is not converted
            again), ``norm`` is unknown, or it has no layer of ``layer``'s rank.
    """
    spec = NORM_SPECS[check_norm(norm)]
    if isinstance(layer, _LAB_CLASSES):
        raise DabinError(f"{type(layer).__name__} is already a {norm_family(layer)} layer; convert_layer converts "
                         "BatchNorm and BIN layers")
    for bn_rank_class, bn_class, bin_class in _BY_RANK:
        if isinstance(layer, bn_rank_class):
            break
    else:
        raise DabinError(
            f"expected a BatchNorm1d/2d/3d layer to convert, got {type(layer).__name__}"
        )
    if spec.layer in _LAB_LAYERS:
        if bn_class is not nn.BatchNorm2d:
            raise DabinError(f"norm {norm!r} has a 2d layer only; got {type(layer).__name__}")
        new_lab = _lab_layer(layer, _LAB_LAYERS[spec.layer])
        new_lab.train(layer.training)
        return new_lab
    common = dict(
        num_features=layer.num_features,
        eps=layer.eps,
        momentum=layer.momentum,
        affine=layer.affine,
        track_running_stats=layer.track_running_stats,
    )
    factory = {"device": _device_of(layer), "dtype": _dtype_of(layer)}
    learned = spec.layer == "bin" and spec.gate is None
    if spec.layer == "bn":
        new: nn.Module = bn_class(**common, **factory)
    else:
        new = bin_class(**common, gate_init=1.0 if spec.gate is None else spec.gate, learn_gate=learned, **factory)
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
        if learned and isinstance(layer, _BatchInstanceNorm) and layer.learn_gate:
            new.gate.copy_(layer.gate)
            new.gate.requires_grad_(layer.gate.requires_grad)
    new.train(layer.training)
    return new


def norm_family(layer: nn.Module) -> str:
    """What kind of lab layer ``layer`` is (``switchable``, ``transnorm``, ``ibn``), for messages."""
    return next((name for name, cls in (*_LAB_LAYERS.items(), ("ibn", IBN)) if isinstance(layer, cls)), "norm")


#: The ResNet blocks whose first norm IBN-a makes an IBN (Pan et al., 2018; the official resnet_ibn_a).
_IBN_A_STAGES = ("layer1", "layer2", "layer3")


def convert_norm(module: nn.Module, norm: NormName) -> nn.Module:
    """Replace every BatchNorm1d/2d/3d (or BIN) layer of ``module`` by its ``norm`` counterpart.

    Works on any model (ResNet, ResNeXt, VGG-BN, DenseNet, ...): it walks the module tree the way
    ``timm.layers.convert_sync_batchnorm`` does, in place, and returns the module (or the new
    layer when ``module`` itself is a norm layer). ``norm="bin"`` keeps the model's output exactly
    (every gate starts at 1); ``"in"``/``"bnin"`` change it by design. Lab layers already in the
    model (Switchable Norm, TransNorm, IBN) are left as they are.

    ``ibn_a`` needs a torchvision-style ResNet (``layer1``–``layer3`` of blocks with a ``bn1``):
    their first norm becomes an :class:`~dabin.nn.ibn.IBN`, every other one BatchNorm.
    ``mixstyle`` makes every norm BatchNorm and inserts MixStyle after ``layer1``–``layer3``.
    ``ibn_b`` adds layers (an InstanceNorm after the residual additions), which a conversion
    cannot: build it with :func:`dabin.models.resnet18`.

    Args:
        module: The model.
        norm: A name of :data:`NORMS`.

    Returns:
        The converted model.

    Raises:
        DabinError: unknown ``norm``, the model has no BatchNorm layer to convert, ``ibn_b``, or
            ``ibn_a``/``mixstyle`` on a model without ``layer1``–``layer3``.
    """
    spec = NORM_SPECS[check_norm(norm)]
    if spec.layout == "ibn_b":
        raise DabinError("norm 'ibn_b' adds an InstanceNorm after the residual additions of layer1-2, which a "
                         "conversion cannot; build the model with dabin.models.resnet18(norm='ibn_b')")
    if isinstance(module, _CONVERTIBLE):
        return convert_layer(module, norm)
    if spec.layout == "ibn_a" or spec.mixstyle:
        missing = [name for name in _IBN_A_STAGES if not isinstance(getattr(module, name, None), nn.Module)]
        if missing:
            raise DabinError(f"norm {norm!r} needs a ResNet with layer1-layer3; {type(module).__name__} has no "
                             f"{', '.join(missing)}")
    count = _convert_children(module, norm)
    if count == 0:
        raise DabinError(
            f"no BatchNorm1d/2d/3d layer found in {type(module).__name__} to convert to {norm!r}"
        )
    if spec.layout == "ibn_a":
        for stage in _IBN_A_STAGES:
            for block in getattr(module, stage).children():
                if isinstance(block.bn1, nn.BatchNorm2d) and not isinstance(block.bn1, _LAB_CLASSES):
                    block.bn1 = _ibn(block.bn1)
    if spec.mixstyle:
        from dabin.nn.mixstyle import insert_mixstyle

        insert_mixstyle(module)
    return module


#: What a BatchNorm's state dict holds.
_BN_STATE = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def filled_by_layers(model: nn.Module) -> list[str]:
    """The state-dict keys of ``model`` that a BatchNorm checkpoint lacks and the layer fills itself.

    Switchable Norm's switch (kept at its init), TransNorm's target statistics (copied from the
    loaded source ones): what :func:`dabin.models.load_weights` lets a BN checkpoint leave out.
    """
    return [f"{name}.{key}" for name, module in model.named_modules() if isinstance(module, tuple(_LAB_LAYERS.values()))
            for key in module.state_dict() if key not in _BN_STATE]


def _ibn(layer: nn.BatchNorm2d) -> nn.Module:
    """IBN-a's norm for a block's first BatchNorm, holding its state (the IN half takes its affine)."""
    new = _lab_layer(layer, IBN)
    new.train(layer.training)
    return new


#: Layers the conversion replaces: BatchNorm of any rank and BIN, not the lab's subclasses.
_CONVERTIBLE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _convert_children(module: nn.Module, norm: NormName) -> int:
    count = 0
    for name, child in module.named_children():
        if isinstance(child, _LAB_CLASSES):
            continue
        if isinstance(child, _CONVERTIBLE):
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
