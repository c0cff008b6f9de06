"""Feature backbones by name: torchvision's ResNet family, or any model by class path, with the norm switch.

The digit recipes' LeNet and DTN (:mod:`dabin.models.small`) are built by name too.

The norm layer is injected the way torchvision's builders take it (``norm_layer=``), so a BIN
ResNet-50 has exactly torchvision's modules and state-dict keys and loads its published weights
as distributed (:func:`~dabin.models.resnet.load_weights`, which also accepts the 2017 files
without BatchNorm's ``num_batches_tracked``). Any other model is given by class path and
converted afterwards (:func:`~dabin.nn.convert_norm`). Either way the classifier is removed and
the width of the features it fed is discovered, so heads can be built on any backbone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
import torchvision
from torch import nn

from dabin.errors import DabinError
from dabin.models.resnet import WeightsArg, is_weights_file, load_weights, resnet18
from dabin.models.small import SMALL_BACKBONES, build_small
from dabin.nn import NORM_SPECS, NormName, check_norm, convert_norm, norm_layer

__all__ = ["RESNETS", "build_backbone"]

#: torchvision's ResNet family, buildable with any norm and loadable with their published weights.
RESNETS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                            "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2")


def build_backbone(name: str, *, norm: NormName = "bin", weights: WeightsArg = None, small_input: bool = False,
                   width: int = 64) -> nn.Module:
    """A features-only backbone: ``(B, 3, H, W) -> (B, num_features)``.

    Args:
        name: A name of :data:`RESNETS`, a small digit backbone (``lenet``, ``dtn``:
            :mod:`dabin.models.small`, the published digit recipes'), or the class path of any
            ``nn.Module`` whose classifier is its ``fc`` (``mypkg.models.Net``, built without arguments).
        norm: A name of :data:`dabin.nn.NORMS` (``ibn_b``: resnet18 only; ``lenet``: ``bn`` only, it
            has no norm layer; ``dtn``: not IBN-Net's or MixStyle's ResNet layouts).
        weights: None, a torchvision weights name of that architecture (``IMAGENET1K_V1``, ...) or a
            state dict file (torchvision's published layout, a dabin checkpoint, ...). Class-path
            models take a file only.
        small_input: 3×3 stride-1 stem without max-pool for tiny (e.g. 32-px) images; the
            pretrained stem weights do not fit it and are left out (a warning says so).
        width: First-stage channels; other than 64 only for ``resnet18`` (quick CPU runs).

    Returns:
        The model with ``fc`` replaced by the identity and a ``num_features`` attribute.

    Raises:
        DabinError: Unknown name or norm, a class path that does not import or build, weights that
            do not fit, or a width other than 64 for a published architecture.
    """
    spec = NORM_SPECS[check_norm(norm)]
    if name in SMALL_BACKBONES:
        return build_small(name, norm=norm, weights=weights, small_input=small_input, width=width)
    if name == "resnet18":
        return resnet18(norm=norm, weights=weights, num_classes=0, small_input=small_input, width=width)
    if name not in RESNETS and "." not in name:
        raise DabinError(f"unknown backbone {name!r}; expected one of {', '.join((*RESNETS, *SMALL_BACKBONES))} "
                         "or a class path (package.module.Class)")
    if width != 64:
        raise DabinError(f"width={width} is only for resnet18; {name} has its published widths")
    if spec.layout == "ibn_b":
        raise DabinError(f"norm 'ibn_b' is built into dabin's resnet18 only (its blocks get an InstanceNorm after the "
                         f"residual addition); got backbone {name!r}")
    if name in RESNETS:
        model: nn.Module = torchvision.models.get_model(name, weights=None, norm_layer=norm_layer(norm))
    else:
        model = _from_class_path(name)
        if weights is not None and not is_weights_file(weights):
            raise DabinError(f"weights {str(weights)!r}: a model given by class path takes a weights file")
    if small_input:
        _small_stem(model, name)
    if weights is not None:  # load_weights warns about a stem it cannot fill
        load_weights(model, weights, unfitting_stem=small_input, arch=name)
    if name not in RESNETS or spec.layout or spec.mixstyle:
        # torchvision builders took the norm layer already; IBN-a's layout and MixStyle come after.
        convert_norm(model, norm)
    return _features_only(model, name)


def _from_class_path(path: str) -> nn.Module:
    module_name, _, class_name = path.rpartition(".")
    try:
        factory: Callable[[], object] = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise DabinError(f"backbone {path!r} cannot be imported ({type(error).__name__}: {error})") from None
    try:
        model = factory()
    except Exception as error:  # noqa: BLE001 - any constructor failure is the user's class path
        raise DabinError(f"backbone {path!r} cannot be built without arguments ({type(error).__name__}: "
                         f"{error})") from None
    if not isinstance(model, nn.Module):
        raise DabinError(f"backbone {path!r} is not a torch.nn.Module (got {type(model).__name__})")
    return model


def _small_stem(model: nn.Module, name: str) -> None:
    conv = getattr(model, "conv1", None)
    if not isinstance(conv, nn.Conv2d) or not hasattr(model, "maxpool"):
        raise DabinError(f"small_input needs a ResNet stem (conv1 and maxpool); {name} has none")
    model.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()


def _features_only(model: nn.Module, name: str) -> nn.Module:
    head = getattr(model, "fc", None)
    if isinstance(head, nn.Linear):
        features = head.in_features
    else:
        # No Linear classifier to read the width from: measure it on a small input.
        model.fc = nn.Identity()
        was_training = model.training
        with torch.no_grad():
            features = int(model.eval()(torch.zeros(2, 3, 64, 64)).flatten(1).shape[1])
        model.train(was_training)
    model.fc = nn.Identity()
    model.num_features = features  # type: ignore[assignment]
    return model
