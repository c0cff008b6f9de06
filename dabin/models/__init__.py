"""Backbones with a ``norm`` switch."""

from dabin.models.resnet import WeightsArg, load_weights, resnet18

__all__ = ["WeightsArg", "load_weights", "resnet18"]
