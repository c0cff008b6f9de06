"""The ResNet-18 architecture with a settable width and stem, without weights, optionally as IBN-Net.

The network alone, below everything that loads weights into it: :func:`dabin.models.resnet18`
builds it and loads weights by name or file, and the maker of the ``embedded`` weights
(:mod:`dabin.models.pretrained`, which that loading calls on) pretrains it.

``ibn="a"`` / ``ibn="b"`` lay it out as IBN-Net's ``resnet18_ibn_a`` / ``resnet18_ibn_b`` (Pan,
Luo, Shi & Tang, ECCV 2018; github.com/XingangPan/IBN-Net at commit d167338,
``ibnnet/resnet_ibn.py``, ``ResNet_IBN`` with ``BasicBlock_IBN``); :class:`ResNet18` gives the
exact layouts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

from torch import Tensor, nn
from torchvision.models import ResNet
from torchvision.models.resnet import BasicBlock, conv1x1

from dabin.errors import DabinError
from dabin.nn.ibn import IBN

__all__ = ["IBN_MODES", "IBNBasicBlock", "IBNMode", "ResNet18"]

IBNMode = Literal["a", "b"]
#: IBN-Net's two designs: ``a`` (IBN in the blocks' first norm), ``b`` (IN after the additions).
IBN_MODES: tuple[str, ...] = get_args(IBNMode)

# The official ibn_cfg of resnet18_ibn_a / resnet18_ibn_b: what each of layer1..layer4 gets.
_STAGE_IBN: dict[str, tuple[IBNMode | None, ...]] = {"a": ("a", "a", "a", None), "b": ("b", "b", None, None)}


def _block_ibn(stage: IBNMode | None, index: int, blocks: int) -> IBNMode | None:
    """What block ``index`` of a stage of ``blocks`` gets, as the official ``ResNet_IBN._make_layer``.

    ``a``: every block; ``b``: only the last block, and never the first (the official code gives
    the first block ``None if ibn == 'b'`` and block ``i >= 1`` ``None if i < blocks - 1``).
    """
    if stage == "b":
        return "b" if 0 < index == blocks - 1 else None
    return stage


class IBNBasicBlock(BasicBlock):
    """torchvision's BasicBlock with IBN-Net's changes, the official ``BasicBlock_IBN``.

    Same modules and names as :class:`~torchvision.models.resnet.BasicBlock` (``conv1``, ``bn1``,
    ``relu``, ``conv2``, ``bn2``, ``downsample``) plus, for ``ibn="b"``, ``IN``:

    * ``ibn="a"``: ``bn1`` (the norm after the first 3×3 conv, on the residual path) is
      ``ibn_norm(planes)``, an :class:`~dabin.nn.ibn.IBN` by default; ``bn2`` and the downsample
      norm stay ``norm_layer``'s.
    * ``ibn="b"``: ``IN = nn.InstanceNorm2d(planes, affine=True)`` (weight 1, bias 0, no running
      statistics) normalizes ``out + identity``, before the final ReLU:
      ``relu(IN(bn2(conv2(relu(bn1(conv1(x))))) + identity))``.
    * ``ibn=None``: ``IN`` is ``None`` and the block computes BasicBlock's function.

    The attribute name ``IN`` is the official one, so state dict keys match the official
    checkpoints (``layer1.1.IN.weight``, ...).

    Args:
        inplanes: Input channels.
        planes: Output channels.
        stride: Stride of ``conv1`` (and of the downsample, which the caller builds).
        downsample: Maps the input to the output's shape on the identity path, or ``None``.
        groups: Must be 1 (BasicBlock's rule).
        base_width: Must be 64 (BasicBlock's rule).
        dilation: Must be 1 (BasicBlock's rule).
        norm_layer: Builds ``bn1`` and ``bn2`` from a channel count (``bn1`` only without ``a``).
        ibn: ``a``, ``b`` or ``None``, as above.
        ibn_norm: Builds IBN-a's ``bn1`` from ``planes``.
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Callable[[int], nn.Module] | None = None,
        *,
        ibn: IBNMode | None = None,
        ibn_norm: Callable[[int], nn.Module] = IBN,
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, dilation, norm_layer)
        if ibn == "a":
            self.bn1 = ibn_norm(planes)
        self.IN: nn.Module | None = nn.InstanceNorm2d(planes, affine=True) if ibn == "b" else None
        if self.IN is not None:
            nn.init.ones_(self.IN.weight)
            nn.init.zeros_(self.IN.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``relu([IN](bn2(conv2(relu(bn1(conv1(x))))) + identity))``, ``IN`` only with ``ibn="b"``."""
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


class ResNet18(ResNet):
    """torchvision's ResNet-18 (same modules, names and ``forward``) with a settable stem width.

    ``width=64`` is exactly ``torchvision.models.resnet18``; narrower widths scale every stage
    (w, 2w, 4w, 8w) for quick CPU experiments. ``small_input`` swaps the ImageNet stem (7×7/2 conv
    + max-pool) for a 3×3/1 conv without pooling, so 32-px images do not shrink to 1×1 maps.

    ``ibn`` lays the network out as IBN-Net's official ``resnet18_ibn_a`` / ``resnet18_ibn_b``
    (``ibnnet/resnet_ibn.py``; each stage has two blocks, ``layerS.0`` and ``layerS.1``):

    * ``None``: the network above, module for module (every block a plain ``BasicBlock``).
    * ``"a"`` (``ibn_cfg=('a', 'a', 'a', None)``): ``bn1`` of every block of ``layer1``,
      ``layer2`` and ``layer3`` is ``ibn_norm(planes)`` (an :class:`~dabin.nn.ibn.IBN`, half
      the channels IN, by default): ``layer1.0.bn1``, ``layer1.1.bn1``, ``layer2.0.bn1``,
      ``layer2.1.bn1``, ``layer3.0.bn1``, ``layer3.1.bn1``; ``layer4`` and every other norm (the
      stem's ``bn1``, each ``bn2``, the downsample norms) are ``norm``'s. Same state dict keys and
      shapes as ``ibn=None``: a BN ResNet-18 state dict loads strictly.
    * ``"b"`` (``ibn_cfg=('b', 'b', None, None)``): the stem's ``bn1`` is
      ``nn.InstanceNorm2d(width, affine=True)``, and the last block of ``layer1`` and of
      ``layer2`` gets ``IN = nn.InstanceNorm2d(planes, affine=True)`` after its residual
      addition, before the ReLU (:class:`IBNBasicBlock`): ``layer1.1.IN``, ``layer2.1.IN``. Not
      the first block of a stage, nor ``layer3``/``layer4``; every other norm is ``norm``'s.
      Against a BN ResNet-18 state dict, its state dict lacks ``bn1.running_mean``,
      ``bn1.running_var``, ``bn1.num_batches_tracked`` (IN keeps no statistics; ``bn1.weight``
      and ``bn1.bias`` are IN's affine and load) and adds ``layer1.1.IN.weight``,
      ``layer1.1.IN.bias``, ``layer2.1.IN.weight``, ``layer2.1.IN.bias``: loading BN weights
      must drop those three and allow exactly these four missing.

    The IN layers start at weight 1 and bias 0, the convolutions are drawn as for ``ibn=None``
    (the same draws in the same order: one seed gives the same convolution weights in all three
    layouts), as the official code initializes them (its ``normal_(0, sqrt(2 / n))`` with
    ``n = k·k·out_channels`` is ``kaiming_normal_(mode="fan_out")``). Unlike the official
    ``ResNet_IBN``, the pooling stays torchvision's adaptive one (the official ``AvgPool2d(7)``
    fits 224-px input only), and IBN-a's layers are one BatchNorm2d subclass rather than
    ``IN``/``BN`` submodules: official checkpoints load after
    :func:`dabin.nn.ibn.official_ibn_state_dict`.

    Args:
        width: Channels of the first stage.
        small_input: The 3×3 stride-1 stem without max-pool.
        norm: Builds every normalization layer from its channel count (e.g.
            :func:`dabin.nn.norm_layer`'s), except the IBN/IN layers that ``ibn`` puts in.
        ibn: ``None``, ``"a"`` or ``"b"``, the layout above.
        ibn_norm: Builds IBN-a's layers from their channel count (e.g.
            ``functools.partial(IBN, ratio=0.25)``); unused unless ``ibn="a"``.

    Attributes:
        num_features: Width of the pooled features the 1000-way ``fc`` reads (``8 * width``).

    Raises:
        DabinError: ``ibn`` is not ``None``, ``"a"`` or ``"b"``.
    """

    def __init__(
        self,
        width: int,
        small_input: bool,
        norm: Callable[[int], nn.Module],
        *,
        ibn: IBNMode | None = None,
        ibn_norm: Callable[[int], nn.Module] = IBN,
    ) -> None:
        if ibn is not None and ibn not in IBN_MODES:
            raise DabinError(f"unknown ibn {ibn!r}; expected null, {' or '.join(IBN_MODES)}")
        nn.Module.__init__(self)  # ResNet.__init__ hard-codes the widths; _make_layer/forward are reused
        self._norm_layer = norm
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
        if small_input:
            self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.InstanceNorm2d(width, affine=True) if ibn == "b" else norm(width)
        self.relu = nn.ReLU(inplace=True)
        stages = _STAGE_IBN[ibn] if ibn is not None else (None,) * 4
        self.layer1 = self._make_stage(width, 2, 1, stages[0], ibn_norm)
        self.layer2 = self._make_stage(2 * width, 2, 2, stages[1], ibn_norm)
        self.layer3 = self._make_stage(4 * width, 2, 2, stages[2], ibn_norm)
        self.layer4 = self._make_stage(8 * width, 2, 2, stages[3], ibn_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = 8 * width
        self.fc: nn.Module = nn.Linear(self.num_features, 1000)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.InstanceNorm2d) and module.affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_stage(self, planes: int, blocks: int, stride: int, stage: IBNMode | None,
                    ibn_norm: Callable[[int], nn.Module]) -> nn.Sequential:
        """One stage: torchvision's ``_make_layer`` where IBN-Net changes nothing, else the same
        modules (downsample ``conv1x1`` + ``norm``, then the blocks) with :class:`IBNBasicBlock`
        where :func:`_block_ibn` says so."""
        modes = [_block_ibn(stage, index, blocks) for index in range(blocks)]
        if not any(modes):
            return self._make_layer(BasicBlock, planes, blocks, stride=stride)
        norm = self._norm_layer
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), norm(planes))
        layers: list[nn.Module] = []
        for index, mode in enumerate(modes):
            first = {"stride": stride, "downsample": downsample} if index == 0 else {}
            if mode is None:
                layers.append(BasicBlock(self.inplanes, planes, norm_layer=norm, **first))
            else:
                layers.append(IBNBasicBlock(self.inplanes, planes, norm_layer=norm, ibn=mode, ibn_norm=ibn_norm,
                                            **first))
            self.inplanes = planes
        return nn.Sequential(*layers)
