"""Backbones with a ``norm`` switch."""

from dabin.models.backbones import RESNETS, build_backbone
from dabin.models.resnet import WeightsArg, load_weights, resnet18

__all__ = ["RESNETS", "WeightsArg", "build_backbone", "load_weights", "resnet18"]
