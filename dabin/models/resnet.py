"""ResNet-18 with an injected normalization (BN, IN, BN+IN or BIN) and flexible weight loading.

The network itself is :class:`dabin.models.architecture.ResNet18`; this module builds it and loads
weights into it: a torchvision name, a file, or ``embedded``, which :mod:`dabin.models.pretrained`
makes (by pretraining that architecture) on first use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import ResNet, get_model_weights

from dabin.errors import DabinError
from dabin.models.architecture import IBNMode, ResNet18
from dabin.models.pretrained import EMBEDDED_WEIGHTS, embedded_weights
from dabin.nn import NORM_SPECS, NormName, check_norm, norm_layer
from dabin.nn.convert import filled_by_layers
from dabin.nn.mixstyle import insert_mixstyle

__all__ = ["WeightsArg", "is_weights_file", "load_weights", "resnet18"]

#: IBN-Net's layouts by norm name (:class:`~dabin.models.architecture.ResNet18`'s ``ibn``).
_IBN_LAYOUTS: dict[str, IBNMode] = {"ibn_a": "a", "ibn_b": "b"}
#: How messages name an architecture.
_ARCH_NAMES = {"resnet18": "ResNet-18"}

#: ``None`` (random init), a torchvision weights name (``"IMAGENET1K_V1"``, ``"DEFAULT"``), ``"embedded"`` or a file.
WeightsArg = str | os.PathLike[str] | None


def resnet18(
    *,
    norm: NormName = "bin",
    weights: WeightsArg = None,
    num_classes: int = 1000,
    small_input: bool = False,
    width: int = 64,
) -> ResNet:
    """ResNet-18 whose every normalization layer is ``norm``.

    Args:
        norm: ``bn``, ``in`` (ρ = 0), ``bnin`` (ρ = 0.5), ``bin`` (ρ learned, starts at 1), or a
            lab norm (:data:`dabin.nn.NORM_SPECS`): ``dsbin`` builds BIN (the training adds the
            per-domain gates), ``switchable``, ``transnorm``, ``ibn_a``/``ibn_b`` (IBN-Net's
            layouts, BN elsewhere; BN weights load into them, IBN-b's new InstanceNorms starting
            as identity-affine), ``mixstyle`` (BN with MixStyle after layer1–3).
        weights: ``None`` for random init; a torchvision weights name (``"IMAGENET1K_V1"`` or
            ``"DEFAULT"``), fetched by torchvision (cached under ``$TORCH_HOME``); ``"embedded"``,
            the demo's offline stand-in (width 8, small input; :mod:`dabin.models.pretrained`); or the path of
            a state dict file (a BN or BIN ResNet-18, optionally wrapped as ``{"state_dict": ...}``;
            torchvision's published files load as distributed, without ``num_batches_tracked``).
            Loaded before the classifier is replaced, so any ``num_classes`` works.
        num_classes: Output classes; ``0`` gives the features-only form, whose output is the
            ``model.num_features``-d pooled feature (512 at width 64), e.g. for DANN.
        small_input: 3×3 stride-1 stem without max-pool for tiny (e.g. 32-px) images. Pretrained
            ``conv1`` weights do not fit it and are left out (a warning says so).
        width: Channels of the first stage (64 is the standard network; torchvision's weights need 64).

    Returns:
        A ``torchvision.models.ResNet`` (``num_features`` attribute added).

    Raises:
        DabinError: unknown ``norm``, unknown weights name, a missing or unfitting weights file, or
            weights that cannot be fetched offline.
    """
    check_norm(norm)
    if width < 1:
        raise DabinError(f"width must be a positive number of channels, got {width}")
    if num_classes < 0:
        raise DabinError(f"num_classes must be >= 0 (0 = features only), got {num_classes}")
    spec = NORM_SPECS[norm]
    model = ResNet18(width, small_input, norm_layer(norm), ibn=_IBN_LAYOUTS.get(spec.layout or ""))
    if weights is not None:
        if width != 64 and not is_weights_file(weights) and os.fspath(weights) != EMBEDDED_WEIGHTS:
            raise DabinError(f"torchvision's weights need width 64, got width={width} with weights={str(weights)!r}")
        load_weights(model, weights, unfitting_stem=small_input)
    if spec.mixstyle:
        insert_mixstyle(model)  # forward hooks: the state dict's keys stay torchvision's
    if num_classes != 1000:
        model.fc = nn.Linear(model.num_features, num_classes) if num_classes else nn.Identity()
    return model


def load_weights(model: nn.Module, weights: str | os.PathLike[str], *, unfitting_stem: bool = False,
                 arch: str = "resnet18") -> None:
    """Load weights by torchvision name or from a file into ``model`` (strictly).

    Args:
        model: A torchvision-layout model (e.g. :func:`resnet18`'s) with its 1000-way ``fc``.
        weights: Torchvision weights name (of ``arch``), ``"embedded"`` (the demo's pretrained
            backbone, :mod:`dabin.models.pretrained`) or state dict path.
        unfitting_stem: The model has the small-input stem: a ``conv1`` of another shape (an
            ImageNet 7×7 stem) is left at its initial values, with a warning.
        arch: torchvision's name of the architecture (``resnet18``, ``resnet50``, ...), for
            weights given by name and for messages.

    Raises:
        DabinError: as described in :func:`resnet18`.
    """
    state = _read_state_dict(weights, arch)
    expected = model.state_dict()
    skip: tuple[str, ...] = ()
    stem = "conv1.weight"
    if unfitting_stem and stem in state and stem in expected and state[stem].shape != expected[stem].shape:
        import warnings

        warnings.warn(f"not loading {stem} from {str(weights)!r}: the small-input stem has another shape",
                      stacklevel=3)
        state = {k: v for k, v in state.items() if k != stem}
        skip = (stem,)
    # The classifier is replaced after loading; one trained for other classes (or none) is not used.
    state = {k: v for k, v in state.items()
             if not k.startswith("fc.") or (k in expected and v.shape == expected[k].shape)}
    skip = (*skip, *(k for k in expected if k.startswith("fc.") and k not in state))
    # torchvision's published files (e.g. resnet18-f37072fd.pth, 2017) predate BatchNorm's
    # num_batches_tracked buffer: when the file has none of them they start at 0, as torch's own
    # BatchNorm loading does for such files. A file with only some of them is still refused.
    tracked = [k for k in expected if k.endswith(".num_batches_tracked")]
    if not any(k in state for k in tracked):
        skip = (*skip, *tracked)
    # IBN-b's InstanceNorms: the stem's takes the BN's affine but keeps no statistics; those after
    # the residual additions are new layers, left identity-affine (weight 1, bias 0) as at init.
    for prefix in _instance_norms(model):
        state = {k: v for k, v in state.items() if not (k.startswith(prefix) and k[len(prefix):] in _STATISTICS)}
        if not any(k.startswith(prefix) for k in state):
            skip = (*skip, *(k for k in expected if k.startswith(prefix)))
    # A lab layer fills from BatchNorm's state what BatchNorm has not (a switch, target statistics).
    skip = (*skip, *filled_by_layers(model))
    # A BIN checkpoint's gates are not part of a BN/IN/BN+IN model; everything else must match.
    state = {k: v for k, v in state.items() if k in expected or not k.endswith(".gate")}
    missing = [k for k in expected if k not in state and k not in skip and not k.endswith(".gate")]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [k for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        parts = [f"{len(keys)} {what} (e.g. {', '.join(keys[:3])})"
                 for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("keys of another shape", wrong_shape)) if keys]
        hint = ""
        if os.fspath(weights) == EMBEDDED_WEIGHTS:
            hint = " (the embedded weights are a small-input ResNet-18 of width 8: --model.width 8 --model.small_input true)"
        raise DabinError(f"weights {str(weights)!r} do not fit a {_ARCH_NAMES.get(arch, arch)}: {'; '.join(parts)}{hint}")
    model.load_state_dict(state, strict=False)


#: A BatchNorm's statistics, which an InstanceNorm taking its place does not keep.
_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def _instance_norms(model: nn.Module) -> list[str]:
    """The state-dict prefixes (``layer1.1.IN.``) of the model's affine InstanceNorm2d layers."""
    return [f"{name}." for name, module in model.named_modules()
            if isinstance(module, nn.InstanceNorm2d) and module.affine and not module.track_running_stats]


def is_weights_file(weights: str | os.PathLike[str]) -> bool:
    """Whether ``weights`` names a file (an existing path, or one that looks like a path) rather than a
    torchvision weights name."""
    text = os.fspath(weights)
    path = Path(text).expanduser()
    return path.exists() or os.sep in text or path.suffix in (".pth", ".pt", ".ckpt", ".bin")


def _read_state_dict(weights: str | os.PathLike[str], arch: str = "resnet18") -> Mapping[str, Tensor]:
    text = os.fspath(weights)
    if text == EMBEDDED_WEIGHTS:
        weights = text = os.fspath(embedded_weights())  # made on first use (about a minute)
    path = Path(text).expanduser()
    if is_weights_file(weights):
        if not path.is_file():
            raise DabinError(f"weights file not found: {text!r}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable file gets the same one-line answer
            raise DabinError(f"cannot read weights file {text!r}: {type(error).__name__}: {error}") from None
        if isinstance(state, Mapping) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
            raise DabinError(f"weights file {text!r} does not hold a state dict of tensors")
        # Tolerate the usual wrappers: DDP's "module.", and a Lightning module's "model." or
        # "backbone." (a dabin DANN checkpoint also holds heads beside its backbone: keep the backbone).
        for prefix in ("module.", "model.", "backbone."):
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
        if any(k.startswith("backbone.") for k in state):
            state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        return dict(state)
    available = get_model_weights(arch)
    names = [w.name for w in available] + ["DEFAULT"]
    name = text.split(".")[-1]  # accept "ResNet18_Weights.IMAGENET1K_V1" as well
    if name not in names:
        raise DabinError(f"unknown weights {text!r}; expected null, a file path or one of {', '.join(names)}")
    enum = available.DEFAULT if name == "DEFAULT" else available[name]
    try:
        return enum.get_state_dict(progress=False)
    except Exception as error:  # noqa: BLE001 - offline, proxy, corrupt cache: all say the same
        raise DabinError(
            f"cannot fetch torchvision weights {enum} ({type(error).__name__}); offline, download "
            f"{enum.url} elsewhere and pass the file: --model.weights /path/to/{enum.url.rsplit('/', 1)[-1]}"
        ) from None
