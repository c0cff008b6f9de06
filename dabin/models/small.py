"""The small backbones of the published digit recipes: LeNet (USPS↔MNIST) and DTN (SVHN→MNIST).

Both follow CDAN's ``pytorch/network.py`` (``thuml/CDAN``, classes ``LeNet`` and ``DTN``) and the
Transfer-Learning-Library's ``tllib/vision/models/digits.py`` (``lenet``, ``dtn``), which define the
same layers; as there, a backbone ends at the feature layer (LeNet 500, DTN 512 features, after
its dropout) and the classifier is the method's.

- **LeNet**, 28×28 input: conv 5×5 (20) → max-pool 2 → ReLU → conv 5×5 (50) → Dropout2d 0.5 →
  max-pool 2 → ReLU → linear 800→500 → ReLU → dropout 0.5. The published network has **no
  normalization layer**, so there is nothing for a norm to replace: LeNet takes ``norm="bn"``
  only (the network as published) and refuses any other norm in one line rather than train the
  same network under another name. Adding norm layers after its convolutions would make an
  architecture none of the recipes reports; for a norm study on digits use DTN.
- **DTN**, 32×32 input: three conv 5×5 stride 2 (64, 128, 256), each followed by BatchNorm2d,
  Dropout2d (0.1, 0.3, 0.5) and ReLU, then linear 4096→512 → BatchNorm1d → ReLU → dropout 0.5.
  The three BatchNorm2d layers become ``norm``'s layer (:func:`dabin.nn.norm_layer`: BIN, IN,
  Switchable Norm, TransNorm, ...), as a ResNet's do. The BatchNorm1d after the linear layer stays
  BatchNorm: instance statistics need spatial positions, and a (B, 512) feature has one value per
  sample and channel (like the BatchNorm1d of dabin's bottleneck). IBN-Net's layouts and MixStyle
  are defined on a ResNet's stages and are refused.

Input has three channels, the gray digits replicated (the exported trees are RGB,
:mod:`datamodules.digits`); the recipes feed LeNet one channel, so its first convolution has
``3 × 20 × 25`` weights instead of ``20 × 25`` (a 3-channel convolution of a replicated gray image
equals a 1-channel one whose kernel is the sum of the three). Initialization is PyTorch's
default, as in both recipes (CDAN initializes only its heads). No pretrained weights are published;
a state-dict file of the same layout loads like any other.
"""

from __future__ import annotations

from torch import Tensor, nn

from dabin.errors import DabinError
from dabin.models.resnet import WeightsArg, is_weights_file, load_weights
from dabin.nn import NORM_SPECS, NormName, check_norm, norm_layer

__all__ = ["DTN", "SMALL_BACKBONES", "LeNet", "build_small"]

#: The small digit backbones by name, with the side of the square input they take.
SMALL_BACKBONES: dict[str, int] = {"lenet": 28, "dtn": 32}


def _check_input(name: str, images: Tensor, side: int) -> None:
    # The flattened size of the last feature map fixes the input size; say so instead of a shape error.
    if images.dim() != 4 or images.shape[-2:] != (side, side):
        raise DabinError(f"{name} takes (B, C, {side}, {side}) images, as its recipes; got {tuple(images.shape)} "
                         f"(set --data.image_size {side})")


class LeNet(nn.Module):
    """CDAN's and tllib's LeNet as a features-only backbone: ``(B, 3, 28, 28) -> (B, 500)``.

    Args:
        in_channels: Input channels (3: gray replicated; the recipes use 1).
        norm: ``"bn"``, the network as published (it has no normalization layer).

    Raises:
        DabinError: Any other norm (see the module docstring).
    """

    def __init__(self, in_channels: int = 3, norm: NormName = "bn") -> None:
        super().__init__()
        if check_norm(norm) != "bn":
            raise DabinError(f"lenet has no normalization layer (CDAN's and tllib's LeNet have none), so norm {norm!r} "
                             "would change nothing; use norm bn with lenet, or backbone dtn, whose BatchNorm layers "
                             "the norm replaces")
        self.num_features = 500
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 20, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(20, 50, kernel_size=5),
            nn.Dropout2d(p=0.5),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(1), nn.Linear(50 * 4 * 4, 500), nn.ReLU(), nn.Dropout(p=0.5))

    def forward(self, images: Tensor) -> Tensor:
        """Features of a batch: ``(B, C, 28, 28) -> (B, 500)``."""
        _check_input("lenet", images, 28)
        return self.head(self.features(images))


class DTN(nn.Module):
    """CDAN's and tllib's DTN as a features-only backbone: ``(B, 3, 32, 32) -> (B, 512)``.

    Args:
        norm: A name of :data:`dabin.nn.NORMS` for the three BatchNorm2d layers (``"bn"``: as published).
        in_channels: Input channels.

    Raises:
        DabinError: Unknown norm, or one that needs a ResNet (``ibn_a``, ``ibn_b``, ``mixstyle``).
    """

    def __init__(self, norm: NormName = "bn", in_channels: int = 3) -> None:
        super().__init__()
        spec = NORM_SPECS[check_norm(norm)]
        if spec.layout or spec.mixstyle:
            raise DabinError(f"norm {norm!r} is defined on a ResNet's stages (layer1-layer3); dtn has three conv "
                             "blocks; use bn, in, bnin, bin, dsbin, switchable or transnorm")
        layer = norm_layer(norm)
        blocks = []
        for (width_in, width_out), dropout in zip(((in_channels, 64), (64, 128), (128, 256)), (0.1, 0.3, 0.5)):
            blocks += [nn.Conv2d(width_in, width_out, kernel_size=5, stride=2, padding=2), layer(width_out),
                       nn.Dropout2d(dropout), nn.ReLU()]
        self.num_features = 512
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Flatten(1), nn.Linear(256 * 4 * 4, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                  nn.Dropout(p=0.5))

    def forward(self, images: Tensor) -> Tensor:
        """Features of a batch: ``(B, C, 32, 32) -> (B, 512)``."""
        _check_input("dtn", images, 32)
        return self.head(self.features(images))


def build_small(name: str, *, norm: NormName, weights: WeightsArg = None,
                small_input: bool = False, width: int = 64) -> nn.Module:
    """A small digit backbone by name, for :func:`dabin.models.build_backbone`.

    Args:
        name: A key of :data:`SMALL_BACKBONES`.
        norm: As for :class:`LeNet` / :class:`DTN`.
        weights: None, or a state-dict file of the same layout (none is published).
        small_input: Must be False (the small-input stem is a ResNet's; these are digit-sized already).
        width: Must be 64 (the ResNet-18 width switch does not apply).

    Returns:
        The backbone, with its ``num_features``.

    Raises:
        DabinError: Unknown name, a refused norm, ``small_input``, another width, or unfitting weights.
    """
    if name not in SMALL_BACKBONES:
        raise DabinError(f"unknown small backbone {name!r}; expected one of {', '.join(SMALL_BACKBONES)}")
    if small_input:
        raise DabinError(f"small_input changes a ResNet's stem; {name} is built for {SMALL_BACKBONES[name]}-px "
                         "digits already")
    if width != 64:
        raise DabinError(f"width={width} is only for resnet18; {name} has its published widths")
    model: nn.Module = LeNet(norm=norm) if name == "lenet" else DTN(norm=norm)
    if weights is not None:
        if not is_weights_file(weights):
            raise DabinError(f"weights {str(weights)!r}: {name} has no published weights; give a state-dict file")
        load_weights(model, weights, arch=name)
    return model
