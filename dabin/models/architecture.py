"""The ResNet-18 architecture with a settable width and stem, without weights.

The network alone, below everything that loads weights into it: :func:`dabin.models.resnet18`
builds it and loads weights by name or file, and the maker of the ``embedded`` weights
(:mod:`dabin.models.pretrained`, which that loading calls on) pretrains it.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models import ResNet
from torchvision.models.resnet import BasicBlock

__all__ = ["ResNet18"]


class ResNet18(ResNet):
    """torchvision's ResNet-18 (same modules, names and ``forward``) with a settable stem width.

    ``width=64`` is exactly ``torchvision.models.resnet18``; narrower widths scale every stage
    (w, 2w, 4w, 8w) for quick CPU experiments. ``small_input`` swaps the ImageNet stem (7×7/2 conv
    + max-pool) for a 3×3/1 conv without pooling, so 32-px images do not shrink to 1×1 maps.

    Args:
        width: Channels of the first stage.
        small_input: The 3×3 stride-1 stem without max-pool.
        norm: Builds every normalization layer from its channel count (e.g.
            :func:`dabin.nn.norm_layer`'s).

    Attributes:
        num_features: Width of the pooled features the 1000-way ``fc`` reads (``8 * width``).
    """

    def __init__(self, width: int, small_input: bool, norm: Callable[[int], nn.Module]) -> None:
        nn.Module.__init__(self)  # ResNet.__init__ hard-codes the widths; _make_layer/forward are reused
        self._norm_layer = norm
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
        if small_input:
            self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(BasicBlock, width, 2)
        self.layer2 = self._make_layer(BasicBlock, 2 * width, 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, 4 * width, 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, 8 * width, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = 8 * width
        self.fc: nn.Module = nn.Linear(self.num_features, 1000)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
